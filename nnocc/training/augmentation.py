"""Augmentation that keeps image, query points and their labels in the same place.

A spatial augmentation is a *coordinate field*: for every voxel of the output patch, the
(continuous) preprocessed index it is read from.  The image patch is interpolated at the field;
a query point inside the patch is mapped through the same field (trilinear interpolation of the
field, exact for rotation and scaling, smooth for elastic deformation), so its label is read from
where the image data came from.  The field is built with batchgenerators' coordinate utilities;
rotation happens in millimetres so anisotropic voxels do not shear shapes.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from batchgenerators.augmentations.color_augmentations import (
    augment_brightness_multiplicative,
    augment_contrast,
    augment_gamma,
)
from batchgenerators.augmentations.noise_augmentations import augment_gaussian_blur, augment_gaussian_noise
from batchgenerators.augmentations.utils import (
    create_zero_centered_coordinate_mesh,
    elastic_deform_coordinates,
    rotate_coords_3d,
    scale_coords,
)
from scipy.ndimage import map_coordinates

from nnocc.coordinates import patch_start
from nnocc.planning.plans import AugmentationPlan


@dataclass
class SpatialTransform:
    """A patch's coordinate field, and whether it is a pure (integer) shift with flips."""
    field: np.ndarray                 # (3, s0, s1, s2) preprocessed indices
    is_shift: bool
    offset: Optional[np.ndarray] = None   # lower corner for the shift fast path
    flips: Sequence[int] = ()         # mirrored axes: in the field, and applied by map_points's shift fast path

    def map_points(self, patch_voxels: np.ndarray) -> np.ndarray:
        """Continuous patch-voxel positions (N, 3) -> preprocessed indices (N, 3)."""
        if self.is_shift:
            mapped = patch_voxels.copy()
            size = np.asarray(self.field.shape[1:])
            for axis in self.flips:
                mapped[:, axis] = size[axis] - 1 - mapped[:, axis]
            return mapped + self.offset
        return np.stack([map_coordinates(self.field[a], patch_voxels.T, order=1, mode="nearest")
                         for a in range(3)], axis=1)


def random_spatial_transform(patch_size: Sequence[int], centre: np.ndarray, spacing: Sequence[float],
                             plan: Optional[AugmentationPlan], rng: np.random.Generator) -> SpatialTransform:
    """A random coordinate field centred on ``centre``; ``plan=None`` gives the plain crop."""
    patch_size = [int(s) for s in patch_size]
    flips = [a for a in (plan.mirror_axes if plan else []) if rng.random() < 0.5]
    rotate = plan is not None and rng.random() < plan.p_rotation and max(plan.rotation_deg) > 0
    scale = plan is not None and rng.random() < plan.p_scale
    elastic = plan is not None and rng.random() < plan.p_elastic
    if not (rotate or scale or elastic):
        offset = patch_start(centre, patch_size)
        mesh = np.indices(patch_size, dtype=np.float64)
        for axis in flips:
            mesh[axis] = mesh[axis][tuple(slice(None, None, -1) if a == axis else slice(None) for a in range(3))]
        return SpatialTransform(mesh + offset.reshape(3, 1, 1, 1), True, offset, flips)
    coords = create_zero_centered_coordinate_mesh(patch_size)
    assert plan is not None  # rotate, scale or elastic come from a plan
    if elastic:
        alpha = _uniform(rng, plan.elastic_alpha)
        sigma = _uniform(rng, plan.elastic_sigma)
        coords = elastic_deform_coordinates(coords, alpha, sigma)
    spacing_field = np.asarray(spacing, dtype=np.float64).reshape(3, 1, 1, 1)
    coords = coords * spacing_field
    if rotate:
        angles = [np.deg2rad(rng.uniform(-d, d)) for d in plan.rotation_deg]
        coords = rotate_coords_3d(coords, *angles)
    if scale:
        coords = scale_coords(coords, _uniform(rng, plan.scale_range))
    coords = coords / spacing_field
    for axis in flips:
        coords[axis] = -coords[axis]
    return SpatialTransform(coords + np.asarray(centre).reshape(3, 1, 1, 1), False, flips=flips)


def _uniform(rng: np.random.Generator, bounds: Sequence[float]) -> float:
    low, high = bounds
    return float(rng.uniform(low, high))


