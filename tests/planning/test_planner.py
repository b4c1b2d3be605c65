import numpy as np
import pytest

from nnocc.fingerprint.fingerprint import CaseFingerprint, DatasetFingerprint, IntensityStatistics, StructureStatistics
from nnocc.io.dataset_json import parse_dataset_json
from nnocc.planning.planner import OccupancyPlanner, find_planner
from nnocc.planning.plans import Plans
from nnocc.planning.target_spacing import target_spacing
from nnocc.utils.errors import NnoccError

KITS_JSON = {"channel_names": {"0": "CT"}, "numTraining": 30, "file_ending": ".nii.gz",
             "labels": {"background": 0, "kidney_and_masses": [1, 2, 3], "masses": [2, 3], "tumor": 2},
             "regions_class_order": [1, 3, 2]}


def _structure(name, value, volume, diameter):
    return StructureStatistics(name, "label", [value], 30, 1.0, volume / 0.6, volume, volume / 3, volume * 3, 1,
                               diameter * 0.8, diameter, [diameter] * 3, volume ** (2 / 3) * 4.8)


def kits_like_fingerprint() -> DatasetFingerprint:
    rng = np.random.default_rng(0)
    cases = [CaseFingerprint(f"c{i}", [float(rng.uniform(0.6, 1.0))] * 3, [int(rng.integers(300, 600)), 512, 512],
                             [int(rng.integers(300, 600)), 512, 512]) for i in range(30)]
    for c in cases:
        c.spacing[0] = float(np.clip(c.spacing[0] * 1.2, 0.5, 5.0))
    intensity = IntensityStatistics(100.0, 70.0, 105.0, -54.0, 242.0, -200.0, 600.0)
    structures = [_structure("kidney", 1, 180000.0, 60.0), _structure("tumor", 2, 20000.0, 25.0),
                  _structure("cyst", 3, 3000.0, 9.0)]
    return DatasetFingerprint("Dataset023_KiTS", ["CT"], cases, {"CT": intensity}, structures)


def test_nnunet_target_spacing_rule():
    spacings = np.array([[5.0, 0.8, 0.8]] * 6 + [[1.0, 0.8, 0.8]] * 4)
    shapes = np.array([[40, 512, 512]] * 10)
    assert target_spacing(spacings, shapes)[0] == pytest.approx(1.0, rel=1e-3)  # 10th percentile of the thick axis
    assert target_spacing(spacings[:, [1, 2, 0]] * 0 + 1.5, shapes)[0] == 1.5


def test_budgets_give_different_plans_within_budget():
    description = parse_dataset_json(KITS_JSON, "dataset.json")
    small = OccupancyPlanner(kits_like_fingerprint(), description, 4).plan().configurations["3d_occ"]
    large = OccupancyPlanner(kits_like_fingerprint(), description, 40).plan().configurations["3d_occ"]
    assert small.memory.estimated_peak_gb <= 4 and large.memory.estimated_peak_gb <= 40
    assert np.prod(large.patch_size) * large.batch_size > 2 * np.prod(small.patch_size) * small.batch_size
    assert small.architecture.kwargs["preset"] != large.architecture.kwargs["preset"]
    assert large.architecture.kwargs["preset"] == "base"  # seed 000's sizes on a big GPU
    for config in (small, large):
        stride = [int(np.prod([s[a] for s in config.architecture.kwargs["strides"]])) for a in range(3)]
        assert all(p % s == 0 for p, s in zip(config.patch_size, stride))


def test_kits_plan_uses_ct_window_regions_and_small_class_tools():
    description = parse_dataset_json(KITS_JSON, "dataset.json")
    plans = OccupancyPlanner(kits_like_fingerprint(), description, 8).plan()
    config = plans.configurations["3d_occ"]
    norm = config.normalization[0]
    assert (norm.scheme, norm.clip_low, norm.clip_high) == ("ct", -54.0, 242.0)
    assert plans.has_regions and plans.output_names == ["kidney_and_masses", "masses", "tumor"]
    assert config.architecture.kwargs["num_outputs"] == 3
    assert config.sampling.donut_labels == [3] and config.mise.refine_labels == [3]
    assert config.mise.coarse_spacing_mm <= 9.0  # no larger than the smallest structure
    assert config.sampling.donut_share > 0 and config.sampling.boundary_point_share == 0.5


def test_plans_json_round_trip(tmp_path):
    description = parse_dataset_json(KITS_JSON, "dataset.json")
    plans = OccupancyPlanner(kits_like_fingerprint(), description, 8).plan()
    plans.save(tmp_path / "plans.json")
    assert Plans.load(tmp_path / "plans.json") == plans


