import numpy as np
import pytest
from scipy.ndimage import zoom

from nnocc.cli import plan_and_preprocess
from nnocc.cli import preprocess as preprocess_cli
from nnocc.cli.environment import dataset_paths
from nnocc.coordinates import preprocessed_to_cropped
from nnocc.io.images import read_image, write_image
from nnocc.planning.plans import ChannelNormalization, Plans, ResamplingPlan
from nnocc.preprocessing import preprocessor
from nnocc.preprocessing.normalization import normalize_image
from nnocc.preprocessing.preprocessor import remove_stale_cases, staging_folder
from nnocc.preprocessing.resampling import resample_image, resample_labels
from nnocc.preprocessing.storage import case_files, list_cases, load_preprocessed_case
from tests.conftest import copy_dataset


def _run(dataset_id, *extra):
    with pytest.raises(SystemExit) as info:
        plan_and_preprocess.main(["-d", str(dataset_id), "-np", "1", *extra])
    assert info.value.code == 0


def test_ct_preprocessing_matches_raw(ct_raw_root, data_folders):
    copy_dataset(ct_raw_root, data_folders)
    _run(501)
    paths = dataset_paths(501)
    plans = Plans.load(paths.plans_file("nnoccPlans"))
    config = plans.configurations["3d_occ"]
    folder = paths.preprocessed_data("nnoccPlans_3d_fullres")
    assert list_cases(folder) == [f"case_{i:04d}" for i in range(6)]
    norm = config.normalization[0]
    low, high = (norm.clip_low - norm.mean) / norm.std, (norm.clip_high - norm.mean) / norm.std
    for name in list_cases(folder):
        case = load_preprocessed_case(folder, name)
        raw_image, raw_geometry = read_image(paths.raw / "imagesTr" / f"{name}_0000.nii.gz")
        raw_labels, _ = read_image(paths.raw / "labelsTr" / f"{name}.nii.gz")
        props = case.properties
        assert props.geometry.differences(raw_geometry) == []
        image = case.image[...]
        assert list(image.shape[1:]) == props.preprocessed_shape
        expected = np.round(np.array(props.cropped_shape) * raw_geometry.spacing / np.array(config.spacing))
        np.testing.assert_array_equal(props.preprocessed_shape, expected)
        slack = 0.25 * (high - low)  # cubic interpolation rings at the clipped air/body edge
        assert low - slack <= image.min() and image.max() <= high + slack
        box = tuple(slice(a, b) for a, b in props.crop_bbox)
        np.testing.assert_array_equal(case.seg_original[...], raw_labels[box])
        assert set(np.unique(case.seg[...])) == set(np.unique(raw_labels))
        for key, coords in case.locations.items():
            if key.startswith("label_") and len(coords):
                assert (case.seg[...][tuple(coords.T)] == int(key.split("_")[1])).all()
        if len(case.locations["donut"]):
            assert not np.isin(case.seg[...][tuple(case.locations["donut"].T)], config.sampling.donut_labels).any()


def test_mri_gets_zscore_and_a_different_plan(mri_raw_root, ct_raw_root, data_folders):
    copy_dataset(mri_raw_root, data_folders)
    copy_dataset(ct_raw_root, data_folders)
    _run(502)
    _run(501)
    for dataset in (501, 502):   # the default 8 GB target: every configuration, one preprocessed copy
        plans = Plans.load(dataset_paths(dataset).plans_file("nnoccPlans"))
        assert plans.data_folders() == {"nnoccPlans_3d_fullres": ["3d_occ", "3d_ossnet", "3d_sconet", "3d_swipe"]}
        assert plans.recommended_configuration and plans.recommendation_reason
        assert sorted(p.name for p in dataset_paths(dataset).preprocessed.iterdir() if p.is_dir()) == \
            ["gt_segmentations", "nnoccPlans_3d_fullres", "nnoccPlans_3d_sconet_point_clouds"]
        assert plans.configurations["3d_ossnet"].architecture.kwargs["in_channels"] == (2 if dataset == 502 else 1)
    mri = Plans.load(dataset_paths(502).plans_file("nnoccPlans")).configurations["3d_occ"]
    ct = Plans.load(dataset_paths(501).plans_file("nnoccPlans")).configurations["3d_occ"]
    assert [n.scheme for n in mri.normalization] == ["zscore", "zscore"]
    assert [n.scheme for n in ct.normalization] == ["ct"]
    assert mri.architecture.kwargs["in_channels"] == 2
    folder = dataset_paths(502).preprocessed_data("nnoccPlans_3d_fullres")
    image = load_preprocessed_case(folder, "case_0000").image[...]
    assert image.shape[0] == 2
    for channel in image:
        assert abs(channel.mean()) < 0.1 and 0.8 < channel.std() < 1.2


def _stamps(folder):
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


