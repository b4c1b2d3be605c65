"""CT painted around real label maps (KiTS23's): real kidney, tumour and cyst shapes, synthetic intensities.

KiTS23's label maps come with its repository (CC BY-NC-SA); its CT is a separate download of
several hundred gigabytes.  This module reads the label maps from the user's own checkout and
paints the synthetic generator's contrast-CT tissues around them: kidney cortex and medulla,
tumour (with a darker necrotic core when large) overlapping both in HU, water-like cysts, and a
generated abdomen (fat, muscle, spine, vessels, liver) as background.  Nothing of the labels is
stored by nnocc.

Orientation: label maps are read in LPS order, so array axes are (superior, posterior, left),
the body frame of ``anatomy``.  The scan's in-plane centre stands for the body's midline (patients
lie centred in the scanner) and the kidneys' mid-height for z = 0.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk
from scipy.ndimage import distance_transform_edt

from nnocc.dataset_conversion import anatomy as A
from nnocc.dataset_conversion.synthetic import LABELS, ct_intensities
from nnocc.io.images import ImageGeometry, geometry_of, write_image, write_segmentation
from nnocc.utils.errors import NnoccError
from nnocc.utils.json_io import save_json
from nnocc.utils.parallel import map_all_cases

MEDULLA_DEPTH_MM = 6.0        # cortex thickness, as in the generated kidneys
NECROSIS_MIN_RADIUS_MM = 12.0  # tumours thicker than this get a necrotic core
KITS_SEGMENTATION = "segmentation.nii.gz"


@dataclass
class LabelCase:
    """One case's label map in LPS order and where the body sits in it."""

    image: sitk.Image
    midline_xy: Tuple[float, float]   # physical mm of the scan's in-plane centre


def read_oriented_labels(path: Path) -> LabelCase:
    try:
        image = sitk.DICOMOrient(sitk.ReadImage(str(path)), "LPS")
    except RuntimeError as e:
        raise NnoccError(f"{path}: not a readable label map ({str(e).strip().splitlines()[-1][:120]})") from None
    if not np.allclose(image.GetDirection(), np.eye(3).ravel(), atol=1e-3):
        raise NnoccError(f"{path}: an oblique scan (direction {np.round(image.GetDirection(), 3).tolist()}); "
                         "the painter needs axis-aligned label maps, as KiTS23's are")
    values = np.unique(sitk.GetArrayViewFromImage(image))
    if not set(values.tolist()) <= set(LABELS.values()) or values.max() == 0:
        raise NnoccError(f"{path}: expected KiTS labels 0-3 with some kidney, found {values.tolist()}")
    centre = np.asarray(image.GetSize(), dtype=float) / 2 - 0.5
    x, y, _ = image.TransformContinuousIndexToPhysicalPoint(centre.tolist())
    return LabelCase(image, (x, y))


def crop_around_kidneys(case: LabelCase, margin_mm: float) -> LabelCase:
    array = sitk.GetArrayViewFromImage(case.image)
    spacing_zyx = np.asarray(case.image.GetSpacing())[::-1]
    found = np.nonzero(array)
    margin = np.ceil(margin_mm / spacing_zyx).astype(int)
    lo = np.maximum(np.array([f.min() for f in found]) - margin, 0)
    hi = np.minimum(np.array([f.max() for f in found]) + margin + 1, array.shape)
    cropped = case.image[int(lo[2]):int(hi[2]), int(lo[1]):int(hi[1]), int(lo[0]):int(hi[0])]
    return LabelCase(cropped, case.midline_xy)


def resample_labels(case: LabelCase, spacing_zyx: Sequence[float]) -> LabelCase:
    image = case.image
    new_spacing = [float(s) for s in spacing_zyx][::-1]
    size = [max(int(round(n * s / t)), 1) for n, s, t in zip(image.GetSize(), image.GetSpacing(), new_spacing)]
    # the label-Gaussian interpolator smooths each label's indicator before the vote: no staircase from nearest
    resampled = sitk.Resample(image, size, sitk.Transform(), sitk.sitkLabelGaussian, image.GetOrigin(),
                              new_spacing, image.GetDirection(), 0, image.GetPixelID())
    return LabelCase(resampled, case.midline_xy)


