"""find_best_configuration on fabricated cross-validation results; its instructions run as written."""
import json
import shlex

import numpy as np
import pytest

from nnocc.cli import apply_postprocessing, ensemble, find_best_configuration, predict
from nnocc.cli.environment import dataset_paths
from nnocc.io.images import read_image, write_segmentation
from nnocc.training.splits import load_or_create_splits
from tests.conftest import make_untrained_model_folder
from tests.postprocessing.test_postprocessing import add_fragments

COMMANDS = {"nnocc_predict": predict.main, "nnocc_ensemble": ensemble.main,
            "nnocc_apply_postprocessing": apply_postprocessing.main}


def _fake_validation(paths, trainer, folds, rng, fragments):
    cases = sorted(p.name[:-7] for p in (paths.preprocessed / "gt_segmentations").glob("*.nii.gz"))
    splits = load_or_create_splits(paths.splits_file, cases)
    model = paths.model_folder("3d_occ", "nnoccPlans", trainer)
    for fold in folds:
        for case in splits[int(fold)]["val"]:
            labels, geometry = read_image(paths.preprocessed / "gt_segmentations" / f"{case}.nii.gz")
            write_segmentation(add_fragments(labels, rng, count=fragments), geometry,
                               model / f"fold_{fold}" / "validation" / f"{case}.nii.gz")


def test_best_configuration_and_runnable_instructions(trained_folders, tmp_path, capsys):
    paths = dataset_paths(501)
    make_untrained_model_folder(trained_folders, folds=(0, 1))
    rng = np.random.default_rng(1)
    _fake_validation(paths, "nnoccTrainer", ["0", "1"], rng, fragments=1)
    _fake_validation(paths, "worseTrainer", ["0", "1"], rng, fragments=6)
    with pytest.raises(SystemExit) as info:
        find_best_configuration.main(["-d", "501", "-tr", "nnoccTrainer", "worseTrainer", "-f", "0", "1", "-np", "1"])
    assert info.value.code == 0
    information = json.loads((paths.results / "inference_information.json").read_text())
    assert information["best"] == "nnoccTrainer__nnoccPlans__3d_occ"
    assert set(information["results"]) == {"nnoccTrainer__nnoccPlans__3d_occ", "worseTrainer__nnoccPlans__3d_occ"}
    assert information["postprocessing_steps"]
    assert "nnocc_predict" in (paths.results / "inference_instructions.txt").read_text()
    inputs = paths.raw / "imagesTs"
    replacements = {"INPUT_FOLDER": str(inputs), "OUTPUT_FOLDER_PP": str(tmp_path / "pp"),
                    "OUTPUT_FOLDER": str(tmp_path / "out")}
    for command in information["commands"]:
        for key, value in replacements.items():
            command = command.replace(key, value)
        words = shlex.split(command)
        with pytest.raises(SystemExit) as info:
            COMMANDS[words[0]](words[1:] + (["--disable_tta", "-npp", "1"] if words[0] == "nnocc_predict" else []))
        assert info.value.code == 0, command
    assert sorted(p.name for p in (tmp_path / "pp").glob("*.nii.gz")) == ["case_0006.nii.gz", "case_0007.nii.gz"]
