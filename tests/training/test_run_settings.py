"""--set KEY=VALUE: values take the type of the plan's field; the schedule is checked up front."""
import pytest

from nnocc.planning.plans import TrainingPlan
from nnocc.training.run import TrainingSettings, apply_overrides, convert_setting
from nnocc.training.steps import cosine_learning_rate, learning_rate
from nnocc.utils.errors import NnoccError


@pytest.mark.parametrize("text, expected", [("False", False), ("false", False), ("0", False), ("no", False),
                                            ("True", True), ("1", True), ("yes", True)])
def test_booleans_are_read_as_words(text, expected):
    assert convert_setting("flag", text, True) is expected


def test_a_bad_boolean_or_number_is_an_error():
    with pytest.raises(NnoccError, match="expected true or false"):
        convert_setting("flag", "maybe", False)
    with pytest.raises(NnoccError, match="expected float"):
        convert_setting("initial_lr", "fast", 1e-3)


def test_overrides_convert_and_the_schedule_is_used():
    plan = apply_overrides(TrainingPlan(), TrainingSettings(fold=0, overrides={"lr_schedule": "cosine",
                                                                                "initial_lr": "0.01"}))
    assert plan.lr_schedule == "cosine" and plan.initial_lr == 0.01
    assert learning_rate(plan, 0.5) == pytest.approx(0.005) == cosine_learning_rate(0.01, 0.5)
    assert learning_rate(TrainingPlan(initial_lr=0.01), 0.5) == pytest.approx(0.01 * 0.5 ** 0.9)
    with pytest.raises(NnoccError, match="lr_schedule 'step' is not one of poly, cosine"):
        apply_overrides(TrainingPlan(), TrainingSettings(fold=0, overrides={"lr_schedule": "step"}))


def test_one_loss_weight_is_set_and_an_unweighted_term_is_refused():
    from nnocc.training.run import check_loss_weights

    plan = apply_overrides(TrainingPlan(loss_weights={"decoder": 0.5, "overreach": 0.1}),
                           TrainingSettings(fold=0, overrides={"loss_weights.overreach": "0"}))
    assert plan.loss_weights == {"decoder": 0.5, "overreach": 0.0}
    with pytest.raises(NnoccError, match="initial_lr is not a mapping"):
        apply_overrides(TrainingPlan(), TrainingSettings(fold=0, overrides={"initial_lr.x": "1"}))
    with pytest.raises(NnoccError, match="no weight for swipe's loss term"):
        check_loss_weights(plan, "swipe")


def test_groups_keep_their_ratio_and_old_optimizer_states_resume():
    import torch

    from nnocc.training.optimizers import Lookahead, make_optimizer, set_learning_rate

    fast, slow = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    plan = TrainingPlan(optimizer="lookahead_radam", initial_lr=1e-3)
    optimizer = make_optimizer([{"params": [slow], "lr": 1e-3}, {"params": [fast], "lr": 1e-2}], plan)
    assert isinstance(optimizer, Lookahead)
    set_learning_rate(optimizer, 5e-4, plan.initial_lr)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([5e-4, 5e-3])
    old = torch.optim.AdamW([slow], lr=1e-3)            # a state saved before groups had base rates
    state = old.state_dict()
    adamw = make_optimizer([{"params": [slow], "lr": 1e-3}], TrainingPlan())
    adamw.load_state_dict(state)
    set_learning_rate(adamw, 2e-4, 1e-3)
    assert adamw.param_groups[0]["lr"] == pytest.approx(2e-4)


def test_lookahead_schedule_reaches_the_inner_optimiser_after_a_resume():
    import torch

    from nnocc.training.optimizers import make_optimizer, set_learning_rate

    weight = torch.nn.Parameter(torch.ones(3))
    plan = TrainingPlan(optimizer="lookahead_radam", initial_lr=1e-3)
    first = make_optimizer([{"params": [weight], "lr": 1e-3}], plan)
    for _ in range(6):
        first.zero_grad()
        (weight ** 2).sum().backward()
        first.step()
    resumed = make_optimizer([{"params": [weight], "lr": 1e-3}], plan)
    resumed.load_state_dict(first.state_dict())
    set_learning_rate(resumed, 1e-4, plan.initial_lr)
    assert resumed.inner.param_groups[0]["lr"] == pytest.approx(1e-4) and resumed.steps == 6