def body_frame_points(case: LabelCase) -> np.ndarray:
    """(z, y, x, 3) body-frame mm of each voxel centre: x, y from the midline, z from the kidneys' mid-height."""
    geometry = geometry_of(case.image)
    array = sitk.GetArrayViewFromImage(case.image)
    kidney_z = np.nonzero(array.any(axis=(1, 2)))[0]
    axes = [np.arange(n, dtype=np.float32) for n in geometry.shape]
    spacing = np.asarray(geometry.spacing, dtype=np.float32)
    origin = np.asarray(geometry.origin, dtype=np.float32)      # LPS, identity direction after DICOMOrient
    x = origin[0] + axes[2] * spacing[2] - case.midline_xy[0]
    y = origin[1] + axes[1] * spacing[1] - case.midline_xy[1]
    z = (axes[0] - (kidney_z.min() + kidney_z.max()) / 2) * spacing[0]
    zz, yy, xx = np.meshgrid(z, y, x, indexing="ij")
    return np.stack([xx, yy, zz], axis=-1)


def background_abdomen(rng: np.random.Generator, points: np.ndarray, labels: np.ndarray) -> A.Abdomen:
    """A generated abdomen without organs of interest, wide enough to hold every labelled voxel in its viscera."""
    abdomen = A.sample_abdomen(rng, z_extent_mm=float(np.ptp(points[..., 2])))
    abdomen.kidneys, abdomen.tumours, abdomen.cysts = [], [], []
    abdomen.pose_rotation, abdomen.pose_shift = np.eye(3), np.zeros(3)   # the real anatomy sets the pose
    inside = points[labels > 0]
    a, b = abdomen.body_radii
    muscle_edge = 1 - (abdomen.fat_thickness + 10.0) / b
    reach = np.sqrt((inside[:, 0] / a) ** 2 + (inside[:, 1] / b) ** 2).max() / muscle_edge
    if reach > 0.95:
        scale = reach / 0.95
        abdomen.body_radii = (a * scale, b * scale)
    return abdomen


def organ_tissue(labels: np.ndarray, spacing_zyx: Sequence[float], tissue: np.ndarray) -> None:
    """Kidney cortex and medulla, tumour with a necrotic core when thick, cyst; written into ``tissue``."""
    kidney = labels == A.LABEL_KIDNEY
    depth = distance_transform_edt(labels > 0, sampling=spacing_zyx)   # masses are part of the organ's bulk
    tissue[kidney] = A.KIDNEY_CORTEX
    tissue[kidney & (depth > MEDULLA_DEPTH_MM)] = A.KIDNEY_MEDULLA
    tumour = labels == A.LABEL_TUMOUR
    if tumour.any():
        tumour_depth = distance_transform_edt(tumour, sampling=spacing_zyx)
        tissue[tumour] = A.TUMOUR
        if tumour_depth.max() > NECROSIS_MIN_RADIUS_MM:
            tissue[tumour_depth > 0.55 * tumour_depth.max()] = A.TUMOUR_CORE
    tissue[labels == A.LABEL_CYST] = A.CYST


def paint_case(case: LabelCase, seed: int) -> Tuple[np.ndarray, np.ndarray, ImageGeometry]:
    """(CT in HU as int16, labels, geometry) with the label map's own geometry."""
    rng = np.random.default_rng(seed)
    labels = sitk.GetArrayFromImage(case.image).astype(np.uint8)
    geometry = geometry_of(case.image)
    points = body_frame_points(case)
    abdomen = background_abdomen(rng, points, labels)
    tissue, _ = A.rasterize(abdomen, points, rng)
    del points
    organ_tissue(labels, geometry.spacing, tissue)
    image = ct_intensities(tissue, rng, geometry.spacing)
    return np.round(image).astype(np.int16), labels, geometry


@dataclass
class PaintJob:
    label_file: Path
    name: str
    seed: int
    spacing_zyx: Optional[Tuple[float, float, float]]   # None: the scan's own resolution, uncropped
    margin_mm: float
    image_folder: Path
    label_folder: Path


