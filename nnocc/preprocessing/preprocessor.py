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
from nnocc.fingerprint.cropping import crop_to_nonzero, nonzero_mask
from nnocc.io.dataset_json import DatasetDescription
from nnocc.io.images import ImageGeometry
from nnocc.io.raw_dataset import RawCase, RawDataset, load_case, load_cases_checked
from nnocc.planning.plans import ConfigurationPlan
from nnocc.planning.target_spacing import out_of_plane_axis
from nnocc.preprocessing.normalization import normalize_image
from nnocc.preprocessing.resampling import resample_image, resample_labels
from nnocc.preprocessing.storage import CaseProperties, case_files, case_is_complete, remove_case, save_case
from nnocc.utils.atomic import atomic_copy, link_or_copy

logger = logging.getLogger(__name__)
MAX_LOCATIONS = 10000


@dataclass
class PreprocessedImage:
    data: np.ndarray                  # (C, z, y, x) float32 at the target spacing
    properties: CaseProperties
    cropped_label: Optional[np.ndarray]


def preprocess_image(image: np.ndarray, geometry: ImageGeometry, config: ConfigurationPlan, name: str,
                     label: Optional[np.ndarray] = None, overwrite_image: bool = False) -> PreprocessedImage:
    """(C, z, y, x) raw intensities -> normalised data at the target spacing, plus its properties.
    ``overwrite_image``: the caller has no further use for ``image`` and lets it be normalised in place."""
    cropped, cropped_label, bbox = crop_to_nonzero(image, label)
    mask = nonzero_mask(cropped) if any(n.use_nonzero_mask for n in config.normalization) else None
    normalized = normalize_image(cropped, config.normalization, mask, in_place=overwrite_image)
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


def preprocess_training_case(job: Tuple[RawCase, DatasetDescription, ConfigurationPlan, Path]) -> str:
    case, description, config, out_folder = job
    loaded = load_case(case, description)
    pre = preprocess_image(loaded.image, loaded.geometry, config, case.name, loaded.label, overwrite_image=True)
    label = pre.cropped_label
    assert label is not None  # a training case always has one
    seg = resample_labels(label, pre.properties.preprocessed_shape, config.resampling, pre.properties.z_axis)
    rng = np.random.default_rng(zlib.crc32(case.name.encode()))
    locations = sampler_locations(seg, pre.properties.preprocessed_spacing, config.sampling.donut_labels,
                                  config.sampling.donut_margin_mm, rng)
    pre.properties.labels_present = [int(v) for v in np.unique(label) if v != 0]
    save_case(out_folder, pre.properties, pre.data, seg, label, locations)
    return case.name


def staging_folder(out_folder: Path) -> Path:
    return out_folder.with_name(out_folder.name + ".partial")


def run_preprocessing(dataset: RawDataset, config: ConfigurationPlan, out_folder: Path, num_processes: int = 1,
                      clean: bool = False) -> Path:
    """Preprocess every training case into ``out_folder``.

    The dataset's layout is checked before anything is touched.  The new data is built in
    ``<out_folder>.partial`` and swapped in only when every case succeeded, so a run that fails
    (a broken case, an interrupt) leaves the previous preprocessed data as it was.  Unchanged cases
    (same preprocessing key) are carried over by hard link unless ``clean``; the cases a failed run
    finished stay in the partial folder and are reused by the next run.
    """
    cases = dataset.training_cases()
    staging = staging_folder(out_folder)
    if clean:
        shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True, exist_ok=True)
    names = [c.name for c in cases]
    remove_stale_cases(staging, set(names))
    key = config.preprocessing_key()
    if not clean and out_folder.is_dir():
        carry_over_cases(out_folder, staging, names, key)
    todo = [c for c in cases if not case_is_complete(staging, c.name, key)]
    if len(todo) < len(cases):
        logger.info("%d of %d cases already preprocessed; skipping them (use --clean to redo)",
                    len(cases) - len(todo), len(cases))
    jobs = [(c, dataset.description, config, staging) for c in todo]
    try:
        load_cases_checked(preprocess_training_case, jobs, [c.name for c in todo], num_processes,
                           desc=f"preprocessing {out_folder.name}")
    except BaseException:
        logger.error("nothing was changed in %s; finished cases are kept in %s for the next run", out_folder, staging)
        raise
    update_references(cases, {c.name for c in todo}, out_folder.parent / "gt_segmentations")
    swap_in(staging, out_folder)
    return out_folder


def carry_over_cases(source: Path, staging: Path, names: List[str], key: str) -> None:
    """Hard-link the complete, up-to-date cases of ``source`` that ``staging`` lacks."""
    for name in names:
        if case_is_complete(source, name, key) and not case_is_complete(staging, name, key):
            for source_file, target in zip(case_files(source, name), case_files(staging, name)):
                link_or_copy(source_file, target)


def update_references(cases: List[RawCase], redone: set, folder: Path) -> None:
    """The raw label files, for evaluating validation predictions without the raw folder (as nnU-Net)."""
    label_files = {c.name: c.label_file for c in cases if c.label_file is not None}
    for name, label_file in label_files.items():
        target = folder / label_file.name
        if name in redone or not target.is_file():
            atomic_copy(label_file, target)
    ending = next((f.name[len(n):] for n, f in label_files.items()), "")
    keep = {f.name for f in label_files.values()}
    for path in folder.glob(f"*{ending}") if ending else []:
        if path.name not in keep:
            path.unlink()


def swap_in(staging: Path, out_folder: Path) -> None:
    """Replace ``out_folder`` by ``staging``; the old folder is removed only after the rename."""
    retired = out_folder.with_name(out_folder.name + ".old")
    shutil.rmtree(retired, ignore_errors=True)
    if out_folder.is_dir():
        os.replace(out_folder, retired)
    os.replace(staging, out_folder)
    shutil.rmtree(retired, ignore_errors=True)


def remove_stale_cases(folder: Path, keep: set) -> None:
    for path in folder.glob("*.json"):
        if not path.name.startswith(".") and path.stem not in keep:
            remove_case(folder, path.stem)
