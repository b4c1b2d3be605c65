"""Writing a case's prediction: label map, optional probabilities (.npz + .json), optional meshes."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from nnocc.inference.meshes import surface, write_mesh
from nnocc.io.dataset_json import DatasetDescription
from nnocc.io.images import ImageGeometry, write_segmentation
from nnocc.utils.json_io import save_json


@dataclass
class CasePrediction:
    name: str
    labels: np.ndarray                       # on ``geometry``
    geometry: ImageGeometry
    probabilities: Optional[np.ndarray]      # (K, ...) on ``geometry`` if kept
    stats: Dict[str, Any] = field(default_factory=dict)


def save_probabilities(prediction: CasePrediction, description: DatasetDescription, path_stem: Path,
                       threshold: float = 0.5) -> None:
    if prediction.probabilities is None:
        raise ValueError(f"{prediction.name}: probabilities were not kept (InferenceSettings.keep_probabilities)")
    tmp = path_stem.with_name(f".{path_stem.name}.tmp.npz")
    np.savez_compressed(tmp, probabilities=prediction.probabilities.astype(np.float16))
    os.replace(tmp, path_stem.with_suffix(".npz"))
    order = description.regions_class_order or [values[-1] for _, values in description.regions]
    save_json({"geometry": prediction.geometry.to_dict(), "output_names": description.output_names,
               "regions": description.has_regions, "label_values": description.label_values,
               "regions_class_order": order if description.has_regions else None, "threshold": threshold},
              path_stem.with_suffix(".json"))


def save_meshes(prediction: CasePrediction, description: DatasetDescription, folder: Path, fmt: str,
                threshold: float) -> List[Path]:
    written = []
    names = description.output_names
    for channel, name in enumerate(names):
        if not description.has_regions and channel == 0:
            continue
        if prediction.probabilities is not None:
            level = threshold if description.has_regions else 0.5
            vertices, faces = surface(prediction.probabilities[channel], level, prediction.geometry)
        else:
            mask = prediction.labels == description.label_values[channel]
            vertices, faces = surface(mask.astype(np.float32), 0.5, prediction.geometry)
        path = folder / f"{prediction.name}_{name}.{fmt}"
        write_mesh(path, vertices, faces)
        written.append(path)
    return written


def write_prediction(prediction: CasePrediction, description: DatasetDescription, folder: Path,
                     probabilities: bool = False, mesh: Optional[str] = None, threshold: float = 0.5) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{prediction.name}{description.file_ending}"
    if probabilities and prediction.probabilities is not None:
        save_probabilities(prediction, description, folder / prediction.name, threshold)
    if mesh:
        save_meshes(prediction, description, folder, mesh, threshold)
    write_segmentation(prediction.labels, prediction.geometry, path)   # last: its presence means "done"
    return path
