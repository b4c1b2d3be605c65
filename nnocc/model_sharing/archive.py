"""Sharing trained models as zip files, and installing them without trusting them.

Layout inside the zip (the same as under ``nnocc_results``)::

    DatasetXXX_Name/<trainer>__<plans>__<configuration>/plans.json
                                                       /dataset.json
                                                       /dataset_fingerprint.json     (optional)
                                                       /postprocessing.json          (optional)
                                                       /fold_N/checkpoint_final.pth  (or _best)
                                                       /fold_N/debug.json, training_log.txt, progress.png (optional)
    DatasetXXX_Name/inference_information.json, inference_instructions.txt           (optional)

Installation refuses absolute paths, '..', links, and any member outside that layout, and checks
that every checkpoint loads with ``torch.load(weights_only=True)`` before anything is moved into
place.
"""
from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import List, Optional, Sequence

from nnocc.utils.checkpoints import load_checkpoint
from nnocc.utils.errors import NnoccError

_DATASET = r"Dataset\d{3}_[A-Za-z0-9_.-]+"
_MODEL = r"[A-Za-z0-9_.-]+__[A-Za-z0-9_.-]+__[A-Za-z0-9_.-]+"
ALLOWED = [re.compile(p) for p in (
    rf"^{_DATASET}/{_MODEL}/(plans|dataset|dataset_fingerprint|postprocessing)\.json$",
    rf"^{_DATASET}/{_MODEL}/fold_(\d+|all)/(checkpoint_(final|best)\.pth|debug\.json|training_log\.txt|progress\.png)$",
    rf"^{_DATASET}/(inference_information\.json|inference_instructions\.txt)$",
)]
MAX_UNCOMPRESSED = 50 * 2 ** 30
MODEL_FILES = ("plans.json", "dataset.json", "dataset_fingerprint.json", "postprocessing.json")
FOLD_FILES = ("debug.json", "training_log.txt", "progress.png")


def export_model(model_folder: Path, folds: Sequence[str], output: Path, checkpoint: str = "checkpoint_final.pth",
                 postprocessing: Optional[Path] = None) -> List[str]:
    model_folder = Path(model_folder)
    dataset = model_folder.parent
    members = []
    for name in MODEL_FILES:
        if name == "postprocessing.json" and postprocessing is not None:
            continue
        if (model_folder / name).is_file():
            members.append((model_folder / name, f"{dataset.name}/{model_folder.name}/{name}"))
    if postprocessing is not None:
        members.append((Path(postprocessing), f"{dataset.name}/{model_folder.name}/postprocessing.json"))
    for fold in folds:
        fold_folder = model_folder / f"fold_{fold}"
        if not (fold_folder / checkpoint).is_file():
            raise NnoccError(f"{fold_folder / checkpoint}: missing; train fold {fold} or choose other folds")
        members.append((fold_folder / checkpoint, f"{dataset.name}/{model_folder.name}/fold_{fold}/{checkpoint}"))
        members += [(fold_folder / n, f"{dataset.name}/{model_folder.name}/fold_{fold}/{n}") for n in FOLD_FILES
                    if (fold_folder / n).is_file()]
    for name in ("inference_information.json", "inference_instructions.txt"):
        if (dataset / name).is_file():
            members.append((dataset / name, f"{dataset.name}/{name}"))
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for source, arcname in members:
            archive.write(source, arcname)
    tmp.replace(output)
    return [a for _, a in members]


def _check_member(info: zipfile.ZipInfo, archive: Path) -> Optional[str]:
    name = info.filename
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name) or "\\" in name:
        return f"{archive}: member {name!r} has an absolute path"
    if ".." in PurePosixPath(name).parts:
        return f"{archive}: member {name!r} leaves the archive's folder ('..')"
    if stat.S_ISLNK(info.external_attr >> 16):
        return f"{archive}: member {name!r} is a link"
    if name.endswith("/"):
        return None
    if not any(p.match(name) for p in ALLOWED):
        return f"{archive}: member {name!r} is not part of an nnocc model"
    return None


def check_archive(path: Path) -> List[zipfile.ZipInfo]:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise NnoccError(f"{path}: not a readable zip file ({e})") from None
    with archive:
        infos = archive.infolist()
    problems = [p for p in (_check_member(i, path) for i in infos) if p]
    if sum(i.file_size for i in infos) > MAX_UNCOMPRESSED:
        problems.append(f"{path}: unpacks to more than {MAX_UNCOMPRESSED / 2 ** 30:.0f} GB")
    files = [i for i in infos if not i.filename.endswith("/")]
    if not any(i.filename.endswith(".pth") for i in files):
        problems.append(f"{path}: holds no checkpoint")
    if problems:
        raise NnoccError("\n".join(problems))
    return files


def install_model(path: Path, results_folder: Path, overwrite: bool = False) -> List[Path]:
    """Check, unpack into a temporary folder, load every checkpoint safely, then move into place.

    Nothing that is installed already (a model folder, or a dataset's inference instructions) is
    replaced without ``overwrite``."""
    files = check_archive(Path(path))
    models = sorted({"/".join(i.filename.split("/")[:2]) for i in files if i.filename.count("/") >= 2})
    dataset_files = sorted(i.filename for i in files if i.filename.count("/") == 1)
    targets = [Path(results_folder) / m for m in models]
    existing = [t for t in targets + [Path(results_folder) / f for f in dataset_files] if t.exists()]
    if existing and not overwrite:
        raise NnoccError(f"{existing[0]}: already installed (pass --overwrite to replace it)")
    Path(results_folder).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=results_folder, prefix=".install-") as staging:
        with zipfile.ZipFile(path) as archive:
            for info in files:
                destination = Path(staging) / info.filename
                destination.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as source, open(destination, "wb") as unpacked:
                    shutil.copyfileobj(source, unpacked)
        for checkpoint in Path(staging).rglob("*.pth"):
            load_checkpoint(checkpoint)   # raises for anything that is not plain tensors and values
        for model, target in zip(models, targets):
            if target.exists():
                shutil.rmtree(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(Path(staging) / model), target)
        for name in dataset_files:
            os.replace(Path(staging) / name, Path(results_folder) / name)
    return targets