def _read_box(volume, lower: np.ndarray, upper: np.ndarray, fill: float) -> np.ndarray:
    """volume[..., lower:upper] with out-of-range parts filled (works on blosc2 arrays)."""
    shape = np.asarray(volume.shape[-3:])
    lo = np.clip(lower, 0, shape)
    hi = np.clip(upper, 0, shape)
    lead = volume.shape[:-3]
    out = np.full(tuple(lead) + tuple(int(high - low) for low, high in zip(lower, upper)), fill, dtype=np.float32)
    if np.all(hi > lo):
        src = (Ellipsis,) + tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
        dst = (Ellipsis,) + tuple(slice(int(a - low), int(b - low)) for a, b, low in zip(lo, hi, lower))
        out[dst] = volume[src]
    return out


def sample_volume(volume, transform: SpatialTransform, order: int, fill: float) -> np.ndarray:
    """Interpolate ``volume`` ((C,) z, y, x; numpy or blosc2) at the transform's field."""
    if transform.is_shift:
        assert transform.offset is not None
        size = np.asarray(transform.field.shape[1:])
        box = _read_box(volume, transform.offset.astype(int), transform.offset.astype(int) + size, fill)
        for axis in transform.flips:
            box = np.flip(box, axis=box.ndim - 3 + axis)
        return np.ascontiguousarray(box)
    margin = order + 1
    lower = np.floor(transform.field.reshape(3, -1).min(axis=1)).astype(int) - margin
    upper = np.ceil(transform.field.reshape(3, -1).max(axis=1)).astype(int) + margin + 1
    box = _read_box(volume, lower, upper, fill)
    local = transform.field - lower.reshape(3, 1, 1, 1)
    if box.ndim == 3:
        return map_coordinates(box, local, order=order, mode="constant", cval=fill).astype(np.float32)
    return np.stack([map_coordinates(c, local, order=order, mode="constant", cval=fill) for c in box]).astype(np.float32)


def augment_intensities(patch: np.ndarray, plan: AugmentationPlan, rng: np.random.Generator) -> np.ndarray:
    """nnU-Net's intensity augmentations on a (C, ...) patch (batchgenerators implementations)."""
    seed = int(rng.integers(2 ** 31))
    np.random.seed(seed)  # batchgenerators draws from numpy's and Python's global generators
    random.seed(seed)
    if rng.random() < plan.p_noise:
        patch = augment_gaussian_noise(patch, (0, 0.1), p_per_channel=1.0)
    if rng.random() < plan.p_blur:
        patch = augment_gaussian_blur(patch, (0.5, 1.0), per_channel=True, p_per_channel=0.5)
    if rng.random() < plan.p_brightness:
        patch = augment_brightness_multiplicative(patch, (0.75, 1.25), per_channel=True)
    if rng.random() < plan.p_contrast:
        patch = augment_contrast(patch, (0.75, 1.25), preserve_range=True, per_channel=True)
    if rng.random() < plan.p_gamma:
        patch = augment_gamma(patch, tuple(plan.gamma_range), invert_image=False, per_channel=True,
                              retain_stats=True)
    return patch.astype(np.float32, copy=False)


def random_joint_affine(patch_mm: Sequence[float], affine_sigma: float, shift_sigma: float,
                        rng: np.random.Generator) -> np.ndarray:
    """Seed 002's augmentation of a point cloud and its query points together: in millimetres about
    the patch's centre, the matrix I + N(0, affine_sigma) and a shift N(0, shift_sigma x the largest
    extent).  Returned as a (3, 4) map of patch coordinates: ``p' = A[:, :3] p + A[:, 3]``."""
    extent = np.asarray(patch_mm, dtype=np.float64)
    matrix = np.eye(3) + rng.normal(0.0, affine_sigma, size=(3, 3))
    shift = rng.normal(0.0, shift_sigma * extent.max(), size=3)
    # patch coordinate = mm / extent: conjugate the millimetre map by the per-axis extent
    return np.concatenate([matrix * extent[None, :] / extent[:, None], (shift / extent)[:, None]], axis=1)


def apply_affine(affine: np.ndarray, points: np.ndarray) -> np.ndarray:
    return (points @ affine[:, :3].T + affine[:, 3]).astype(points.dtype)
