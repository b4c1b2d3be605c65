"""The project's single coordinate convention.

Four spaces, all in array order (z, y, x):

* **original index**: continuous voxel index of the input image; voxel centres at integers.
  Physical millimetres come from :class:`nnocc.io.images.ImageGeometry`.
* **cropped index**: original index minus the crop box's lower corner.
* **preprocessed index**: index on the resampled grid.  Resampling keeps the crop's physical
  extent (voxel *edges* line up), so ``i_pre = (i_crop + 0.5) * n_pre / n_crop - 0.5``.
* **patch coordinate** ``p`` in ``[-0.5, 0.5]^3``: a patch of size ``S`` starting at preprocessed
  index ``start`` spans the outer edges of its voxels, ``p = (i - start + 0.5) / S - 0.5``.  A
  feature grid of ``G`` cells over that patch has its cell centres at ``(j + 0.5) / G - 0.5``:
  this is ``align_corners=False`` in PyTorch's terms, and ``grid_sample`` takes ``2 p`` with the
  axes reversed to (x, y, z).
"""
from __future__ import annotations

from typing import Any, Sequence, TypeVar

import numpy as np
import torch

# numpy in, numpy out; torch in, torch out (on the input's device)
ArrayLike = TypeVar("ArrayLike", np.ndarray, torch.Tensor)


def _as(values: Sequence[float], like: Any) -> Any:
    if isinstance(like, torch.Tensor):
        return torch.as_tensor(np.asarray(values, dtype=np.float64), dtype=like.dtype, device=like.device)
    return np.asarray(values, dtype=np.float64)


def index_to_patch(index: ArrayLike, start: Sequence[float], size: Sequence[int]) -> ArrayLike:
    """Preprocessed voxel index (..., 3) -> patch coordinate in [-0.5, 0.5]."""
    return (index - _as(start, index) + 0.5) / _as(size, index) - 0.5


def patch_to_index(patch: ArrayLike, start: Sequence[float], size: Sequence[int]) -> ArrayLike:
    """Patch coordinate (..., 3) -> preprocessed voxel index."""
    return (patch + 0.5) * _as(size, patch) - 0.5 + _as(start, patch)


def patch_to_grid_sample(patch: torch.Tensor) -> torch.Tensor:
    """Patch coordinates (..., 3) in (z, y, x) -> grid_sample's (x, y, z) in [-1, 1]."""
    return torch.flip(patch, dims=(-1,)) * 2.0


def patch_start(centre: np.ndarray, patch_size: Sequence[int]) -> np.ndarray:
    """The first voxel of a patch centred on ``centre`` (preprocessed index), rounding half up on
    every axis alike, so even and odd sizes centre the same way."""
    return np.floor(np.asarray(centre, dtype=np.float64) - (np.asarray(patch_size) - 1) / 2.0 + 0.5)


def cell_centres(grid_shape: Sequence[int]) -> np.ndarray:
    """Patch coordinates (g0, g1, g2, 3) of the centres of a grid's cells."""
    axes = [(np.arange(g) + 0.5) / g - 0.5 for g in grid_shape]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)


def rescale_index(index: ArrayLike, from_shape: Sequence[int], to_shape: Sequence[int]) -> ArrayLike:
    """Continuous index on a grid of ``from_shape`` voxels -> index on a grid of ``to_shape`` voxels
    covering the same physical extent (edges aligned)."""
    ratio = _as(to_shape, index) / _as(from_shape, index)
    return (index + 0.5) * ratio - 0.5


def cropped_to_preprocessed(index: ArrayLike, cropped_shape: Sequence[int],
                            preprocessed_shape: Sequence[int]) -> ArrayLike:
    return rescale_index(index, cropped_shape, preprocessed_shape)


def preprocessed_to_cropped(index: ArrayLike, preprocessed_shape: Sequence[int],
                            cropped_shape: Sequence[int]) -> ArrayLike:
    return rescale_index(index, preprocessed_shape, cropped_shape)


def effective_spacing(cropped_shape: Sequence[int], original_spacing: Sequence[float],
                      preprocessed_shape: Sequence[int]) -> np.ndarray:
    """The spacing the resampled grid really has (shapes are rounded, so not exactly the target)."""
    return np.asarray(cropped_shape) * np.asarray(original_spacing) / np.asarray(preprocessed_shape)


def resampled_shape(shape: Sequence[int], spacing: Sequence[float], target_spacing: Sequence[float]) -> list:
    return [max(1, int(round(n * s / t))) for n, s, t in zip(shape, spacing, target_spacing)]
