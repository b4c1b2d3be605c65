"""Average the probabilities that different configurations or trainings saved (``--save_probabilities``)
and write label maps.  Cases, geometry and outputs must agree between the folders."""
from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from nnocc.io.dataset_json import parse_dataset_json
from nnocc.io.images import ImageGeometry, write_segmentation
from nnocc.utils.errors import NnoccError
from nnocc.utils.json_io import load_json, save_json
from nnocc.utils.parallel import map_cases


def probabilities_to_labels(probabilities: np.ndarray, meta: dict) -> np.ndarray:
    if meta["regions"]:
        masks = probabilities > meta.get("threshold", 0.5)
        order = meta["regions_class_order"]
        out = np.zeros(probabilities.shape[1:], dtype=np.uint8)
        for mask, value in zip(masks, order):
            out[mask] = value
        return out
    return np.asarray(meta["label_values"], dtype=np.uint8)[probabilities.argmax(0)]


def _check_same(metas: List[dict], files: List[Path]) -> None:
    first = metas[0]
    for meta, path in zip(metas[1:], files[1:]):
        if meta["output_names"] != first["output_names"] or meta["regions"] != first["regions"]:
            raise NnoccError(f"{path}: predicts {meta['output_names']}, {files[0]} predicts {first['output_names']}")
        difference = ImageGeometry.from_dict(first["geometry"]).differences(ImageGeometry.from_dict(meta["geometry"]))
        if difference:
            raise NnoccError(f"{path}: geometry differs from {files[0]} ({'; '.join(difference)})")


def _ensemble_case(job) -> str:
    name, folders, output, ending, keep = job
    metas = [load_json(f / f"{name}.json") for f in folders]
    _check_same(metas, [f / f"{name}.json" for f in folders])
    total: Optional[np.ndarray] = None
    for folder in folders:
        with np.load(folder / f"{name}.npz", allow_pickle=False) as data:
            probs = data["probabilities"].astype(np.float32)
        total = probs if total is None else total + probs
    assert total is not None
    mean = total / len(folders)
    geometry = ImageGeometry.from_dict(metas[0]["geometry"])
    if keep:
        tmp = output / f".{name}.tmp.npz"
        np.savez_compressed(tmp, probabilities=mean.astype(np.float16))
        os.replace(tmp, output / f"{name}.npz")
        save_json(metas[0], output / f"{name}.json")
    write_segmentation(probabilities_to_labels(mean, metas[0]), geometry, output / f"{name}{ending}")
    return name


def ensemble_folders(folders: Sequence[Path], output: Path, num_processes: int = 1,
                     save_probabilities: bool = False) -> List[str]:
    folders = [Path(f) for f in folders]
    if len(folders) < 2:
        raise NnoccError("ensembling needs at least two folders")
    names = [sorted(p.stem for p in f.glob("*.npz")) for f in folders]
    for folder, found in zip(folders, names):
        if not found:
            raise NnoccError(f"{folder}: no <case>.npz probabilities (predict with --save_probabilities)")
        if set(found) != set(names[0]):
            missing = sorted(set(names[0]) ^ set(found))
            raise NnoccError(f"{folder}: cases differ from {folders[0]} ({', '.join(missing[:5])})")
    description = parse_dataset_json(load_json(folders[0] / "dataset.json"), str(folders[0] / "dataset.json")) \
        if (folders[0] / "dataset.json").is_file() else None
    ending = description.file_ending if description else ".nii.gz"
    output.mkdir(parents=True, exist_ok=True)
    jobs = [(n, folders, output, ending, save_probabilities) for n in names[0]]
    done, failures = map_cases(_ensemble_case, jobs, num_processes, desc="ensembling", names=names[0])
    if failures:
        raise NnoccError("\n".join(str(e) for _, e in failures))
    if description:
        save_json(description.to_json(), output / "dataset.json")
    return [d for d in done if d]
