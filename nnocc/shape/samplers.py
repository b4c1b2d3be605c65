"""Where the labelled cubes go: N cube centres (voxel indices of a shape's crop) chosen from its mask.

``random``: voxel-aligned centres anywhere in the crop (seed 004's RS, "within the input volume");
``farthest_point``: farthest-point sampling over the occupied voxels from a random first one (its
FPS); ``learned``: the trained patch sampler (learned_sampler.py).  Cubes are K voxels per edge
around their centres; the voxels of a cube outside the crop are left out.
"""
from __future__ import annotations

from typing import Callable, Dict

import numpy as np

CubeSampler = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]


def random_centres(mask: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    return np.stack([rng.integers(0, n, size=count) for n in mask.shape], axis=1)


def farthest_point_centres(mask: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    occupied = np.argwhere(mask)
    if len(occupied) == 0:
        raise ValueError("farthest-point sampling needs an occupied voxel")
    chosen = [int(rng.integers(len(occupied)))]
    distance = np.sum((occupied - occupied[chosen[0]]) ** 2, axis=1).astype(np.float64)
    for _ in range(count - 1):
        chosen.append(int(np.argmax(distance)))
        distance = np.minimum(distance, np.sum((occupied - occupied[chosen[-1]]) ** 2, axis=1))
    return occupied[chosen]


SAMPLERS: Dict[str, CubeSampler] = {"random": random_centres, "farthest_point": farthest_point_centres}


def cube_offsets(edge: int) -> np.ndarray:
    """(K^3, 3) integer offsets of a cube of K voxels per edge around its centre voxel."""
    r = np.arange(edge) - edge // 2
    return np.stack(np.meshgrid(r, r, r, indexing="ij"), axis=-1).reshape(-1, 3)


def cube_voxels(centres: np.ndarray, edge: int, shape) -> np.ndarray:
    """(M, 3) voxel indices of the cubes inside the crop (voxels shared by two cubes count once)."""
    voxels = (np.asarray(centres)[:, None, :] + cube_offsets(edge)[None]).reshape(-1, 3)
    inside = np.all((voxels >= 0) & (voxels < np.asarray(shape)), axis=1)
    return np.unique(voxels[inside], axis=0)
