"""Synthetic datasets that look enough like the real thing to exercise every stage.

* ``ct``: KiTS-like contrast CT in Hounsfield units, one channel;
* ``mri``: a two-channel MRI-like variant (T1/T2-ish contrasts, arbitrary units, bias field).

Labels: 1 kidney, 2 tumour, 3 cyst (the cyst is the small class).  Each case has its own
anisotropic spacing, origin and body pose.  Everything is deterministic under ``seed``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
from scipy.ndimage import gaussian_filter

from nnocc.dataset_conversion import anatomy as A
from nnocc.io.images import ImageGeometry, write_image, write_segmentation
from nnocc.utils.json_io import save_json
from nnocc.utils.parallel import map_all_cases

logger = logging.getLogger(__name__)

# (mean, texture std) per tissue; CT in HU (contrast-enhanced, corticomedullary phase)
CT_TISSUES: Dict[int, Tuple[float, float]] = {
    A.AIR: (-1000, 5), A.FAT: (-95, 12), A.MUSCLE: (48, 10), A.VISCERA: (20, 35), A.BONE_CORTEX: (750, 120),
    A.BONE_MARROW: (230, 50), A.VESSEL: (190, 12), A.LIVER: (95, 10), A.KIDNEY_CORTEX: (185, 15),
    A.KIDNEY_MEDULLA: (105, 15), A.TUMOUR: (120, 22), A.TUMOUR_CORE: (45, 15), A.CYST: (12, 6)}
# two channels of arbitrary units: (T1-like, T2-like) means; texture std is 5 % of the mean
MRI_TISSUES: Dict[int, Tuple[float, float]] = {
    A.AIR: (0, 0), A.FAT: (850, 600), A.MUSCLE: (420, 180), A.VISCERA: (500, 520), A.BONE_CORTEX: (40, 30),
    A.BONE_MARROW: (700, 450), A.VESSEL: (60, 50), A.LIVER: (560, 260), A.KIDNEY_CORTEX: (520, 620),
    A.KIDNEY_MEDULLA: (380, 820), A.TUMOUR: (340, 900), A.TUMOUR_CORE: (260, 1150), A.CYST: (120, 1500)}

MODALITIES = ("ct", "mri")
LABELS = {"background": 0, "kidney": 1, "tumor": 2, "cyst": 3}
KITS_REGIONS = {"background": 0, "kidney_and_masses": [1, 2, 3], "masses": [2, 3], "tumor": 2}


@dataclass
class CaseSpec:
    name: str
    seed: int
    shape: Tuple[int, ...]
    modality: str


def _case_geometry(rng: np.random.Generator, shape: Tuple[int, ...]) -> ImageGeometry:
    spacing = [float(rng.uniform(2.5, 5.0)), *[float(rng.uniform(2.6, 3.3))] * 2]
    origin = [float(v) for v in rng.uniform(-200, -150, size=2)] + [float(rng.uniform(-400, 400))]
    return ImageGeometry(shape=list(shape), spacing=spacing, origin=origin,
                         direction=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0])


def _texture(rng: np.random.Generator, shape, sigma_vox) -> np.ndarray:
    field = gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma_vox)
    return field / (field.std() + 1e-6)


def ct_intensities(tissue: np.ndarray, rng: np.random.Generator, spacing) -> np.ndarray:
    """Hounsfield units for a tissue map: tissue means, correlated texture, scanner blur and noise."""
    texture = _texture(rng, tissue.shape, (1.0, 1.5, 1.5))
    image = np.zeros(tissue.shape, dtype=np.float32)
    for code, (mean, std) in CT_TISSUES.items():
        mask = tissue == code
        image[mask] = mean + std * texture[mask]
    sigma = [0.7 / max(s / min(spacing), 1.0) for s in spacing]  # scanner point spread, finer in z when thin
    image = gaussian_filter(image, sigma)
    image += rng.normal(0, 14, size=image.shape).astype(np.float32)
    return np.clip(image, -1024, 3071)


def _mri_intensities(tissue: np.ndarray, rng: np.random.Generator, spacing) -> np.ndarray:
    texture = _texture(rng, tissue.shape, (1.0, 1.5, 1.5))
    bias = 1 + 0.2 * _texture(rng, tissue.shape, (8.0, 25.0, 25.0))
    scale = rng.uniform(0.7, 1.4, size=2)
    channels = []
    for c in range(2):
        image = np.zeros(tissue.shape, dtype=np.float32)
        for code, means in MRI_TISSUES.items():
            mask = tissue == code
            image[mask] = means[c] * (1 + 0.05 * texture[mask])
        image = gaussian_filter(image, 0.6) * bias * scale[c]
        noise = rng.normal(0, 18, size=(2,) + image.shape)
        channels.append(np.sqrt((image + noise[0]) ** 2 + noise[1] ** 2).astype(np.float32))  # Rician
    return np.stack(channels)


def make_case(spec: CaseSpec) -> Tuple[np.ndarray, np.ndarray, ImageGeometry]:
    """(channels, labels, geometry) of one synthetic case: image (C, z, y, x), labels (z, y, x)."""
    rng = np.random.default_rng(spec.seed)
    shape = tuple(int(n + rng.integers(-n // 10, n // 10 + 1)) for n in spec.shape)
    geometry = _case_geometry(rng, shape)
    abdomen = A.sample_abdomen(rng, shape[0] * geometry.spacing[0])
    points = A.voxel_centres_in_body_frame(shape, tuple(geometry.spacing), abdomen)
    tissue, labels = A.rasterize(abdomen, points, rng)
    if spec.modality == "ct":
        image = ct_intensities(tissue, rng, geometry.spacing)[None]
    else:
        image = _mri_intensities(tissue, rng, geometry.spacing)
    return image, labels, geometry


def _write_case(job) -> str:
    spec, image_folder, label_folder, ending, kits_layout = job
    image, labels, geometry = make_case(spec)
    if kits_layout:
        case_folder = Path(image_folder) / spec.name
        write_image(image[0].astype(np.int16), geometry, case_folder / "imaging.nii.gz")
        write_segmentation(labels, geometry, case_folder / "segmentation.nii.gz")
        return spec.name
    dtype = np.int16 if spec.modality == "ct" else np.float32
    for c, channel in enumerate(image):
        write_image(channel.astype(dtype), geometry, Path(image_folder) / f"{spec.name}_{c:04d}{ending}")
    if label_folder is not None:
        write_segmentation(labels, geometry, Path(label_folder) / f"{spec.name}{ending}")
    return spec.name


def dataset_json_for(modality: str, num_training: int, ending: str, regions: bool, name: str) -> dict:
    channels = {"0": "CT"} if modality == "ct" else {"0": "T1", "1": "T2"}
    data = {"name": name, "description": f"nnocc synthetic {modality.upper()} dataset (generated, not real patients)",
            "channel_names": channels, "labels": KITS_REGIONS if regions else LABELS,
            "numTraining": num_training, "file_ending": ending}
    if regions:
        data["regions_class_order"] = [1, 3, 2]
    return data


def generate_dataset(raw_folder: Path, dataset_id: int, name: Optional[str] = None, num_training: int = 20,
                     num_test: int = 5, shape: Sequence[int] = (40, 120, 120), modality: str = "ct", seed: int = 0,
                     file_ending: str = ".nii.gz", regions: bool = False, num_processes: int = 1) -> Path:
    """Write ``DatasetXXX_Name`` (imagesTr, labelsTr, imagesTs, labelsTs, dataset.json) into raw_folder."""
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
    name = name or f"Synthetic{modality.upper()}"
    folder = Path(raw_folder) / f"Dataset{dataset_id:03d}_{name}"
    specs = [CaseSpec(f"case_{i:04d}", seed * 100003 + i, tuple(shape), modality) for i in range(num_training + num_test)]
    jobs = [(s, folder / "imagesTr", folder / "labelsTr", file_ending, False) for s in specs[:num_training]]
    jobs += [(s, folder / "imagesTs", folder / "labelsTs", file_ending, False) for s in specs[num_training:]]
    map_all_cases(_write_case, jobs, num_processes, f"generating {folder.name}", [s.name for s in specs], "generate")
    save_json(dataset_json_for(modality, num_training, file_ending, regions, name), folder / "dataset.json")
    return folder


def generate_kits23_layout(folder: Path, num_cases: int, shape: Sequence[int] = (40, 120, 120), seed: int = 0,
                           num_processes: int = 1) -> Path:
    """The official KiTS23 layout (``case_00000/imaging.nii.gz``, ``segmentation.nii.gz``) for conversion tests."""
    specs = [CaseSpec(f"case_{i:05d}", seed * 100003 + i, tuple(shape), "ct") for i in range(num_cases)]
    jobs = [(s, folder, None, ".nii.gz", True) for s in specs]
    map_all_cases(_write_case, jobs, num_processes, "generating KiTS23 layout", [s.name for s in specs], "generate")
    return Path(folder)

