"""Measurements of one structure (a label or a region) in one case, in physical units."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence

import cc3d
import numpy as np
from scipy.ndimage import gaussian_filter
from skimage.measure import marching_cubes, mesh_surface_area


@dataclass
class StructureMeasurement:
    voxel_count: int
    volume_mm3: float
    component_volumes_mm3: List[float]
    extent_mm: List[float]          # bounding box edge lengths, array order
    surface_area_mm2: float


def equivalent_diameter(volume_mm3: float) -> float:
    """Diameter of the sphere with that volume: a size in mm comparable between shapes."""
    return float((6.0 * volume_mm3 / np.pi) ** (1.0 / 3.0))


def surface_area(mask: np.ndarray, spacing: Sequence[float]) -> float:
    """Area of the marching-cubes surface of a binary mask (padded so that closed surfaces close).

    The mask is smoothed by 0.75 voxel first: on raw voxel staircases marching cubes overestimates
    a sphere's area by 7-17 % (more at thick slices); smoothed, the error stays within 3 %.
    """
    if mask.sum() == 0:
        return 0.0
    padded = np.pad(mask.astype(np.float32), 2)
    smoothed = gaussian_filter(padded, 0.75)
    if smoothed.max() > 0.5:   # structures of a voxel or two vanish when smoothed: keep them raw
        padded = smoothed
    verts, faces, _, _ = marching_cubes(padded, level=0.5, spacing=tuple(float(s) for s in spacing))
    return float(mesh_surface_area(verts, faces))


def measure_structure(mask: np.ndarray, spacing: Sequence[float]) -> StructureMeasurement:
    voxel_volume = float(np.prod(spacing))
    count = int(mask.sum())
    if count == 0:
        return StructureMeasurement(0, 0.0, [], [0.0, 0.0, 0.0], 0.0)
    components, n = cc3d.connected_components(mask.astype(np.uint8), connectivity=26, return_N=True)
    sizes = np.bincount(components.ravel(), minlength=n + 1)[1:]
    coords = np.nonzero(mask)
    extent = [float((c.max() - c.min() + 1) * s) for c, s in zip(coords, spacing)]
    lo = [c.min() for c in coords]
    hi = [c.max() + 1 for c in coords]
    cropped = mask[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    return StructureMeasurement(voxel_count=count, volume_mm3=count * voxel_volume,
                                component_volumes_mm3=[float(s) * voxel_volume for s in sizes],
                                extent_mm=extent, surface_area_mm2=surface_area(cropped, spacing))
