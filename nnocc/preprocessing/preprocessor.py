"""Crop, normalise, resample: the same code for training data and for inference."""
from __future__ import annotations

import logging
import os
import shutil
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
from scipy.ndimage import distance_transform_edt

from nnocc.coordinates import effective_spacing, resampled_shape
from nnocc.io.images import ImageGeometry
from nnocc.io.raw_dataset import RawCase, RawDataset, load_case, load_cases_checked
from nnocc.planning.plans import ConfigurationPlan
from nnocc.preprocessing.cropping import crop_to_nonzero, nonzero_mask
from nnocc.preprocessing.normalization import normalize_image
from nnocc.preprocessing.resampling import out_of_plane_axis, resample_image, resample_labels
from nnocc.preprocessing.storage import CaseProperties, case_is_complete, save_case

logger = logging.getLogger(__name__)
MAX_LOCATIONS = 10000


@dataclass
class PreprocessedImage:
    data: np.ndarray                  # (C, z, y, x) float32 at the target spacing
    properties: CaseProperties
    cropped_label: Optional[np.ndarray]


def preprocess_image(image: np.ndarray, geometry: ImageGeometry, config: ConfigurationPlan, name: str,
                     label: Optional[np.ndarray] = None) -> PreprocessedImage:
    """(C, z, y, x) raw intensities -> normalised data at the target spacing, plus its properties."""
    cropped, cropped_label, bbox = crop_to_nonzero(image, label)
    mask = nonzero_mask(cropped) if any(n.use_nonzero_mask for n in config.normalization) else None
    normalized = normalize_image(cropped, config.normalization, mask)
    new_shape = resampled_shape(cropped.shape[1:], geometry.spacing, config.spacing)
    z_axis = out_of_plane_axis(geometry.spacing, config.spacing)
    data = resample_image(normalized, new_shape, config.resampling, z_axis)
    properties = CaseProperties(
        name=name, geometry=geometry, crop_bbox=bbox, cropped_shape=list(cropped.shape[1:]),
        preprocessed_shape=list(new_shape),
        preprocessed_spacing=effective_spacing(cropped.shape[1:], geometry.spacing, new_shape).tolist(),
        z_axis=z_axis if config.resampling.separate_z else None, preprocessing_key=config.preprocessing_key())
    return PreprocessedImage(data, properties, cropped_label)


def _sample_rows(coords: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if len(coords) > MAX_LOCATIONS:
        coords = coords[rng.choice(len(coords), MAX_LOCATIONS, replace=False)]
    return coords


def sampler_locations(seg: np.ndarray, spacing, donut_labels: List[int], donut_margin_mm: float,
                      rng: np.random.Generator) -> Dict[str, np.ndarray]:
    """Voxel positions for the label-centred sampler (per label) and the donut sampler (a shell
    around, not inside, the donut labels' structures)."""
    locations = {}
    for value in np.unique(seg):
        if value != 0:
            locations[f"label_{int(value)}"] = _sample_rows(np.argwhere(seg == value), rng)
    target = np.isin(seg, donut_labels)
    if target.any() and donut_margin_mm > 0:
        distance = distance_transform_edt(~target, sampling=spacing)
        shell = (distance > 0) & (distance <= donut_margin_mm)
        locations["donut"] = _sample_rows(np.argwhere(shell), rng)
    else:
        locations["donut"] = np.zeros((0, 3), dtype=np.int32)
    return locations


def preprocess_training_case(job: Tuple[RawCase, object, ConfigurationPlan, Path]) -> str:
    case, description, config, out_folder = job
    loaded = load_case(case, description)
    pre = preprocess_image(loaded.image, loaded.geometry, config, case.name, loaded.label)
    plan = config.resampling
    seg = resample_labels(pre.cropped_label, pre.properties.preprocessed_shape, plan, pre.properties.z_axis)
    rng = np.random.default_rng(zlib.crc32(case.name.encode()))
    locations = sampler_locations(seg, pre.properties.preprocessed_spacing, config.sampling.donut_labels,
                                  config.sampling.donut_margin_mm, rng)
    pre.properties.labels_present = [int(v) for v in np.unique(pre.cropped_label) if v != 0]
    save_case(out_folder, pre.properties, pre.data, seg, pre.cropped_label, locations)
    copy_reference(case, out_folder.parent / "gt_segmentations")
    return case.name


def copy_reference(case: RawCase, folder: Path) -> None:
    """The raw label file, for evaluating validation predictions without the raw folder (as nnU-Net)."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / case.label_file.name
    tmp = folder / f".{case.label_file.name}.tmp"
    shutil.copyfile(case.label_file, tmp)
    os.replace(tmp, target)


def configuration_folder(preprocessed_dataset: Path, plans_name: str, configuration: str) -> Path:
    return preprocessed_dataset / f"{plans_name}_{configuration}"


def run_preprocessing(dataset: RawDataset, config: ConfigurationPlan, out_folder: Path, num_processes: int = 1,
                      clean: bool = False) -> Path:
    """Preprocess every training case into ``out_folder``.

    Work happens in ``<out_folder>.partial`` and is renamed at the end, so an interrupted run never
    leaves a folder that looks complete.  Finished cases (same preprocessing key) are kept unless
    ``clean``.
    """
    partial = out_folder.with_name(out_folder.name + ".partial")
    if clean:
        shutil.rmtree(out_folder, ignore_errors=True)
        shutil.rmtree(partial, ignore_errors=True)
    cases = dataset.training_cases()
    if out_folder.is_dir():
        if partial.exists():
            shutil.rmtree(partial)
        os.replace(out_folder, partial)
    key = config.preprocessing_key()
    todo = [c for c in cases if not case_is_complete(partial, c.name, key)]
    if len(todo) < len(cases):
        logger.info("%d of %d cases already preprocessed; skipping them (use --clean to redo)",
                    len(cases) - len(todo), len(cases))
    jobs = [(c, dataset.description, config, partial) for c in todo]
    try:
        load_cases_checked(preprocess_training_case, jobs, [c.name for c in todo], num_processes,
                           desc=f"preprocessing {config.name}")
    except BaseException:
        if not any(partial.glob("*.json")):
            shutil.rmtree(partial, ignore_errors=True)
        raise
    _remove_stale_cases(partial, {c.name for c in cases})
    references = out_folder.parent / "gt_segmentations"
    for case in cases:
        if not (references / case.label_file.name).is_file():
            copy_reference(case, references)
    os.replace(partial, out_folder)
    return out_folder


def _remove_stale_cases(folder: Path, keep: set) -> None:
    for path in folder.glob("*.json"):
        if path.stem not in keep:
            for f in folder.glob(f"{path.stem}*"):
                f.unlink()
