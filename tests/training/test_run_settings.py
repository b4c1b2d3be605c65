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
