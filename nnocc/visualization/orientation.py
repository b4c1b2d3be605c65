"""Which array axis points where in the patient, from the image's direction matrix.

Array axes are in SimpleITK's order (k, j, i); the direction matrix's columns are the i, j, k index
axes in physical LPS coordinates (+x: towards the patient's left, +y: posterior, +z: superior).
Files differ in which voxel axis runs along the body: KiTS23 stores the slices along the first
voxel axis, so its last array axis is head-feet.  Views are therefore chosen by direction, never by
array position, and drawn as radiologists read them: head up, the patient's left on the right,
anterior up in axial and on the left in sagittal views.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Dict, Sequence, Tuple

import numpy as np

from nnocc.io.images import ImageGeometry

VIEWS = ("axial", "coronal", "sagittal")
LR, AP, SI = 0, 1, 2          # physical LPS axes: x right->left, y anterior->posterior, z inferior->superior
# per view: the physical axis cut through, then (physical axis, +1 if rows/columns run along it, -1 if
# against it) for the picture's rows (top to bottom) and columns (left to right)
_LAYOUT: Dict[str, Tuple[int, Tuple[int, int], Tuple[int, int]]] = {
    "axial": (SI, (AP, +1), (LR, +1)),
    "coronal": (AP, (SI, -1), (LR, +1)),
    "sagittal": (LR, (SI, -1), (AP, +1)),
}


@dataclass(frozen=True)
class AxisMap:
    """For each physical axis (LR, AP, SI): the array axis closest to it, and +1 / -1 when the array
    index grows towards / against the physical axis."""
    array_axis: Tuple[int, int, int]
    sign: Tuple[int, int, int]


def axis_map(geometry: ImageGeometry) -> AxisMap:
    """The assignment of array axes to physical axes with the largest total alignment (oblique
    images take their nearest axes)."""
    direction = geometry.direction_matrix()          # [physical, index axis i/j/k]
    cosines = np.abs(direction[:, ::-1])             # [physical, array axis]
    best = max(itertools.permutations(range(3)), key=lambda p: sum(cosines[phys, p[phys]] for phys in range(3)))
    signs = tuple(int(np.sign(direction[phys, 2 - best[phys]]) or 1) for phys in range(3))
    return AxisMap(tuple(best), signs)  # type: ignore[arg-type]


@dataclass(frozen=True)
class View:
    name: str
    slice_axis: int      # the array axis the view cuts through
    row_axis: int
    flip_rows: bool
    column_axis: int
    flip_columns: bool

    def cut(self, volume: np.ndarray, position: Sequence[int]) -> np.ndarray:
        """The 2D picture through ``position`` (array indices), oriented for display."""
        plane = np.take(volume, int(position[self.slice_axis]), axis=self.slice_axis)
        remaining = [a for a in range(3) if a != self.slice_axis]
        plane = plane if remaining.index(self.row_axis) == 0 else plane.T
        if self.flip_rows:
            plane = plane[::-1]
        if self.flip_columns:
            plane = plane[:, ::-1]
        return plane

    def aspect(self, spacing: Sequence[float]) -> float:
        return float(spacing[self.row_axis]) / float(spacing[self.column_axis])


def view(name: str, geometry: ImageGeometry) -> View:
    axes = axis_map(geometry)
    cut_axis, (row_phys, row_dir), (col_phys, col_dir) = _LAYOUT[name]
    return View(name, axes.array_axis[cut_axis],
                axes.array_axis[row_phys], axes.sign[row_phys] != row_dir,
                axes.array_axis[col_phys], axes.sign[col_phys] != col_dir)
