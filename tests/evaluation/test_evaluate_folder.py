import json

import numpy as np
import pytest
from scipy.ndimage import binary_dilation

from nnocc.cli import evaluate_folder as evaluate_cli
from nnocc.io.images import ImageGeometry, read_image, write_image, write_segmentation


def _perturbed_copy(ct_raw_root, tmp_path):
    source = ct_raw_root / "Dataset501_SmallCT" / "labelsTr"
    ref, pred = tmp_path / "ref", tmp_path / "pred"
    rng = np.random.default_rng(0)
    for path in sorted(source.glob("*.nii.gz"))[:4]:
        labels, geometry = read_image(path)
        write_segmentation(labels, geometry, ref / path.name)
        perturbed = labels.copy()
        perturbed[binary_dilation(labels == 1) & (labels == 0) & (rng.random(labels.shape) < 0.5)] = 1
        perturbed[(labels == 3) & (rng.random(labels.shape) < 0.3)] = 0
        write_segmentation(perturbed, geometry, pred / path.name)
    return ref, pred


def _independent_dice(ref_folder, pred_folder, value):
    scores = []
    for path in sorted(ref_folder.glob("*.nii.gz")):
        r = read_image(path)[0] == value
        p = read_image(pred_folder / path.name)[0] == value
        if r.sum() + p.sum():
            scores.append(2 * (r & p).sum() / (r.sum() + p.sum()))
    return float(np.mean(scores))


def test_mean_dice_matches_an_independent_computation(ct_raw_root, tmp_path):
    ref, pred = _perturbed_copy(ct_raw_root, tmp_path)
    dataset_json = ct_raw_root / "Dataset501_SmallCT" / "dataset.json"
    with pytest.raises(SystemExit) as info:
        evaluate_cli.main([str(ref), str(pred), "-djfile", str(dataset_json), "-np", "2", "--tolerance_mm", "1", "2"])
    assert info.value.code == 0
    summary = json.loads((pred / "summary.json").read_text())
    for name, value in (("kidney", 1), ("tumor", 2), ("cyst", 3)):
        assert summary["mean"][name]["dice"] == pytest.approx(_independent_dice(ref, pred, value), abs=1e-6)
    assert summary["mean"]["tumor"]["dice"] == 1.0
    assert {"surface_dice@1", "surface_dice@2", "hd95", "assd", "iou", "volume_ref_mm3"} <= set(summary["mean"]["kidney"])
    assert len(summary["metric_per_case"]) == 4


def test_kits23_mode_uses_the_challenge_regions(ct_raw_root, tmp_path):
    ref, pred = _perturbed_copy(ct_raw_root, tmp_path)
    with pytest.raises(SystemExit):
        evaluate_cli.main([str(ref), str(pred), "-djfile", str(ct_raw_root / "Dataset501_SmallCT" / "dataset.json"),
                           "--kits23", "-o", str(tmp_path / "kits.json"), "-np", "1"])
    summary = json.loads((tmp_path / "kits.json").read_text())
    assert [c["name"] for c in summary["classes"]] == ["kidney_and_masses", "masses", "tumor"]
    assert [c["tolerances_mm"] for c in summary["classes"]] == [[1.0331], [1.1329], [1.1498]]
    means = summary["mean"]
    assert summary["kits23"]["mean_dice"] == pytest.approx(np.mean([means[n]["dice"] for n in means]))
    assert summary["empty_is_one"] is True


def test_geometry_mismatch_names_the_case(tmp_path, capsys):
    geometry = ImageGeometry([4, 5, 6], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0, 0, 0, 1, 0, 0, 0, 1])
    write_segmentation(np.zeros((4, 5, 6), np.uint8), geometry, tmp_path / "ref" / "a.nii.gz")
    moved = ImageGeometry([4, 5, 6], [1.0, 1.0, 2.0], [0.0, 0.0, 0.0], geometry.direction)
    write_segmentation(np.zeros((4, 5, 6), np.uint8), moved, tmp_path / "pred" / "a.nii.gz")
    (tmp_path / "dataset.json").write_text(json.dumps({"channel_names": {"0": "CT"}, "labels": {"background": 0, "x": 1},
                                                       "numTraining": 1, "file_ending": ".nii.gz"}))
    with pytest.raises(SystemExit) as info:
        evaluate_cli.main([str(tmp_path / "ref"), str(tmp_path / "pred"), "-djfile", str(tmp_path / "dataset.json"),
                           "-np", "1"])
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert "a.nii.gz: geometry differs from the reference" in err and "spacing" in err
