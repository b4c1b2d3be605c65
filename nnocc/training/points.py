"""Query points of a training patch and their labels.

Points are drawn in patch coordinates: a share uniformly over the patch, the rest in a band
around label boundaries (OSS-Net's border sampling), always jittered off the voxel lattice.
A point's label is read from the *original-resolution* label map at the point's position
(through the patch's coordinate field), so resampling never blurs the supervision.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np
from scipy.ndimage import distance_transform_edt, map_coordinates

from nnocc.coordinates import patch_to_index, preprocessed_to_cropped
from nnocc.training.augmentation import SpatialTransform


def boundary_band(labels: np.ndarray, band_mm: float, spacing: Sequence[float]) -> np.ndarray:
    """Voxels within ``band_mm`` of a change of label (6-neighbourhood)."""
    edge = np.zeros(labels.shape, dtype=bool)
    for axis in range(3):
        differs = np.diff(labels, axis=axis) != 0
        lower = [slice(None)] * 3
        upper = [slice(None)] * 3
        lower[axis], upper[axis] = slice(None, -1), slice(1, None)
        edge[tuple(lower)] |= differs
        edge[tuple(upper)] |= differs
    if not edge.any():
        return edge
    # the transform only over the edges' bounding box grown by the band: exact (every edge voxel
    # is inside it) and a fraction of the cost, since structures fill little of a patch
    where = np.argwhere(edge)
    reach = np.ceil(band_mm / np.asarray(spacing, dtype=np.float64)).astype(int)
    lower = np.maximum(where.min(axis=0) - reach, 0)
    upper = np.minimum(where.max(axis=0) + reach + 1, labels.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lower, upper))
    band = np.zeros(labels.shape, dtype=bool)
    band[box] = distance_transform_edt(~edge[box], sampling=spacing) <= band_mm
    return band


def sample_query_points(num_points: int, boundary_share: float, band: Optional[np.ndarray],
                        rng: np.random.Generator) -> np.ndarray:
    """(num_points, 3) patch coordinates; the band part is drawn from the band's voxels, jittered."""
    n_band = int(round(num_points * boundary_share)) if band is not None and band.any() else 0
    uniform = rng.uniform(-0.5, 0.5, size=(num_points - n_band, 3))
    if band is None or n_band == 0:
        return uniform.astype(np.float32)
    voxels = np.argwhere(band)
    chosen = voxels[rng.integers(len(voxels), size=n_band)] + rng.uniform(-0.5, 0.5, size=(n_band, 3))
    size = np.asarray(band.shape, dtype=np.float64)
    near = (chosen + 0.5) / size - 0.5
    points = np.concatenate([uniform, near], axis=0)
    return points[rng.permutation(num_points)].astype(np.float32)


def original_indices(points: np.ndarray, patch_size: Sequence[int], transform: SpatialTransform,
                     preprocessed_shape: Sequence[int], cropped_shape: Sequence[int]) -> np.ndarray:
    """Patch coordinates -> continuous indices of the cropped original-resolution volume."""
    patch_voxels = patch_to_index(points.astype(np.float64), [0, 0, 0], patch_size)
    preprocessed = transform.map_points(patch_voxels)
    return preprocessed_to_cropped(preprocessed, preprocessed_shape, cropped_shape)


def label_points(labels_original: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Nearest original voxel's label; points outside the volume are background."""
    rounded = np.round(indices).astype(np.int64)
    inside = np.all((rounded >= 0) & (rounded < np.asarray(labels_original.shape)), axis=1)
    out = np.zeros(len(indices), dtype=labels_original.dtype)
    out[inside] = labels_original[tuple(rounded[inside].T)]
    return out


def soft_label_points(labels_original: np.ndarray, indices: np.ndarray, values: Sequence[int]) -> np.ndarray:
    """(N, len(values)) trilinear interpolation of the one-hot label map: partial-volume targets."""
    out = np.stack([map_coordinates((labels_original == v).astype(np.float32), indices.T, order=1, mode="constant",
                                    cval=1.0 if v == 0 else 0.0) for v in values], axis=1)
    return out / np.clip(out.sum(axis=1, keepdims=True), 1e-6, None)


def read_original_labels(seg_original, indices: np.ndarray, margin: int = 2) -> Tuple[np.ndarray, np.ndarray]:
    """The part of the original label map that the points need, and the points relative to it."""
    shape = np.asarray(seg_original.shape)
    lower = np.clip(np.floor(indices.min(axis=0)).astype(int) - margin, 0, shape)
    upper = np.clip(np.ceil(indices.max(axis=0)).astype(int) + margin + 1, 0, shape)
    upper = np.maximum(upper, lower)
    block = seg_original[tuple(slice(int(a), int(b)) for a, b in zip(lower, upper))]
    return np.asarray(block), indices - lower
