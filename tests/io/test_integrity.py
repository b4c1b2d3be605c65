"""Every broken kind of dataset: a one-line error naming the file, exit code 1, nothing written."""
import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from nnocc.cli import plan_and_preprocess
from nnocc.io.images import read_image, write_image
from tests.conftest import copy_dataset

NAME = "Dataset501_SmallCT"


def _edit_json(folder, **changes):
    path = folder / "dataset.json"
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def _rewrite(path, array=None, **geometry_changes):
    data, geometry = read_image(path)
    for key, value in geometry_changes.items():
        setattr(geometry, key, value)
    array = data if array is None else array
    geometry.shape = list(array.shape)
    write_image(array, geometry, path)


def _label(folder, case="case_0001"):
    return folder / "labelsTr" / f"{case}.nii.gz"


def _image(folder, case="case_0001"):
    return folder / "imagesTr" / f"{case}_0000.nii.gz"


def _truncate(path):
    """Cut a file inside its compressed voxel data: SimpleITK reads such a file without complaint."""
    data = path.read_bytes()
    path.write_bytes(data[:len(data) * 2 // 3])


BROKEN = {
    "missing dataset.json": (lambda f: (f / "dataset.json").unlink(), "dataset.json: missing"),
    "malformed dataset.json": (lambda f: (f / "dataset.json").write_text("{not json"), "dataset.json: not valid JSON"),
    "numTraining disagrees": (lambda f: _edit_json(f, numTraining=9), "numTraining is 9 but labelsTr holds 6"),
    "missing label": (lambda f: _label(f).unlink(), "case_0001.nii.gz: missing label file"),
    "missing channel": (lambda f: _image(f).unlink(), "label without image"),
    "label size differs": (lambda f: _rewrite(_label(f), np.zeros((3, 4, 5), np.uint8)), "case_0001.nii.gz: differs .* size"),
    "label spacing differs": (lambda f: _rewrite(_label(f), spacing=[9.0, 9.0, 9.0]), "case_0001.nii.gz: differs .* spacing"),
    "label origin differs": (lambda f: _rewrite(_label(f), origin=[1.0, 2.0, 3.0]), "differs .* origin"),
    "label direction differs": (lambda f: _rewrite(_label(f), direction=[0.0, 1, 0, 1, 0, 0, 0, 0, 1]),
                                "differs .* direction"),
    "undeclared label value": (lambda f: _rewrite(_label(f), np.full(read_image(_label(f))[0].shape, 7, np.uint8)),
                               r"label value\(s\) \[7\] not declared"),
    "non-finite intensity": (lambda f: _rewrite(_image(f), np.where(np.arange(read_image(_image(f))[0].size).reshape(
        read_image(_image(f))[0].shape) == 5, np.nan, 0).astype(np.float32)), "non-finite value"),
    "wrong dimensionality": (lambda f: sitk.WriteImage(sitk.GetImageFromArray(np.zeros((4, 5), np.float32)),
                                                       str(_image(f))), "expected a 3D image, got 2D"),
    "truncated file": (lambda f: _image(f).write_bytes(_image(f).read_bytes()[:200]), "unreadable image"),
    "image truncated in its data": (lambda f: _truncate(_image(f)), r"case_0001_0000.nii.gz: unreadable or truncated"),
    "label truncated in its data": (lambda f: _truncate(_label(f)), r"case_0001.nii.gz: unreadable or truncated"),
    "not an image": (lambda f: _label(f).write_text("hello"), "unreadable image"),
    "no cases": (lambda f: [shutil.rmtree(f / d) or (f / d).mkdir() for d in ("imagesTr", "labelsTr")] and
                 _edit_json(f, numTraining=0), "dataset has no cases"),
}


@pytest.mark.parametrize("kind", list(BROKEN))
def test_broken_dataset_is_reported_and_nothing_written(kind, ct_raw_root, data_folders, capsys):
    copy_dataset(ct_raw_root, data_folders)
    breaker, message = BROKEN[kind]
    breaker(data_folders.raw / NAME)
    with pytest.raises(SystemExit) as exit_info:
        plan_and_preprocess.main(["-d", "501", "-np", "1"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    error_lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert error_lines, err
    import re
    assert any(re.search(message, line) for line in error_lines), err
    assert "Traceback" not in err
    assert list(data_folders.preprocessed.iterdir()) == []


def test_all_problems_found_in_one_pass(ct_raw_root, data_folders, capsys):
    copy_dataset(ct_raw_root, data_folders)
    folder = data_folders.raw / NAME
    _rewrite(_label(folder, "case_0001"), spacing=[9.0, 9.0, 9.0])
    _label(folder, "case_0003").write_text("garbage")
    _rewrite(_label(folder, "case_0004"), np.full(read_image(_label(folder, "case_0004"))[0].shape, 9, np.uint8))
    with pytest.raises(SystemExit):
        plan_and_preprocess.main(["-d", "501", "-np", "2"])
    err = capsys.readouterr().err
    for case in ("case_0001", "case_0003", "case_0004"):
        assert f"{case}.nii.gz" in err
    assert "3 problem(s) found" in err
    assert list(data_folders.preprocessed.iterdir()) == []


def test_several_datasets_in_one_command_the_broken_one_is_reported_the_others_done(ct_raw_root, data_folders,
                                                                                     capsys):
    copy_dataset(ct_raw_root, data_folders)
    broken = data_folders.raw / "Dataset502_Broken"
    shutil.copytree(data_folders.raw / NAME, broken)
    _label(broken, "case_0003").write_text("garbage")
    with pytest.raises(SystemExit) as exit_info:
        plan_and_preprocess.main(["-d", "502", "501", "-np", "1", "--gpu_memory_target", "1"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "Dataset502_Broken/labelsTr/case_0003.nii.gz" in err
    assert "1 of 2 datasets failed (502); the others are done" in err
    assert (data_folders.preprocessed / NAME / "nnoccPlans.json").is_file()
    assert not (data_folders.preprocessed / "Dataset502_Broken").exists()
