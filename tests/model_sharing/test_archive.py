"""Export and install a model; refuse archives that could harm the machine."""
import io
import pickle
import stat
import zipfile

import pytest
import torch

from nnocc.cli import export_model, install_model
from nnocc.inference.predictor import InferenceSettings, Predictor
from tests.conftest import make_untrained_model_folder

MODEL = "Dataset501_SmallCT/nnoccTrainer__nnoccPlans__3d_occ"


def _run(main, args):
    with pytest.raises(SystemExit) as info:
        main(args)
    return info.value.code


def _zip_with(path, name, data=b"x", mode=None):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{MODEL}/plans.json", "{}")
        info = zipfile.ZipInfo(name)
        if mode is not None:
            info.external_attr = mode << 16
        z.writestr(info, data)
    return path


def test_export_then_install_elsewhere_and_predict(trained_folders, tmp_path, monkeypatch):
    make_untrained_model_folder(trained_folders, folds=(0, 1))
    assert _run(export_model.main, ["-d", "501", "-c", "3d_occ", "-f", "0", "1", "-o", str(tmp_path / "model.zip")]) == 0
    names = zipfile.ZipFile(tmp_path / "model.zip").namelist()
    assert f"{MODEL}/fold_1/checkpoint_final.pth" in names and f"{MODEL}/plans.json" in names
    monkeypatch.setenv("nnocc_results", str(tmp_path / "elsewhere"))
    assert _run(install_model.main, [str(tmp_path / "model.zip")]) == 0
    installed = tmp_path / "elsewhere" / MODEL
    predictor = Predictor.from_model_folder(installed, settings=InferenceSettings(tta=False))
    assert predictor.folds == ["0", "1"]
    assert _run(install_model.main, [str(tmp_path / "model.zip")]) == 1  # no silent overwrite


def test_dataset_level_instructions_are_not_overwritten_silently(trained_folders, tmp_path, monkeypatch, capsys):
    model_folder = make_untrained_model_folder(trained_folders, folds=(0,))
    (model_folder.parent / "inference_instructions.txt").write_text("from the zip\n")
    assert _run(export_model.main, ["-d", "501", "-c", "3d_occ", "-f", "0", "-o", str(tmp_path / "model.zip")]) == 0
    results = tmp_path / "elsewhere"
    mine = results / "Dataset501_SmallCT" / "inference_instructions.txt"
    mine.parent.mkdir(parents=True)
    mine.write_text("my own choice\n")
    monkeypatch.setenv("nnocc_results", str(results))
    assert _run(install_model.main, [str(tmp_path / "model.zip")]) == 1
    assert "inference_instructions.txt: already installed" in capsys.readouterr().err
    assert mine.read_text() == "my own choice\n" and not (results / MODEL).exists()
    assert _run(install_model.main, [str(tmp_path / "model.zip"), "--overwrite"]) == 0
    assert mine.read_text() == "from the zip\n"


class Evil:
    def __reduce__(self):
        return (eval, ("__import__('os').system('echo pwned')",))


@pytest.mark.parametrize("kind, message", [
    ("absolute", "absolute path"), ("dotdot", "'..'"), ("link", "is a link"), ("unexpected", "not part of an nnocc model"),
    ("pickle", "cannot be loaded safely"), ("notzip", "not a readable zip")])
def test_malicious_archives_are_refused(tmp_path, monkeypatch, capsys, kind, message):
    monkeypatch.setenv("nnocc_results", str(tmp_path / "results"))
    path = tmp_path / "bad.zip"
    if kind == "absolute":
        _zip_with(path, "/etc/evil.json")
    elif kind == "dotdot":
        _zip_with(path, f"{MODEL}/../../../evil.json")
    elif kind == "link":
        _zip_with(path, f"{MODEL}/fold_0/checkpoint_final.pth", b"/etc/passwd", stat.S_IFLNK | 0o777)
    elif kind == "unexpected":
        _zip_with(path, f"{MODEL}/fold_0/run_me.py", b"print('hi')")
    elif kind == "pickle":
        buffer = io.BytesIO()
        torch.save({"network_weights": {}}, buffer)
        _zip_with(path, f"{MODEL}/fold_0/checkpoint_final.pth", pickle.dumps({"x": Evil()}))
    else:
        path.write_bytes(b"definitely not a zip")
    assert _run(install_model.main, [str(path)]) == 1
    assert message in capsys.readouterr().err
    results = tmp_path / "results"
    assert not results.exists() or not any(p for p in results.rglob("*") if not p.name.startswith(".install"))
