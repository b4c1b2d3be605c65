"""The challenge entry point on a fake grand-challenge /input tree."""
import numpy as np
import pytest

from nnocc.cli import challenge_predict
from nnocc.io.images import ImageGeometry, read_image, write_image
from tests.conftest import make_untrained_model_folder


def test_reads_input_tree_writes_mha_with_same_geometry(trained_folders, tmp_path):
    """The image is stored as KiTS23 stores its cases: slices along the first voxel axis."""
    model = make_untrained_model_folder(trained_folders)
    source = trained_folders.raw / "Dataset501_SmallCT" / "imagesTs" / "case_0006_0000.nii.gz"
    image, geometry = read_image(source)
    image = np.ascontiguousarray(image.transpose(2, 1, 0))
    geometry = ImageGeometry(list(image.shape), geometry.spacing[::-1], [12.5, -40.0, 300.0],
                             [0, 0, -1.0, 0, -1.0, 0, -1.0, 0, 0])
    inputs = tmp_path / "input" / "images" / "ct"
    write_image(image, geometry, inputs / "3b0f2a1c-uuid.mha")
    with pytest.raises(SystemExit) as info:
        challenge_predict.main(["--input_root", str(tmp_path / "input"), "--output_root", str(tmp_path / "output"),
                                "-m", str(model), "--disable_tta"])
    assert info.value.code == 0
    labels, out_geometry = read_image(tmp_path / "output" / "images" / "kidney-tumor-and-cyst" / "3b0f2a1c-uuid.mha")
    assert labels.dtype == np.uint8 and set(np.unique(labels)) <= {0, 1, 2, 3}
    assert out_geometry.differences(geometry, tolerance=1e-6) == []


def test_low_memory_reaches_the_allocator_only_when_asked(monkeypatch, tmp_path):
    asked = []
    monkeypatch.setattr(challenge_predict, "prepare_allocator_for_prediction", lambda low: asked.append(low) or low)
    monkeypatch.setattr(challenge_predict, "predict_challenge", lambda *a: [])
    for extra in ([], ["--low_memory"]):
        with pytest.raises(SystemExit) as info:
            challenge_predict.main(["--input_root", str(tmp_path), "--output_root", str(tmp_path), "-m", str(tmp_path)]
                                   + extra)
        assert info.value.code == 0
    assert asked == [False, True]
