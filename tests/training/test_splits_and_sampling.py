import numpy as np
import pytest

from nnocc.planning.plans import SamplingPlan
from nnocc.training.sampling import PatchSampler, SamplingInfo
from nnocc.training.splits import fold_cases, load_or_create_splits, make_splits
from nnocc.utils.errors import NnoccError
from nnocc.utils.json_io import save_json

CASES = [f"case_{i:03d}" for i in range(23)]


def test_five_deterministic_disjoint_folds():
    splits = make_splits(CASES)
    assert splits == make_splits(list(reversed(CASES)))
    assert len(splits) == 5
    vals = [set(s["val"]) for s in splits]
    assert set().union(*vals) == set(CASES) and sum(len(v) for v in vals) == len(CASES)
    for s in splits:
        assert not set(s["train"]) & set(s["val"])


def test_existing_splits_are_respected_and_checked(tmp_path):
    path = tmp_path / "splits_final.json"
    custom = [{"train": CASES[:20], "val": CASES[20:]}]
    save_json(custom, path)
    assert load_or_create_splits(path, CASES) == custom
    assert fold_cases(custom, 0, CASES) == (CASES[:20], CASES[20:])
    assert fold_cases(custom, "all", CASES) == (sorted(CASES), [])
    with pytest.raises(NnoccError, match="fold 3 does not exist"):
        fold_cases(custom, 3, CASES)
    save_json([{"train": ["ghost"], "val": []}], path)
    with pytest.raises(NnoccError, match="not preprocessed: ghost"):
        load_or_create_splits(path, CASES)


def _plan(random=0.2, label=0.4, donut=0.4):
    return SamplingPlan(random, label, donut, [3], 10.0, 1024, 0.5, 4.0)


def test_label_sampler_picks_each_class_explicitly():
    """A class with 5 voxels is chosen as often as one with 5000."""
    locations = {"label_1": np.zeros((5000, 3), int) + 1, "label_2": np.zeros((5, 3), int) + 2, "donut": np.zeros((0, 3))}
    sampler = PatchSampler({"a": SamplingInfo((10, 10, 10), locations)}, _plan(0, 1, 0), np.random.default_rng(0))
    centres = [tuple(sampler.sample().centre) for _ in range(2000)]
    share_small = centres.count((2.0, 2.0, 2.0)) / len(centres)
    assert 0.45 < share_small < 0.55


def test_mix_follows_plan_and_donut_falls_back():
    with_donut = {"label_1": np.ones((10, 3), int), "donut": np.full((10, 3), 7)}
    without = {"label_1": np.ones((10, 3), int), "donut": np.zeros((0, 3), int)}
    sampler = PatchSampler({"a": SamplingInfo((20, 20, 20), with_donut)}, _plan(), np.random.default_rng(1))
    kinds = [sampler.sample().kind for _ in range(3000)]
    assert abs(kinds.count("donut") / 3000 - 0.4) < 0.04 and abs(kinds.count("random") / 3000 - 0.2) < 0.04
    sampler = PatchSampler({"b": SamplingInfo((20, 20, 20), without)}, _plan(), np.random.default_rng(1))
    assert "donut" not in {sampler.sample().kind for _ in range(200)}
    random_centres = np.array([s.centre for s in (sampler.sample() for _ in range(500)) if s.kind == "random"])
    assert random_centres.min() >= 0 and random_centres.max() <= 19
