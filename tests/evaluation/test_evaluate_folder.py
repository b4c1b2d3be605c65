import json

import numpy as np
import pytest
from scipy.ndimage import binary_dilation

from nnocc.cli import evaluate_folder as evaluate_cli
from nnocc.evaluation.evaluate_folder import evaluation_settings
from nnocc.evaluation.metrics import MetricSettings, structure_metrics, surface_dice_key
from nnocc.io.dataset_json import load_dataset_json
from nnocc.io.images import ImageGeometry, read_image, write_segmentation


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
    assert [c["tolerances_mm"] for c in summary["classes"]] == [[1.0330772532390826], [1.1328796488598762],
                                                                [1.1498198361434828]]
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


def test_kits23_tolerances_are_exact_where_rounding_matters(ct_raw_root):
    """At a spacing between the exact tolerance and its rounding, a one-voxel shift is within one and
    outside the other: the challenge's own constant decides."""
    description = load_dataset_json(ct_raw_root / "Dataset501_SmallCT" / "dataset.json")
    masses = evaluation_settings(description, kits23=True).classes[1]
    exact, rounded = 1.1328796488598762, 1.1329
    assert masses.tolerances_mm == [exact]
    spacing = [1.13289] * 3
    reference = np.zeros((20, 20, 20), bool)
    reference[5:15, 5:15, 5:15] = True
    prediction = np.roll(reference, 1, axis=0)
    values = structure_metrics(reference, prediction, spacing, MetricSettings(masses.tolerances_mm + [rounded]))
    assert values[surface_dice_key(exact)] < values[surface_dice_key(rounded)] - 0.1
    assert surface_dice_key(exact) != surface_dice_key(1.13288) and surface_dice_key(1.0) == "surface_dice@1"


def _evaluate(ref, pred, dataset_json, *extra):
    with pytest.raises(SystemExit) as info:
        evaluate_cli.main([str(ref), str(pred), "-djfile", str(dataset_json), "-np", "1", *extra])
    return info.value.code


def test_an_undeclared_predicted_value_is_an_error_and_no_old_summary_remains(ct_raw_root, tmp_path, capsys):
    ref, pred = _perturbed_copy(ct_raw_root, tmp_path)
    dataset_json = ct_raw_root / "Dataset501_SmallCT" / "dataset.json"
    assert _evaluate(ref, pred, dataset_json) == 0 and (pred / "summary.json").is_file()
    broken = sorted(pred.glob("*.nii.gz"))[1]
    labels, geometry = read_image(broken)
    labels[0, 0, 0] = 7
    write_segmentation(labels, geometry, broken)
    assert _evaluate(ref, pred, dataset_json) == 1
    assert f"{broken.name}: value(s) [7] not declared in dataset.json" in capsys.readouterr().err
    assert not (pred / "summary.json").exists()


def test_chill_records_the_missing_cases(ct_raw_root, tmp_path, capsys):
    ref, pred = _perturbed_copy(ct_raw_root, tmp_path)
    dataset_json = ct_raw_root / "Dataset501_SmallCT" / "dataset.json"
    missing = sorted(pred.glob("*.nii.gz"))[0]
    missing.unlink()
    assert _evaluate(ref, pred, dataset_json) == 1
    assert _evaluate(ref, pred, dataset_json, "--chill") == 0
    summary = json.loads((pred / "summary.json").read_text())
    assert summary["missing_predictions"] == [missing.name] and summary["num_cases"] == 3
