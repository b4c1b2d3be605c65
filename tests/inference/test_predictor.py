"""Predicting cases: exact output geometry, other output spacings, probabilities, meshes, failures."""
import json

import numpy as np
import pytest

from nnocc.cli import predict as predict_cli
from nnocc.inference.predictor import InferenceSettings, Predictor
from nnocc.inference.query_batch import points_per_batch
from nnocc.io.images import ImageGeometry, read_image, write_image
from tests.conftest import make_untrained_model_folder


@pytest.fixture
def model_folder(trained_folders):
    return make_untrained_model_folder(trained_folders, folds=(0, 1))


def _oblique_case(folder, name="oblique"):
    rng = np.random.default_rng(0)
    angle = 0.4
    direction = [np.cos(angle), 0, np.sin(angle), 0, 1, 0, -np.sin(angle), 0, np.cos(angle)]
    geometry = ImageGeometry([17, 45, 38], [3.7, 2.6, 3.1], [-120.5, 33.25, -7.0], direction)
    image = (rng.normal(40, 100, size=geometry.shape)).astype(np.int16)
    write_image(image, geometry, folder / f"{name}_0000.nii.gz")
    return geometry


def test_output_has_exactly_the_input_geometry(model_folder, tmp_path, capsys):
    inputs = tmp_path / "in"
    geometry = _oblique_case(inputs)
    with pytest.raises(SystemExit) as info:
        predict_cli.main(["-i", str(inputs), "-o", str(tmp_path / "out"), "-m", str(model_folder),
                          "--disable_tta", "--save_probabilities", "--mesh", "stl", "-npp", "1"])
    assert info.value.code == 0
    labels, out_geometry = read_image(tmp_path / "out" / "oblique.nii.gz")
    assert out_geometry.differences(geometry, tolerance=1e-6) == []
    assert labels.dtype == np.uint8 and set(np.unique(labels)) <= {0, 1, 2, 3}
    probabilities = np.load(tmp_path / "out" / "oblique.npz")["probabilities"]
    assert probabilities.shape == (4, *geometry.shape)
    meta = json.loads((tmp_path / "out" / "oblique.json").read_text())
    assert meta["output_names"] == ["background", "kidney", "tumor", "cyst"]
    for name in ("plans.json", "dataset.json", "predict_log.txt", "inference_stats.json"):
        assert (tmp_path / "out" / name).is_file()
    stats = json.loads((tmp_path / "out" / "inference_stats.json").read_text())["cases"]["oblique"]
    assert stats["members"] == 2 and stats["refined_structures"] <= 16


def test_other_output_spacing_keeps_the_physical_extent(model_folder):
    predictor = Predictor.from_model_folder(model_folder, settings=InferenceSettings(tta=False, output_spacing=[1.3]))
    image = np.random.default_rng(1).normal(50, 80, size=(12, 30, 30)).astype(np.float32)
    result = predictor.predict_array(image, spacing=(3.9, 2.6, 2.6), origin=(5.0, 6.0, 7.0))
    assert result.labels.shape == tuple(result.geometry.shape)
    np.testing.assert_allclose(np.array(result.geometry.shape) * result.geometry.spacing,
                               np.array([12, 30, 30]) * [3.9, 2.6, 2.6])
    assert result.geometry.shape == [36, 60, 60]


def test_points_per_call_are_the_users_or_what_fits_the_devices_working_set(model_folder):
    predictor = Predictor.from_model_folder(model_folder, settings=InferenceSettings(tta=False))
    architecture = predictor.config.architecture
    fitting = points_per_batch(architecture.name, architecture.kwargs, predictor.config.patch_size, predictor.device)
    assert predictor.points_per_batch() == predictor.volume_settings().max_points_per_batch == fitting == 16384
    assert not predictor.volume_settings().release_memory         # a light decoder: calls at the device's count
    chosen = Predictor.from_model_folder(model_folder, settings=InferenceSettings(tta=False, max_points_per_batch=777))
    assert chosen.volume_settings().max_points_per_batch == 777 and chosen.volume_settings().release_memory
    image = np.random.default_rng(1).normal(50, 80, size=(12, 30, 30)).astype(np.float32)
    assert chosen.predict_array(image, spacing=(3.9, 2.6, 2.6)).stats["points_per_batch"] == 777


def test_a_coarser_lattice_asks_fewer_points(model_folder):
    """--coarse_spacing_mm overrides the plan's lattice: at 1.3 mm output, 5.2 mm steps by 4 in
    every axis where the plan's stays finer."""
    image = np.random.default_rng(1).normal(50, 80, size=(12, 30, 30)).astype(np.float32)
    queries = {}
    for coarse in (None, 5.2):
        settings = InferenceSettings(tta=False, output_spacing=[1.3], refine=False, coarse_spacing_mm=coarse)
        predictor = Predictor.from_model_folder(model_folder, settings=settings)
        queries[coarse] = predictor.predict_array(image, spacing=(3.9, 2.6, 2.6)).stats["queries"]
    assert predictor.volume_settings().coarse_spacing_mm == 5.2 != predictor.config.mise.coarse_spacing_mm
    assert queries[5.2] < queries[None]


