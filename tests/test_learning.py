"""The model learns: plan, 72 training iterations, predict held-out cases, evaluate.

A broken loss, a wrong coordinate convention between the image patch and the query points, or
labels shifted by one class all leave the kidney (the large structure) far below the floor; the
passing figure was 0.62-0.83 over seeds 1-3 (0.62 with seed 1, which this test uses)."""
import json

import pytest

from nnocc.cli import evaluate_folder, predict, train

KIDNEY_DICE_FLOOR = 0.5


def _run(main, args):
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 0


def test_a_short_training_segments_the_held_out_kidneys(trained_folders, tmp_path, monkeypatch):
    monkeypatch.setenv("nnocc_n_proc_DA", "0")          # batches in the main process: deterministic
    raw = trained_folders.raw / "Dataset501_SmallCT"
    _run(train.main, ["501", "3d_occ", "0", "--epochs", "6", "--iterations_per_epoch", "12",
                      "--validation_iterations", "1", "--no_final_validation", "--quiet", "--seed", "1"])
    _run(predict.main, ["-i", str(raw / "imagesTs"), "-o", str(tmp_path / "out"), "-d", "501", "-c", "3d_occ",
                        "-f", "0", "--disable_tta", "-npp", "1"])
    _run(evaluate_folder.main, [str(raw / "labelsTs"), str(tmp_path / "out"), "-djfile", str(raw / "dataset.json"),
                                "-np", "1"])
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["num_cases"] == 2
    assert summary["mean"]["kidney"]["dice"] >= KIDNEY_DICE_FLOOR, summary["mean"]["kidney"]
