import pickle

import pytest
import torch

from nnocc.architectures.convocc import build_kwargs
from nnocc.architectures.registry import build_model
from nnocc.training.checkpoint import load_encoder_weights
from nnocc.training.losses import LossWeights, OccupancyLoss
from nnocc.training.steps import confusion_counts, poly_learning_rate, pseudo_dice
from nnocc.utils.checkpoints import load_checkpoint, save_checkpoint
from nnocc.utils.errors import NnoccError


def test_losses_reward_the_right_answer():
    targets = torch.tensor([[0, 1, 2, 2]])
    good = torch.nn.functional.one_hot(targets, 3).float() * 20 - 10
    bad = torch.roll(good, 1, dims=-1)
    loss = OccupancyLoss(False, LossWeights())
    assert loss(good, targets)[0] < 0.01 < loss(bad, targets)[0]
    regions = torch.tensor([[[1.0, 0.0], [1.0, 1.0]]])
    region_loss = OccupancyLoss(True, LossWeights())
    assert region_loss(regions * 40 - 20, regions)[0] < 0.01
    aux_logits = torch.zeros(1, 3, 2, 2, 2)
    total, parts = loss(good, targets, aux_logits, torch.zeros(1, 2, 2, 2, dtype=torch.long))
    assert "aux" in parts and total > parts["ce"]


def test_pseudo_dice_counts_and_schedule():
    logits = torch.tensor([[[5.0, 0, 0], [0, 5.0, 0], [0, 0, 5.0], [0, 5.0, 0]]])
    counts = confusion_counts(logits, torch.tensor([[0, 1, 2, 2]]), False, 0.5)
    assert counts.tolist() == [[1, 1], [1, 0], [0, 1]]
    assert pseudo_dice(counts).tolist() == pytest.approx([2 / 3, 2 / 3])
    assert poly_learning_rate(1e-3, 0.0) == 1e-3 and poly_learning_rate(1e-3, 1.0) == 0.0


def test_checkpoints_load_weights_only_and_refuse_arbitrary_objects(tmp_path):
    save_checkpoint(tmp_path / "ok.pth", {"weights": torch.ones(2), "epoch": 3, "history": {"loss": [1.0]}})
    assert load_checkpoint(tmp_path / "ok.pth")["epoch"] == 3

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with open(tmp_path / "evil.pth", "wb") as f:
        pickle.dump({"weights": Evil()}, f)
    with pytest.raises(NnoccError, match="cannot be loaded safely"):
        load_checkpoint(tmp_path / "evil.pth")
    with pytest.raises(NnoccError, match="cannot be loaded safely"):
        load_checkpoint(tmp_path / "evil.pth", mmap=True)     # inference's way: the same refusal


def test_a_mapped_checkpoint_holds_the_same_tensors(tmp_path):
    payload = {"network_weights": {"w": torch.randn(3, 4)}, "optimizer": {"m": torch.randn(1000)}, "epoch": 2}
    save_checkpoint(tmp_path / "c.pth", payload)
    mapped = load_checkpoint(tmp_path / "c.pth", mmap=True)
    assert mapped["epoch"] == 2 and torch.equal(mapped["network_weights"]["w"], payload["network_weights"]["w"])
    assert torch.equal(mapped["optimizer"]["m"], payload["optimizer"]["m"])


def test_pretrained_encoder_weights(tmp_path):
    kwargs = build_kwargs("tiny", 1, 3, [1, 1, 1])
    source, target = build_model("convocc", kwargs), build_model("convocc", kwargs)
    torch.save({"state_dict": {f"module.encoder.{k}": v for k, v in source.encoder.state_dict().items()}},
               tmp_path / "encoder.pth")
    report = load_encoder_weights(target, tmp_path / "encoder.pth")
    assert report.startswith("loaded")
    for a, b in zip(source.encoder.state_dict().values(), target.encoder.state_dict().values()):
        torch.testing.assert_close(a, b)
    torch.save({"unrelated": torch.ones(3)}, tmp_path / "other.pth")
    with pytest.raises(NnoccError, match="no tensor matches"):
        load_encoder_weights(target, tmp_path / "other.pth")


def test_an_architectures_terms_are_weighted_by_the_plan():
    import pytest as _pytest

    from nnocc.training.losses import LossWeights, OccupancyLoss

    torch.manual_seed(0)
    logits, targets = torch.randn(2, 10, 3), torch.randint(0, 3, (2, 10))
    copies = torch.cat([logits, logits], dim=1)                      # two copies of the points' logits
    weights = LossWeights(0.5, 0.5, 0.0, {"decoder": 0.5, "overreach": 0.1, "embedding_l2": 1e-4})
    loss = OccupancyLoss(False, weights)
    plain, _ = OccupancyLoss(False, LossWeights(0.5, 0.5, 0.0))(logits, targets)
    total, parts = loss(logits, targets, terms={"overreach": copies, "embedding_l2": torch.tensor(3.0)})
    torch.testing.assert_close(total, 0.5 * plain + 0.1 * plain + 1e-4 * 3.0)
    assert parts["embedding_l2"] == 3.0 and parts["overreach"] == _pytest.approx(float(plain))
    with _pytest.raises(KeyError, match="no weight for the architecture's loss term 'image_decoder'"):
        loss(logits, targets, terms={"image_decoder": logits})