def test_second_run_skips_clean_redoes_and_a_failed_run_keeps_the_previous_data(ct_raw_root, data_folders,
                                                                                monkeypatch):
    copy_dataset(ct_raw_root, data_folders)
    _run(501)
    folder = dataset_paths(501).preprocessed_data("nnoccPlans_3d_fullres")
    stamp = (folder / "case_0000.b2nd").stat().st_mtime_ns
    _run(501)
    assert (folder / "case_0000.b2nd").stat().st_mtime_ns == stamp
    _run(501, "--clean")
    assert (folder / "case_0000.b2nd").stat().st_mtime_ns != stamp
    before = _stamps(folder)

    original = preprocessor.preprocess_training_case
    calls = []

    def crash_on_third(job):
        calls.append(job[0].name)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(job)

    monkeypatch.setattr(preprocessor, "preprocess_training_case", crash_on_third)
    with pytest.raises(SystemExit) as info:
        plan_and_preprocess.main(["-d", "501", "-np", "1", "--clean"])
    assert info.value.code == 130
    assert _stamps(folder) == before   # --clean deletes nothing until the new data is complete
    assert len(list_cases(staging_folder(folder))) == 2
    monkeypatch.setattr(preprocessor, "preprocess_training_case", original)
    _run(501)
    assert folder.is_dir() and len(list_cases(folder)) == 6
    assert not staging_folder(folder).exists()


def test_a_broken_case_found_by_the_workers_changes_nothing(ct_raw_root, data_folders, capsys):
    copy_dataset(ct_raw_root, data_folders)
    _run(501)
    paths = dataset_paths(501)
    folder = paths.preprocessed_data("nnoccPlans_3d_fullres")
    before, references = _stamps(folder), _stamps(paths.preprocessed / "gt_segmentations")
    label_file = paths.raw / "labelsTr" / "case_0004.nii.gz"
    labels, geometry = read_image(label_file)
    labels[0, 0, 0] = 9
    write_image(labels, geometry, label_file)
    with pytest.raises(SystemExit) as info:
        preprocess_cli.main(["-d", "501", "-np", "1", "--clean"])
    assert info.value.code == 1
    assert "case_0004.nii.gz: label value(s) [9] not declared" in capsys.readouterr().err
    assert _stamps(folder) == before and _stamps(paths.preprocessed / "gt_segmentations") == references


def test_stale_cases_are_removed_by_whole_name(tmp_path):
    for name in ("case_1", "case_10", "case_11"):
        for path in case_files(tmp_path, name):
            path.write_text("x")
    remove_stale_cases(tmp_path, {"case_10", "case_11"})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for name in ("case_10", "case_11") for p in case_files(tmp_path, name))


def test_resampling_keeps_physical_positions():
    """A linear ramp resampled with the extent-preserving convention stays the same ramp."""
    old_shape, new_shape = (10, 20, 30), (25, 13, 30)
    ramp = np.indices(old_shape, dtype=np.float32)[1] * 2.0 + 5.0
    out = resample_image(ramp[None], new_shape, ResamplingPlan(), None)[0]
    index_new = np.indices(new_shape, dtype=np.float64)[1]
    index_old = preprocessed_to_cropped(index_new[..., None].repeat(3, -1), new_shape, old_shape)[..., 1]
    inner = (slice(2, -2), slice(2, -2), slice(None))
    # a half-voxel shift would be off by ~1.5; spline edge effects stay below 0.01
    np.testing.assert_allclose(out[inner], (index_old * 2.0 + 5.0)[inner], atol=0.01)


@pytest.mark.parametrize("new_shape", [(7, 30, 41), (23, 90, 35), (12, 60, 40)])
def test_float32_spline_resampling_matches_scipy_zoom(new_shape):
    """The low-memory spline path (float32 coefficients filtered in place) gives scipy's answer,
    borders included, shrinking or enlarging."""
    image = np.random.default_rng(3).normal(0, 100, (12, 45, 40)).astype(np.float32)
    factors = [n / o for n, o in zip(new_shape, image.shape)]
    expected = zoom(image, factors, order=3, mode="nearest", grid_mode=True, prefilter=True)
    out = resample_image(image[None], new_shape, ResamplingPlan(image_order=3), None)[0]
    assert out.dtype == np.float32 and out.shape == expected.shape
    np.testing.assert_allclose(out, expected, atol=1e-3)


SCHEMES = [ChannelNormalization("CT", "ct", clip_low=-200.0, clip_high=300.0, mean=40.0, std=80.0),
           ChannelNormalization("T2", "zscore", use_nonzero_mask=True),
           ChannelNormalization("x", "rescale_to_0_1"), ChannelNormalization("y", "none")]


@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda n: n.scheme)
def test_normalising_in_place_gives_the_same_and_leaves_a_borrowed_image_alone(scheme):
    image = np.random.default_rng(5).normal(50, 300, (1, 6, 9, 8)).astype(np.float32)
    mask = image[0] > -100
    original = image.copy()
    borrowed = normalize_image(image, [scheme], mask)
    np.testing.assert_array_equal(image, original)
    owned = normalize_image(image, [scheme], mask, in_place=True)
    assert owned is image and owned.dtype == np.float32
    np.testing.assert_array_equal(owned, borrowed)
    as_int = normalize_image(original.astype(np.int16), [scheme], mask, in_place=True)
    np.testing.assert_allclose(as_int, normalize_image(original.astype(np.int16).astype(np.float32), [scheme], mask))


def test_label_resampling_keeps_boundaries_and_small_structures():
    labels = np.zeros((10, 40, 40), dtype=np.uint8)
    labels[:, 10:30, 10:30] = 1
    labels[4:6, 18:20, 18:20] = 2
    plan = ResamplingPlan(separate_z=True, z_axis=0)
    up = resample_labels(labels, (10, 80, 80), plan, 0)
    assert (up == 1).sum() + (up == 2).sum() == pytest.approx(4 * (labels > 0).sum(), rel=0.02)
    assert (up == 2).sum() == pytest.approx(4 * (labels == 2).sum(), rel=0.3)
