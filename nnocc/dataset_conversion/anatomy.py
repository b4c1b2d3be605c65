"""A random abdomen, sampled as tissue and label maps on a voxel grid.

The anatomy lives in a body frame in millimetres (x left-right, y anterior-posterior, z
cranio-caudal).  Each case draws its own body size, organ positions, kidney tumours and cysts,
and a pose (rotation and shift of the body in the scanner) so that no two cases line up.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Tuple

import numpy as np

# tissue codes of the tissue map; intensities per modality are assigned in synthetic.py
AIR, FAT, MUSCLE, VISCERA, BONE_CORTEX, BONE_MARROW, VESSEL, LIVER, KIDNEY_CORTEX, KIDNEY_MEDULLA, \
    TUMOUR, TUMOUR_CORE, CYST = range(13)
LABEL_KIDNEY, LABEL_TUMOUR, LABEL_CYST = 1, 2, 3


@dataclass
class Ellipsoid:
    centre: np.ndarray       # mm, body frame
    radii: np.ndarray        # mm
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))

    def inside(self, points: np.ndarray) -> np.ndarray:
        local = (points - self.centre) @ self.rotation
        return np.sum((local / self.radii) ** 2, axis=-1) <= 1.0

    def surface_point(self, rng: np.random.Generator) -> np.ndarray:
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        return self.centre + self.rotation @ (direction * self.radii)


@dataclass
class Abdomen:
    body_radii: Tuple[float, float]
    fat_thickness: float
    kidneys: List[Ellipsoid]
    tumours: List[Ellipsoid]
    cysts: List[Ellipsoid]
    liver: Ellipsoid
    spine_centre: Tuple[float, float]
    pose_rotation: np.ndarray
    pose_shift: np.ndarray


def _rotation(rng: np.random.Generator, max_angles_deg: Tuple[float, ...]) -> np.ndarray:
    ax, ay, az = (np.deg2rad(rng.uniform(-m, m)) for m in max_angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _kidney(rng: np.random.Generator, side: int, z_centre: float) -> Ellipsoid:
    centre = np.array([side * rng.uniform(62, 80), rng.uniform(25, 40), z_centre + rng.uniform(-12, 12)])
    radii = np.array([rng.uniform(22, 30), rng.uniform(18, 24), rng.uniform(42, 56)])
    return Ellipsoid(centre, radii, _rotation(rng, (15, 15, 25)))


def _tumour(rng: np.random.Generator, kidney: Ellipsoid) -> Ellipsoid:
    radius = rng.uniform(8, 18)
    surface = kidney.surface_point(rng)
    # pull the tumour centre inwards so that it sits half in, half out of the kidney
    centre = surface + (kidney.centre - surface) * rng.uniform(0.1, 0.45)
    return Ellipsoid(centre, radius * rng.uniform(0.8, 1.2, size=3), _rotation(rng, (30, 30, 30)))


def _cyst(rng: np.random.Generator, kidney: Ellipsoid) -> Ellipsoid:
    surface = kidney.surface_point(rng)
    centre = surface + (kidney.centre - surface) * rng.uniform(0.05, 0.3)
    return Ellipsoid(centre, np.full(3, rng.uniform(4.5, 8.5)))


def sample_abdomen(rng: np.random.Generator, z_extent_mm: float) -> Abdomen:
    kidney_z = rng.uniform(-0.1, 0.1) * z_extent_mm
    kidneys = [_kidney(rng, side, kidney_z) for side in (-1, 1)]
    tumours = [_tumour(rng, k) for k in kidneys if rng.random() < 0.6]
    if not tumours:
        tumours = [_tumour(rng, kidneys[rng.integers(2)])]
    cysts = [_cyst(rng, kidneys[rng.integers(2)]) for _ in range(rng.integers(1, 4))]
    liver = Ellipsoid(np.array([-55.0, -5.0, kidney_z + 70]), np.array([70.0, 60.0, 60.0]), _rotation(rng, (5, 5, 10)))
    return Abdomen(body_radii=(rng.uniform(125, 148), rng.uniform(92, 112)), fat_thickness=rng.uniform(8, 22),
                   kidneys=kidneys, tumours=tumours, cysts=cysts, liver=liver,
                   spine_centre=(rng.uniform(-4, 4), rng.uniform(52, 62)),
                   pose_rotation=_rotation(rng, (4, 4, 12)), pose_shift=rng.uniform(-12, 12, size=3))


def voxel_centres_in_body_frame(shape: Tuple[int, ...], spacing_zyx: Tuple[float, ...],
                                abdomen: Abdomen) -> np.ndarray:
    """(z, y, x, 3) body-frame (x, y, z) mm of each voxel centre, the scanner pose applied."""
    axes = [(np.arange(n) - (n - 1) / 2) * s for n, s in zip(shape, spacing_zyx)]
    zz, yy, xx = np.meshgrid(*axes, indexing="ij")
    scanner = np.stack([xx, yy, zz], axis=-1)
    return (scanner - abdomen.pose_shift) @ abdomen.pose_rotation


def rasterize(abdomen: Abdomen, points: np.ndarray, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """Tissue codes and labels (1 kidney, 2 tumour, 3 cyst) at body-frame points (..., 3)."""
    x, y = points[..., 0], points[..., 1]
    a, b = abdomen.body_radii
    wobble = 1 + 0.03 * np.sin(points[..., 2] / 40.0)
    body_r = np.sqrt((x / (a * wobble)) ** 2 + (y / (b * wobble)) ** 2)
    tissue = np.full(points.shape[:-1], AIR, dtype=np.uint8)
    label = np.zeros(points.shape[:-1], dtype=np.uint8)
    fat_edge = 1 - abdomen.fat_thickness / b
    muscle_edge = fat_edge - 10.0 / b
    tissue[body_r <= 1] = FAT
    tissue[body_r <= fat_edge] = MUSCLE
    tissue[body_r <= muscle_edge] = VISCERA
    tissue[(abdomen.liver.inside(points)) & (body_r <= muscle_edge)] = LIVER
    _spine_and_vessels(abdomen, points, tissue)
    for kidney in abdomen.kidneys:
        inside = kidney.inside(points)
        inner = Ellipsoid(kidney.centre, kidney.radii - 6.0, kidney.rotation).inside(points)
        tissue[inside] = KIDNEY_CORTEX
        tissue[inner] = KIDNEY_MEDULLA
        label[inside] = LABEL_KIDNEY
    for tumour in abdomen.tumours:
        inside = tumour.inside(points)
        core = Ellipsoid(tumour.centre, tumour.radii * 0.45, tumour.rotation).inside(points)
        tissue[inside] = TUMOUR
        if tumour.radii.min() > 12:
            tissue[core] = TUMOUR_CORE
        label[inside] = LABEL_TUMOUR
    for cyst in abdomen.cysts:
        inside = cyst.inside(points)
        tissue[inside] = CYST
        label[inside] = LABEL_CYST
    return tissue, label


def _spine_and_vessels(abdomen: Abdomen, points: np.ndarray, tissue: np.ndarray) -> None:
    x, y = points[..., 0], points[..., 1]
    sx, sy = abdomen.spine_centre
    r_spine = np.hypot(x - sx, y - sy)
    tissue[r_spine <= 19] = BONE_CORTEX
    tissue[r_spine <= 15] = BONE_MARROW
    for offset in (-1, 1):  # psoas muscles beside the spine
        psoas = ((x - sx - offset * 32) / 14) ** 2 + ((y - sy + 4) / 18) ** 2 <= 1
        tissue[psoas] = MUSCLE
    tissue[np.hypot(x - sx - 14, y - sy + 34) <= 10] = VESSEL   # aorta
    tissue[np.hypot(x - sx + 20, y - sy + 32) <= 11] = VESSEL   # inferior vena cava


TISSUE_NAMES: Dict[int, str] = {AIR: "air", FAT: "fat", MUSCLE: "muscle", VISCERA: "viscera",
                                BONE_CORTEX: "bone_cortex", BONE_MARROW: "bone_marrow", VESSEL: "vessel",
                                LIVER: "liver", KIDNEY_CORTEX: "kidney_cortex", KIDNEY_MEDULLA: "kidney_medulla",
                                TUMOUR: "tumour", TUMOUR_CORE: "tumour_core", CYST: "cyst"}
