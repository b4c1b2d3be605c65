"""End to end on tiny generated data: train, files, resume after a kill, final validation, DDP."""
import json
import re

import pytest
import torch

from nnocc.cli import train as train_cli
from nnocc.paths import dataset_paths
from nnocc.training import steps
from nnocc.training.checkpoint import load_checkpoint

SHORT = ["--epochs", "3", "--iterations_per_epoch", "2", "--validation_iterations", "1", "--quiet"]


def _train(*args):
    with pytest.raises(SystemExit) as info:
        train_cli.main(["501", "3d_occ", *args])
    return info.value.code


def test_train_fold_writes_everything_and_validates(trained_folders):
    assert _train("0", *SHORT, "--val_disable_tta") == 0
    folder = dataset_paths(501).model_folder("3d_occ") / "fold_0"
    for name in ("checkpoint_final.pth", "checkpoint_best.pth", "training_log.txt", "progress.png", "debug.json"):
        assert (folder / name).is_file(), name
    assert not (folder / "checkpoint_latest.pth").exists()
    for name in ("plans.json", "dataset.json"):
        assert (folder.parent / name).is_file()
    payload = load_checkpoint(folder / "checkpoint_final.pth")
    assert payload["epoch"] == 3 and len(payload["history"]["train_loss"]) == 3
    summary = json.loads((folder / "validation" / "summary.json").read_text())
    assert summary["num_cases"] == len(json.loads((folder / "debug.json").read_text())["val_cases"])
    assert set(summary["mean"]) == {"kidney", "tumor", "cyst"}
    assert "final validation Dice" in (folder / "training_log.txt").read_text()


def test_killed_run_continues_to_the_same_number_of_epochs(trained_folders, monkeypatch):
    original = steps.train_step
    calls = {"n": 0}

    def dies_in_second_epoch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr("nnocc.training.loop.train_step", dies_in_second_epoch)
    assert _train("1", *SHORT, "--no_final_validation") == 130
    folder = dataset_paths(501).model_folder("3d_occ") / "fold_1"
    assert load_checkpoint(folder / "checkpoint_latest.pth")["epoch"] == 1
    monkeypatch.setattr("nnocc.training.loop.train_step", original)
    assert _train("1", *SHORT, "--no_final_validation", "--c") == 0
    log = (folder / "training_log.txt").read_text()
    assert "interrupted in epoch 1" in log and "resumed from checkpoint_latest.pth at epoch 1" in log
    assert load_checkpoint(folder / "checkpoint_final.pth")["epoch"] == 3
    assert len(re.findall(r"^epoch 2:", log, flags=re.M)) == 1 or "epoch 2:" in log


def test_unknown_setting_and_bad_fold_are_one_line_errors(trained_folders, capsys):
    assert _train("0", "--set", "learning_rate=1") == 1
    assert "unknown training setting(s) learning_rate" in capsys.readouterr().err
    assert _train("seven") == 1


def test_two_processes_stay_in_sync(trained_folders):
    """DDP over two CPU processes with gloo: after training both ranks hold identical weights."""
    assert _train("2", "--epochs", "2", "--iterations_per_epoch", "2", "--validation_iterations", "1", "--quiet",
                  "--no_final_validation", "--num_processes", "2") == 0
    folder = dataset_paths(501).model_folder("3d_occ") / "fold_2"
    log = (folder / "training_log.txt").read_text()
    assert json.loads((folder / "debug.json").read_text())["world_size"] == 2
    assert log.count("epoch 1:") == 1  # only rank 0 writes
    assert "all 2 ranks hold identical weights" in log
    weights = load_checkpoint(folder / "checkpoint_final.pth")["network_weights"]
    assert all(torch.isfinite(w).all() for w in weights.values() if w.is_floating_point())


def test_same_seed_same_weights(trained_folders, monkeypatch):
    monkeypatch.setenv("nnocc_n_proc_DA", "0")
    weights = []
    for trainer in ("runA", "runB"):
        assert _train("3", "--epochs", "1", "--iterations_per_epoch", "2", "--validation_iterations", "1", "--quiet",
                      "--no_final_validation", "-tr", trainer, "--seed", "7") == 0
        folder = dataset_paths(501).model_folder("3d_occ", trainer=trainer) / "fold_3"
        weights.append(load_checkpoint(folder / "checkpoint_final.pth")["network_weights"])
    for name, tensor in weights[0].items():
        assert torch.equal(tensor, weights[1][name]), name
