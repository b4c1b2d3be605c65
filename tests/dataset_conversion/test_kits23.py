"""KiTS23 conversion, then region training, prediction and KiTS23 evaluation end to end."""
import json
import shutil

import numpy as np
import pytest

from nnocc.cli import convert_kits23, evaluate_folder, plan_and_preprocess, predict, train
from nnocc.dataset_conversion.synthetic import generate_kits23_layout
from nnocc.io.images import read_image


def _run(main, args):
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 0, args


def test_conversion_and_region_pipeline(data_folders, tmp_path):
    kits = generate_kits23_layout(tmp_path / "kits23", 6, shape=(20, 56, 56), seed=3)
    (kits / "case_00005" / "segmentation.nii.gz").unlink()  # a test case without labels
    _run(convert_kits23.main, [str(kits), "-d", "23"])
    folder = data_folders.raw / "Dataset023_KiTS2023"
    meta = json.loads((folder / "dataset.json").read_text())
    assert meta["labels"] == {"background": 0, "kidney_and_masses": [1, 2, 3], "masses": [2, 3], "tumor": 2}
    assert meta["regions_class_order"] == [1, 3, 2] and meta["numTraining"] == 5
    assert len(list((folder / "imagesTr").iterdir())) == 5 and len(list((folder / "imagesTs").iterdir())) == 1
    source = kits / "case_00000" / "imaging.nii.gz"
    converted = folder / "imagesTr" / "case_00000_0000.nii.gz"
    assert converted.read_bytes() == source.read_bytes()  # linked or copied, never re-encoded

    _run(plan_and_preprocess.main, ["-d", "23", "-np", "1", "--gpu_memory_target", "1"])
    _run(train.main, ["23", "3d_occ", "all", "--epochs", "1", "--iterations_per_epoch", "2",
                      "--validation_iterations", "1", "--quiet"])
    one = tmp_path / "one"
    one.mkdir()
    shutil.copy(converted, one / converted.name)
    _run(predict.main, ["-i", str(one), "-o", str(tmp_path / "pred"), "-d", "23", "-c", "3d_occ", "-f", "all", "--disable_tta",
                        "-npp", "1"])
    labels, geometry = read_image(tmp_path / "pred" / "case_00000.nii.gz")
    assert set(np.unique(labels)) <= {0, 1, 2, 3}
    assert geometry.differences(read_image(converted)[1]) == []
    _run(evaluate_folder.main, [str(folder / "labelsTr"), str(tmp_path / "pred"), "-djfile",
                                str(folder / "dataset.json"), "--kits23", "-np", "1", "--chill"])
    summary = json.loads((tmp_path / "pred" / "summary.json").read_text())
    assert set(summary["mean"]) == {"kidney_and_masses", "masses", "tumor"}
