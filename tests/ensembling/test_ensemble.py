import json

import numpy as np
import pytest

from nnocc.cli import ensemble as ensemble_cli
from nnocc.inference.export import CasePrediction, write_prediction
from nnocc.io.dataset_json import parse_dataset_json
from nnocc.io.images import ImageGeometry, read_image

DATASET = {"channel_names": {"0": "CT"}, "labels": {"background": 0, "a": 1, "b": 2}, "numTraining": 1,
           "file_ending": ".nii.gz"}


def _write(folder, name, probabilities, geometry):
    description = parse_dataset_json(DATASET, "dataset.json")
    labels = np.argmax(probabilities, 0).astype(np.uint8)
    write_prediction(CasePrediction(name, labels, geometry, probabilities), description, folder, probabilities=True)
    (folder / "dataset.json").write_text(json.dumps(DATASET))


def test_average_of_probabilities(tmp_path):
    geometry = ImageGeometry([2, 3, 4], [2.0, 1.0, 1.0], [1.0, 2.0, 3.0], [1.0, 0, 0, 0, 1, 0, 0, 0, 1])
    rng = np.random.default_rng(0)
    p1, p2 = (rng.dirichlet([1, 1, 1], size=(2, 3, 4)).transpose(3, 0, 1, 2).astype(np.float32) for _ in range(2))
    _write(tmp_path / "m1", "case", p1, geometry)
    _write(tmp_path / "m2", "case", p2, geometry)
    with pytest.raises(SystemExit) as info:
        ensemble_cli.main(["-i", str(tmp_path / "m1"), str(tmp_path / "m2"), "-o", str(tmp_path / "e"), "-np", "1"])
    assert info.value.code == 0
    labels, out_geometry = read_image(tmp_path / "e" / "case.nii.gz")
    stored = [np.load(tmp_path / m / "case.npz")["probabilities"].astype(np.float32) for m in ("m1", "m2")]
    np.testing.assert_array_equal(labels, np.argmax(stored[0] + stored[1], 0))
    assert out_geometry == geometry


def test_geometry_mismatch_is_refused(tmp_path, capsys):
    g1 = ImageGeometry([2, 3, 4], [2.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0, 0, 0, 1, 0, 0, 0, 1])
    g2 = ImageGeometry([2, 3, 4], [2.0, 1.0, 1.5], [0.0, 0.0, 0.0], g1.direction)
    p = np.full((3, 2, 3, 4), 1 / 3, np.float32)
    _write(tmp_path / "m1", "case", p, g1)
    _write(tmp_path / "m2", "case", p, g2)
    with pytest.raises(SystemExit) as info:
        ensemble_cli.main(["-i", str(tmp_path / "m1"), str(tmp_path / "m2"), "-o", str(tmp_path / "e"), "-np", "1"])
    assert info.value.code == 1
    assert "geometry differs" in capsys.readouterr().err