class HalfBatchPlanner(OccupancyPlanner):
    """A user's planner: everything as usual but a fixed batch size."""

    def choose_patch_and_batch(self, kwargs, spacing, median_shape):
        patch, _, footprint = super().choose_patch_and_batch(kwargs, spacing, median_shape)
        return patch, 2, footprint


def test_planner_found_by_name_or_import_path():
    assert find_planner("OccupancyPlanner") is OccupancyPlanner
    assert find_planner("tests.planning.test_planner:HalfBatchPlanner") is HalfBatchPlanner
    with pytest.raises(NnoccError, match="unknown planner"):
        find_planner("NoSuchPlanner")


def test_sconet_plan_has_contour_settings_from_the_fingerprint_and_no_mirroring():
    fingerprint = kits_like_fingerprint()
    sco = OccupancyPlanner(fingerprint, parse_dataset_json(KITS_JSON, "dataset.json"), 8).plan().configurations["3d_sconet"]
    assert sco.point_cloud is not None and sco.point_cloud.descriptor == "gradient"
    # 0.25 / 0.65 of the foreground's 70 HU, in the z-scored units the preprocessed image holds (std 70 HU)
    assert sco.point_cloud.thresholds_note.startswith("17.5 / 45.5 HU")
    assert (sco.point_cloud.canny_lower, sco.point_cloud.canny_upper) == pytest.approx((0.25, 0.65))
    assert sco.point_cloud.canny_variance_mm2 >= 2.0 and sco.augmentation.mirror_axes == []
    assert sco.sampling.case_share == 1.0 and sco.batch_size == 1          # the paper's one case per step
    kwargs = sco.architecture.kwargs
    assert kwargs["point_features"] == 48 and kwargs["cloud_points"] == 50000
    extents = np.percentile(fingerprint.cropped_shapes * fingerprint.spacings, 95, axis=0)
    assert kwargs["grid_extent_mm"] == pytest.approx(extents.tolist(), abs=0.1)


def test_sconet_is_recommended_for_large_structures_over_a_field_of_view_others_cannot_see():
    fingerprint = kits_like_fingerprint()
    fingerprint.structures = [_structure("liver", 1, 1.5e6, 140.0)]
    dataset = {**KITS_JSON, "labels": {"background": 0, "liver": 1}}
    dataset.pop("regions_class_order")
    plans = OccupancyPlanner(fingerprint, parse_dataset_json(dataset, "dataset.json"), 2).plan()
    # 2 GB: 3d_occ's patch is a small part of a 400 x 512 x 512 case; 3d_ossnet sees it only coarser than half
    assert plans.recommended_configuration == "3d_sconet", plans.recommendation_reason
    assert "mm cells" in plans.recommendation_reason and "3d_ossnet does not" in plans.recommendation_reason
    larger = OccupancyPlanner(fingerprint, parse_dataset_json(dataset, "dataset.json"), 4).plan()
    assert larger.recommended_configuration == "3d_ossnet", larger.recommendation_reason      # half resolution fits


def test_swipe_plan_has_cubic_crops_class_balanced_points_and_the_papers_recipe():
    plans = OccupancyPlanner(kits_like_fingerprint(), parse_dataset_json(KITS_JSON, "dataset.json"), 8).plan()
    swipe = plans.configurations["3d_swipe"]
    patch, multiple = swipe.patch_size, [32, 32, 32]
    assert patch[0] == patch[1] == patch[2] and patch[0] % 32 == 0 and patch[0] >= 64
    assert all(p % m == 0 for p, m in zip(patch, multiple)) and swipe.batch_size >= 2
    assert swipe.memory.estimated_peak_gb <= 0.85 * 8
    assert swipe.sampling.point_sampler == "class_balanced" and swipe.sampling.boundary_point_share == 0.5
    assert swipe.sampling.background_point_weight == 5.0
    assert swipe.sampling.boundary_band_mm == pytest.approx(10 * min(swipe.spacing))
    t = swipe.training
    assert (t.optimizer, t.lr_schedule, t.ce_weight, t.dice_weight) == ("adamw", "cosine", 0.5, 0.5)
    assert t.loss_weights == {"decoder": 0.5, "image_decoder": 0.5, "overreach": 0.1, "embedding_l2": 1e-4}
    assert plans.configurations["3d_occ"].sampling.point_sampler == "uniform_and_band"
    smaller = OccupancyPlanner(kits_like_fingerprint(), parse_dataset_json(KITS_JSON, "dataset.json"), 2).plan()
    small = smaller.configurations["3d_swipe"].patch_size
    assert small[0] == small[1] == small[2] and small[0] <= patch[0]
