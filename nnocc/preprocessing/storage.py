"""Preprocessed cases on disk: blosc2-compressed arrays plus a JSON of properties.

Per case ``<name>``:
* ``<name>.b2nd``: normalised image at the target spacing, (C, z, y, x) float32;
* ``<name>_seg.b2nd``: labels at the target spacing (samplers, boundary bands);
* ``<name>_seg_original.b2nd``: labels at the original resolution, cropped (query-point labels);
* ``<name>_locations.npz``: voxel positions per label and for the donut sampler;
* ``<name>.json``: properties (original geometry, crop box, shapes).  Written last: a case is
  complete when its JSON exists.

Arrays open memory-mapped, so a training patch reads only the chunks it touches.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import blosc2
import numpy as np

from nnocc.io.images import ImageGeometry
from nnocc.utils.serialization import JsonDataclass

blosc2.set_nthreads(1)


@dataclass
class CaseProperties(JsonDataclass):
    name: str
    geometry: ImageGeometry           # of the original image
    crop_bbox: List[List[int]]        # half-open, original index
    cropped_shape: List[int]
    preprocessed_shape: List[int]
    preprocessed_spacing: List[float]  # effective spacing of the resampled grid
    z_axis: Optional[int]
    preprocessing_key: str
    labels_present: List[int] = field(default_factory=list)


def _chunks(shape) -> tuple:
    spatial = tuple(min(s, 64) for s in shape[-3:])
    return tuple([1] * (len(shape) - 3)) + spatial


def _save_array(array: np.ndarray, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    blosc2.asarray(np.ascontiguousarray(array), urlpath=str(tmp), mode="w", chunks=_chunks(array.shape),
                   cparams={"codec": blosc2.Codec.ZSTD, "clevel": 5, "nthreads": 1})
    os.replace(tmp, path)


def open_array(path: Path):
    """Memory-mapped blosc2 array; index it like numpy (``a[...]`` decompresses)."""
    return blosc2.open(str(path), mode="r", mmap_mode="r")


# the files of one case, by suffix; the properties JSON comes last because it marks a case complete
CASE_FILE_SUFFIXES = (".b2nd", "_seg.b2nd", "_seg_original.b2nd", "_locations.npz", ".json")


def case_files(folder: Path, name: str) -> List[Path]:
    """Every file of case ``name``, matched by its whole name: case_1 never owns case_10's files."""
    return [folder / f"{name}{suffix}" for suffix in CASE_FILE_SUFFIXES]


def save_case(folder: Path, properties: CaseProperties, image: np.ndarray, seg: np.ndarray,
              seg_original: np.ndarray, locations: Dict[str, np.ndarray]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    image_file, seg_file, original_file, locations_file, properties_file = case_files(folder, properties.name)
    _save_array(image.astype(np.float32, copy=False), image_file)
    _save_array(seg, seg_file)
    _save_array(seg_original, original_file)
    tmp = folder / f".{properties.name}_locations.tmp.npz"
    arrays: Dict[str, Any] = {k: v.astype(np.int32) for k, v in locations.items()}
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, locations_file)
    properties.save(properties_file)


def remove_case(folder: Path, name: str) -> None:
    # the properties file goes first, so that an interrupted removal leaves an incomplete case
    for path in reversed(case_files(folder, name)):
        path.unlink(missing_ok=True)


@dataclass
class PreprocessedCase:
    properties: CaseProperties
    image: Any                        # blosc2 array (C, z, y, x)
    seg: Any                          # blosc2 array (z, y, x)
    seg_original: Any                 # blosc2 array (z, y, x)
    locations: Dict[str, np.ndarray]


def case_is_complete(folder: Path, name: str, key: str) -> bool:
    path = folder / f"{name}.json"
    if not path.is_file():
        return False
    try:
        return CaseProperties.load(path).preprocessing_key == key
    except Exception:  # noqa: BLE001 - a damaged properties file means: redo the case
        return False


def load_preprocessed_case(folder: Path, name: str) -> PreprocessedCase:
    with np.load(folder / f"{name}_locations.npz", allow_pickle=False) as data:
        locations = {k: data[k] for k in data.files}
    return PreprocessedCase(CaseProperties.load(folder / f"{name}.json"), open_array(folder / f"{name}.b2nd"),
                            open_array(folder / f"{name}_seg.b2nd"), open_array(folder / f"{name}_seg_original.b2nd"),
                            locations)


def list_cases(folder: Path) -> List[str]:
    return sorted(p.stem for p in folder.glob("*.json") if not p.name.startswith("."))


