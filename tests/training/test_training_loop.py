"""End to end on tiny generated data: train, files, resume after a kill, final validation, DDP."""
import json
import math
import re

import pytest
import torch

from nnocc.architectures.registry import build_model
from nnocc.cli import train as train_cli
from nnocc.cli.environment import dataset_paths
from nnocc.planning.plans import Plans
from nnocc.training import steps
from nnocc.utils.checkpoints import load_checkpoint, save_checkpoint

SHORT = ["--epochs", "3", "--iterations_per_epoch", "2", "--validation_iterations", "1", "--quiet"]


def _train(*args):
    with pytest.raises(SystemExit) as info:
        train_cli.main(["501", "3d_occ", *args])
    return info.value.code


def test_train_fold_writes_everything_and_validates(trained_folders, monkeypatch):
    monkeypatch.setenv("nnocc_n_proc_DA", "2")          # the augmentation workers' path, which the suite otherwise skips
    assert _train("0", *SHORT, "--val_disable_tta", "--set", "lr_schedule=cosine") == 0
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
    log = (folder / "training_log.txt").read_text()
    assert "final validation Dice" in log
    assert json.loads((folder / "debug.json").read_text())["data_augmentation_workers"] == 2
    assert re.search(r"training on the CPU: [0-9.]+ s per iteration \(measured\)", log)
    initial = json.loads((folder / "debug.json").read_text())["training"]["initial_lr"]
    expected = [initial * 0.5 * (1 + math.cos(math.pi * epoch / 3)) for epoch in range(3)]
    assert payload["history"]["learning_rate"] == pytest.approx(expected)


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
    assert [len(re.findall(rf"^epoch {e}:", log, flags=re.M)) for e in range(3)] == [1, 1, 1]


def test_unknown_setting_and_bad_fold_are_one_line_errors(trained_folders, capsys):
    assert _train("0", "--set", "learning_rate=1") == 1
    assert "unknown training setting(s) learning_rate" in capsys.readouterr().err
    assert _train("0", "--set", "lr_schedule=linear") == 1
    assert "lr_schedule 'linear' is not one of poly, cosine" in capsys.readouterr().err
    assert _train("0", "--set", "num_epochs=many") == 1
    assert "--set num_epochs=many: expected int" in capsys.readouterr().err
    assert _train("seven") == 1


def test_resuming_weights_of_another_network_is_a_one_line_error(trained_folders, capsys):
    paths = dataset_paths(501)
    arch = Plans.load(paths.plans_file("nnoccPlans")).configurations["3d_occ"].architecture
    other = build_model(arch.name, {**arch.kwargs, "hidden": 2 * arch.kwargs["hidden"]})
    folder = paths.model_folder("3d_occ") / "fold_4"
    save_checkpoint(folder / "checkpoint_latest.pth", {"network_weights": other.state_dict(), "optimizer_state": {}})
    assert _train("4", *SHORT, "--c") == 1
    err = capsys.readouterr().err
    assert "checkpoint_latest.pth: does not fit the 3d_occ network of the current plans" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_folds_of_one_model_must_share_the_plan(trained_folders, capsys):
    paths = dataset_paths(501)
    plans = Plans.load(paths.plans_file("nnoccPlans"))
    plans.configurations["3d_occ"].patch_size = [8, 16, 16]
    plans.save(paths.model_folder("3d_occ") / "plans.json")
    assert _train("0", *SHORT) == 1
    err = capsys.readouterr().err
    assert "the folds trained so far used another 3d_occ plan (patch_size: [8, 16, 16] ->" in err


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


def test_snapshots_are_kept_when_the_clock_passes_each_mark(trained_folders):
    assert _train("4", *SHORT, "--no_final_validation", "--snapshot_minutes", "1000", "0") == 0
    folder = dataset_paths(501).model_folder("3d_occ") / "fold_4"
    first = load_checkpoint(folder / "checkpoint_at_0min.pth")
    assert first["iterations"] == 1 and first["elapsed_seconds"] == 0.0   # taken inside the first epoch
    assert not (folder / "checkpoint_at_1000min.pth").exists()
    assert "snapshot at 0 min (1 iterations)" in (folder / "training_log.txt").read_text()
