"""Query points of a training patch and their labels.

Points are drawn in patch coordinates, always jittered off the voxel lattice, by one of two samplers
(the plan's ``sampling.point_sampler``): ``uniform_and_band``, a share uniformly over the patch and
the rest in a band around label boundaries (OSS-Net's border sampling); or ``class_balanced``
(SwIPE), an equal count per label present in the patch (the background may weigh more), half of each
within the band, drawn from a Latin hypercube over the patch.
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


def latin_hypercube(num_points: int, rng: np.random.Generator) -> np.ndarray:
    """(num_points, 3) in [-0.5, 0.5)^3, one point in each of ``num_points`` slabs per axis."""
    strata = np.stack([rng.permutation(num_points) for _ in range(3)], axis=1)
    return (strata + rng.uniform(size=(num_points, 3))) / num_points - 0.5


LATIN_HYPERCUBE_OVERSAMPLING = 8     # candidates per wanted point; a class short of them is topped up from its voxels


def _jittered_voxels(voxels: np.ndarray, count: int, shape: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    chosen = voxels[rng.integers(len(voxels), size=count)] + rng.uniform(-0.5, 0.5, size=(count, 3))
    return (chosen + 0.5) / shape - 0.5


def _draw(candidates: np.ndarray, voxels: np.ndarray, count: int, shape: np.ndarray,
          rng: np.random.Generator) -> np.ndarray:
    """``count`` of the Latin-hypercube candidates, topped up from the voxels when there are too few."""
    taken = candidates[rng.permutation(len(candidates))[:count]]
    if len(taken) == count or len(voxels) == 0:
        return taken
    return np.concatenate([taken, _jittered_voxels(voxels, count - len(taken), shape, rng)])


def class_quotas(present: np.ndarray, num_points: int, background_weight: float) -> np.ndarray:
    """Points per label present: equal, background ``background_weight`` times as many."""
    weights = np.where(present == 0, background_weight, 1.0)
    quotas = np.floor(num_points * weights / weights.sum()).astype(int)
    quotas[np.argsort(-weights, kind="stable")[: num_points - quotas.sum()]] += 1
    return quotas


def sample_class_balanced_points(num_points: int, labels: np.ndarray, band: np.ndarray, boundary_share: float,
                                 rng: np.random.Generator, background_weight: float = 1.0) -> np.ndarray:
    """(num_points, 3) patch coordinates: an equal count per label present in the patch, the background
    ``background_weight`` times as many, ``boundary_share`` of each within the band, the rest beyond it
    (SwIPE).  ``labels`` and ``band`` are the patch's voxels."""
    shape = np.asarray(labels.shape)
    candidates = latin_hypercube(LATIN_HYPERCUBE_OVERSAMPLING * num_points, rng)
    voxel = tuple(np.clip(np.floor((candidates + 0.5) * shape).astype(int), 0, shape - 1).T)
    label_of, near_of = labels[voxel], band[voxel]
    present = np.unique(labels)
    quotas = class_quotas(present, num_points, background_weight)
    parts = []
    for value, quota in zip(present, quotas):
        inside = labels == value
        near_voxels, far_voxels = np.argwhere(inside & band), np.argwhere(inside & ~band)
        near = int(round(quota * boundary_share)) if len(near_voxels) else 0
        near = quota if len(far_voxels) == 0 else near
        mine = label_of == value
        parts.append(_draw(candidates[mine & near_of], near_voxels, near, shape, rng))
        parts.append(_draw(candidates[mine & ~near_of], far_voxels, quota - near, shape, rng))
    points = np.concatenate(parts)
    return points[rng.permutation(len(points))].astype(np.float32)


QUERY_SAMPLERS = ("uniform_and_band", "class_balanced")


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
