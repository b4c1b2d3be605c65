"""Spurious fragments: determine-postprocessing removes them, apply reproduces its CV result exactly."""
import json

import numpy as np
import pytest

from nnocc.cli import apply_postprocessing as apply_cli
from nnocc.cli import determine_postprocessing as determine_cli
from nnocc.cli import evaluate_folder as evaluate_cli
from nnocc.io.images import read_image, write_segmentation
from nnocc.postprocessing.components import PostprocessingStep, apply_step


def add_fragments(labels, rng, value=1, count=3):
    """Single-voxel false positives away from the structures."""
    noisy = labels.copy()
    background = np.argwhere(labels == 0)
    for z, y, x in background[rng.choice(len(background), count, replace=False)]:
        noisy[z, y, x] = value
    return noisy


def make_predictions(ct_raw_root, folder, rng):
    source = ct_raw_root / "Dataset501_SmallCT" / "labelsTr"
    for path in sorted(source.glob("*.nii.gz")):
        labels, geometry = read_image(path)
        write_segmentation(add_fragments(labels, rng), geometry, folder / path.name)
    return source


def test_components_in_millimetres():
    labels = np.zeros((10, 10, 10), np.uint8)
    labels[0:4, 0:4, 0:4] = 1
    labels[8:10, 8:10, 8:10] = 1
    step = PostprocessingStep("label:1", [1], "remove_small", min_size_mm3=20.0)
    assert (apply_step(labels, step, (2.0, 1.0, 1.0)) == 1).sum() == 64          # 8 voxels = 16 mm^3 < 20
    assert (apply_step(labels, step, (3.0, 1.0, 1.0)) == 1).sum() == 72          # 8 voxels = 24 mm^3 kept
    largest = apply_step(labels, PostprocessingStep("foreground", [1], "keep_largest"), (1, 1, 1))
    assert (largest == 1).sum() == 64


def test_determine_removes_fragments_and_apply_reproduces_it(ct_raw_root, tmp_path):
    predictions = tmp_path / "cv"
    references = make_predictions(ct_raw_root, predictions, np.random.default_rng(0))
    dataset_json = ct_raw_root / "Dataset501_SmallCT" / "dataset.json"
    with pytest.raises(SystemExit) as info:
        determine_cli.main(["-i", str(predictions), "-ref", str(references), "-djfile", str(dataset_json),
                            "--smallest_structure_mm", "8", "-np", "1"])
    assert info.value.code == 0
    plan = json.loads((predictions / "postprocessing.json").read_text())
    assert plan["steps"] and plan["final_dice"] > plan["baseline_dice"]
    assert all(e["kept"] == (e["mean_dice_with_step"] > e["mean_dice_before"]) for e in plan["evidence"])
    cv_summary = json.loads((predictions / "postprocessed" / "summary.json").read_text())
    with pytest.raises(SystemExit) as info:
        apply_cli.main(["-i", str(predictions), "-o", str(tmp_path / "applied"), "-pp",
                        str(predictions / "postprocessing.json"), "-np", "2"])
    assert info.value.code == 0
    with pytest.raises(SystemExit):
        evaluate_cli.main([str(references), str(tmp_path / "applied"), "-djfile", str(dataset_json), "-np", "1",
                           "--chill"])
    applied = json.loads((tmp_path / "applied" / "summary.json").read_text())
    assert applied["foreground_mean"]["dice"] == cv_summary["foreground_mean"]["dice"]
    for path in sorted((tmp_path / "applied").glob("*.nii.gz")):
        a, ga = read_image(path)
        b, gb = read_image(predictions / "postprocessed" / path.name)
        np.testing.assert_array_equal(a, b)
        assert ga == gb