def test_changing_children_and_a_guarded_coarser_start_through_the_settings(model_folder, tmp_path):
    image = np.random.default_rng(1).normal(50, 80, size=(12, 30, 30)).astype(np.float32)
    stats = {}
    for children, factor in (("all", 1.0), ("changing", 1.0), ("changing", 4.0)):
        settings = InferenceSettings(tta=False, output_spacing=[1.3], refine=False, mise_children=children,
                                     hint_factor=factor)
        result = Predictor.from_model_folder(model_folder, settings=settings).predict_array(image, spacing=(3.9, 2.6, 2.6))
        assert result.labels.shape == (36, 60, 60)
        stats[children, factor] = result.stats
    assert stats["changing", 1.0]["queries"] <= stats["all", 1.0]["queries"]
    assert stats["changing", 4.0]["aux_hint_lookups"] == stats["changing", 1.0]["aux_hint_lookups"] > 0
    with pytest.raises(SystemExit, match="aux_hint_factor"):
        predict_cli.main(["-i", str(tmp_path), "-o", str(tmp_path / "out"), "-m", str(model_folder),
                          "--aux_hint_factor", "0.5"])


def test_bad_case_is_reported_and_the_others_predicted(model_folder, tmp_path, capsys):
    inputs = tmp_path / "in"
    _oblique_case(inputs, "good")
    (inputs / "broken_0000.nii.gz").write_bytes(b"not an image")
    with pytest.raises(SystemExit) as info:
        predict_cli.main(["-i", str(inputs), "-o", str(tmp_path / "out"), "-m", str(model_folder), "-f", "0",
                          "--disable_tta", "-npp", "1"])
    assert info.value.code == 1
    out = capsys.readouterr()
    assert "broken_0000.nii.gz: unreadable image" in out.err
    assert (tmp_path / "out" / "good.nii.gz").is_file() and not (tmp_path / "out" / "broken.nii.gz").exists()
    assert "FAILED broken" in (tmp_path / "out" / "predict_log.txt").read_text()
    stamp = (tmp_path / "out" / "good.nii.gz").stat().st_mtime_ns
    with pytest.raises(SystemExit):
        predict_cli.main(["-i", str(inputs), "-o", str(tmp_path / "out"), "-m", str(model_folder), "-f", "0",
                          "--disable_tta", "-npp", "1", "--continue_prediction"])
    assert (tmp_path / "out" / "good.nii.gz").stat().st_mtime_ns == stamp


def test_predict_file_from_python_writes_the_label_map(model_folder, tmp_path):
    geometry = _oblique_case(tmp_path / "in", "python")
    predictor = Predictor.from_model_folder(model_folder, folds=[0], settings=InferenceSettings(tta=False))
    result = predictor.predict_file(tmp_path / "in" / "python_0000.nii.gz", tmp_path / "python.nii.gz")
    assert result.labels.shape == tuple(geometry.shape)
    assert read_image(tmp_path / "python.nii.gz")[1].differences(geometry, tolerance=1e-6) == []


def test_a_folder_is_read_ahead_only_as_far_as_the_readers_work(model_folder, tmp_path, monkeypatch):
    """Preprocessed scans must not pile up in the predicting process (30 MB each at KiTS23's size)."""
    from concurrent.futures import ThreadPoolExecutor

    from nnocc.inference import batch

    inputs = tmp_path / "in"
    for i in range(6):
        _oblique_case(inputs, f"case{i}")
    submitted, ahead = [], []

    class CountingPool(ThreadPoolExecutor):
        def __init__(self, workers, mp_context=None):
            super().__init__(workers)

        def submit(self, fn, *args):
            submitted.append(args[0][0].name)
            return super().submit(fn, *args)
    monkeypatch.setattr(batch, "ProcessPoolExecutor", CountingPool)
    predictor = Predictor.from_model_folder(model_folder, folds=[0], settings=InferenceSettings(tta=False, refine=False))
    predict = predictor.predict_preprocessed

    def counting_predict(pre):
        ahead.append(len(submitted) - len(ahead))
        return predict(pre)
    monkeypatch.setattr(predictor, "predict_preprocessed", counting_predict)
    report = batch.predict_folder(predictor, inputs, tmp_path / "out", num_preprocessing=1, num_export=1)
    assert sorted(report.stats) == [f"case{i}" for i in range(6)] and len(submitted) == 6
    assert max(ahead) == 3          # the case being predicted and two read ahead (one reader, one queued)