def paint_job(job: PaintJob) -> List[int]:
    case = read_oriented_labels(job.label_file)
    if job.spacing_zyx is not None:
        case = resample_labels(crop_around_kidneys(case, job.margin_mm), job.spacing_zyx)
    image, labels, geometry = paint_case(case, job.seed)
    write_image(image, geometry, job.image_folder / f"{job.name}_0000.nii.gz")
    write_segmentation(labels, geometry, job.label_folder / f"{job.name}.nii.gz")
    return list(geometry.shape)


def paint_all(jobs: Sequence[PaintJob], num_processes: int, desc: str) -> None:
    map_all_cases(paint_job, jobs, num_processes, desc, [j.name for j in jobs], "paint")


def paint_native_cases(kits_folder: Path, cases: Sequence[str], image_folder: Path, label_folder: Path,
                       num_processes: int = 1, last_case: int = 299) -> List[Path]:
    """Whole scans at their own resolution (no crop, no resampling); already painted ones are kept."""
    files = {f.parent.name: f for f in kits_label_files(kits_folder, last_case)}
    missing = [c for c in cases if c not in files]
    if missing:
        raise NnoccError(f"{kits_folder}: no label map for {', '.join(missing)} (cases up to {last_case} only)")
    jobs = [PaintJob(files[c], c, 7 + i, None, 0.0, image_folder, label_folder) for i, c in enumerate(cases)
            if not (image_folder / f"{c}_0000.nii.gz").is_file()]
    paint_all(jobs, num_processes, "painting KiTS-sized cases")
    return [image_folder / f"{c}_0000.nii.gz" for c in cases]


def kits_label_files(kits_folder: Path, last_case: int) -> List[Path]:
    """``dataset/case_XXXXX/segmentation.nii.gz`` (or ``case_XXXXX/...``) up to case number ``last_case``."""
    root = Path(kits_folder)
    root = root / "dataset" if (root / "dataset").is_dir() else root
    files = sorted(root.glob(f"case_*/{KITS_SEGMENTATION}"))
    files = [f for f in files if int(f.parent.name.split("_")[1]) <= last_case]
    if not files:
        raise NnoccError(f"{kits_folder}: no case_XXXXX/{KITS_SEGMENTATION} up to case {last_case}")
    return files


def make_real_anatomy_dataset(kits_folder: Path, raw_folder: Path, dataset_id: int, num_training: int,
                              num_test: int, spacing_zyx: Sequence[float], margin_mm: float = 25.0,
                              last_case: int = 299, seed: int = 0, num_processes: int = 1,
                              name: str = "KiTSAnatomy") -> Path:
    """``DatasetXXX_KiTSAnatomy`` in nnU-Net's raw format: kidney crops of real label maps, painted CT.

    Cases are taken evenly across case_00000..``last_case`` (KiTS23 keeps the later ones for independent
    evaluation); the last ``num_test`` of them go to imagesTs / labelsTs.
    """
    files = kits_label_files(kits_folder, last_case)
    count = num_training + num_test
    if count > len(files):
        raise NnoccError(f"{kits_folder}: {count} cases asked for, {len(files)} found up to case {last_case}")
    chosen = [files[i] for i in np.linspace(0, len(files) - 1, count).round().astype(int)]
    folder = Path(raw_folder) / f"Dataset{dataset_id:03d}_{name}"
    spacing = (float(spacing_zyx[0]), float(spacing_zyx[1]), float(spacing_zyx[2]))
    jobs = []
    for i, path in enumerate(chosen):
        split = "Tr" if i < num_training else "Ts"
        jobs.append(PaintJob(path, path.parent.name, seed * 100003 + i, spacing, margin_mm,
                             folder / f"images{split}", folder / f"labels{split}"))
    paint_all(jobs, num_processes, f"painting {folder.name}")
    save_json({"name": name, "description": "real KiTS23 label maps (CC BY-NC-SA, cropped around the kidneys and "
                                            "resampled), CT intensities painted by nnocc (not real images)",
               "channel_names": {"0": "CT"}, "labels": LABELS, "numTraining": num_training,
               "file_ending": ".nii.gz", "source_cases": [p.parent.name for p in chosen],
               "spacing_zyx": list(spacing), "crop_margin_mm": margin_mm}, folder / "dataset.json")
    return folder
