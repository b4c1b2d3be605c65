"""One structure's shapes as centred crops: the structure's mask (a label or a region of dataset.json),
its connected components (each kidney apart), each resampled onto one isotropic grid centred on the
component (seed 004: the dataset's largest bounding box plus 10 %, e.g. 1.5 mm kidneys)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence, Tuple

import cc3d
import numpy as np
from scipy.ndimage import map_coordinates

from nnocc.io.dataset_json import DatasetDescription
from nnocc.utils.errors import NnoccError
from nnocc.utils.serialization import JsonDataclass

CROP_MARGIN = 1.1                 # seed 004: the largest bounding box plus 10 %


def structure_values(description: DatasetDescription, name: str) -> Tuple[int, ...]:
    """The label values of a structure named in dataset.json's labels (a label or a region), or of
    several joined by '+' (kidney+tumor+cyst: the kidney with its masses in a dataset of labels)."""
    names = [n for n in description.labels if n != "background"]
    values: List[int] = []
    for part in name.split("+"):
        if part not in names:
            raise NnoccError(f"no structure {part!r} in dataset.json; its labels and regions: {', '.join(names)}")
        value = description.labels[part]
        values += [int(v) for v in value] if isinstance(value, list) else [int(value)]
    return tuple(dict.fromkeys(values))


def components(mask: np.ndarray, min_voxels: int = 1, min_share: float = 0.0) -> List[np.ndarray]:
    """The 26-connected components of a mask with at least ``min_voxels`` voxels and ``min_share`` of the
    largest one's, largest first.  Only those are made masks: a scan's many specks would each be one."""
    labels, n = cc3d.connected_components(mask.astype(np.uint8), connectivity=26, return_N=True)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    if n == 0:
        return []
    floor = max(min_voxels, min_share * sizes.max())
    return [labels == int(i) + 1 for i in np.argsort(-sizes) if sizes[i] >= floor]


def bounding_box(mask: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    where = np.argwhere(mask)
    return where.min(axis=0), where.max(axis=0)


@dataclass
class CropGrid(JsonDataclass):
    """Voxels per axis (array order) at an isotropic spacing, centred on a component's bounding box."""
    shape: List[int]
    spacing_mm: float

    @classmethod
    def around(cls, extents_mm: np.ndarray, spacing_mm: float) -> "CropGrid":
        """The grid holding the largest extent per axis (of all components) plus the margin."""
        largest = np.asarray(extents_mm, dtype=np.float64).reshape(-1, 3).max(axis=0)
        return cls([int(np.ceil(e * CROP_MARGIN / spacing_mm)) for e in largest], float(spacing_mm))

    def index_to_mm(self, index: np.ndarray) -> np.ndarray:
        """Crop voxel indices (..., 3), whole or not -> mm from the crop's centre."""
        return (np.asarray(index, dtype=np.float64) - (np.asarray(self.shape) - 1) / 2.0) * self.spacing_mm

    def positions_mm(self) -> np.ndarray:
        """(*shape, 3) voxel centres in mm from the grid's centre, array order."""
        axes = [(np.arange(n) - (n - 1) / 2.0) * self.spacing_mm for n in self.shape]
        return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)


def component_centre(mask: np.ndarray) -> np.ndarray:
    lo, hi = bounding_box(mask)
    return (lo + hi) / 2.0


def extent_mm(mask: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    lo, hi = bounding_box(mask)
    return (hi - lo + 1) * np.asarray(spacing, dtype=np.float64)


def sample_mask(mask: np.ndarray, spacing: Sequence[float], centre: np.ndarray, positions_mm: np.ndarray
                ) -> np.ndarray:
    """The mask (linearly interpolated, > 0.5) at positions in mm from ``centre`` (array indices);
    outside the mask's array is background."""
    index = centre + positions_mm / np.asarray(spacing, dtype=np.float64)
    flat = index.reshape(-1, 3)
    lo = np.clip(np.floor(flat.min(axis=0)).astype(int) - 1, 0, np.asarray(mask.shape))
    hi = np.clip(np.ceil(flat.max(axis=0)).astype(int) + 2, 0, np.asarray(mask.shape))
    if np.any(hi <= lo):
        return np.zeros(positions_mm.shape[:-1], dtype=bool)
    block = mask[tuple(slice(a, b) for a, b in zip(lo, hi))].astype(np.float32)
    values = map_coordinates(block, (flat - lo).T, order=1, mode="constant", cval=0.0)
    return (values > 0.5).reshape(positions_mm.shape[:-1])


def crop_component(component: np.ndarray, spacing: Sequence[float], grid: CropGrid) -> Tuple[np.ndarray, np.ndarray]:
    """The component on the grid centred on it, and that centre (array indices of the source).  The centre
    moves by under half a voxel so that the crop's first voxel falls on a source voxel: where the two
    spacings are multiples, no crop voxel then lies halfway between two source voxels, where the
    interpolated mask is exactly 0.5 and every surface would be shaved by half a voxel."""
    ratio = grid.spacing_mm / np.asarray(spacing, dtype=np.float64)
    half = (np.asarray(grid.shape) - 1) / 2.0 * ratio
    centre = np.round(component_centre(component) - half) + half
    return sample_mask(component, spacing, centre, grid.positions_mm()), centre


def crop_to_source(centres: np.ndarray, crop_shape: Sequence[int], centre: np.ndarray, grid: CropGrid,
                   spacing: Sequence[float]) -> np.ndarray:
    """Crop voxel indices (N, 3) -> (continuous) array indices of the image the crop was cut from."""
    return centre + grid.index_to_mm(centres) / np.asarray(spacing, dtype=np.float64)
