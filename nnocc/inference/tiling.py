"""Tiles over a preprocessed volume, and which tile answers for which point.

Tiles follow nnU-Net's sliding window: per axis, starts spread evenly from 0 to ``size - patch``
with steps of at most ``patch * tile_step``; a volume smaller than the patch gets one centred tile
(padded with zeros).  With ``nearest`` stitching a point is answered by the tile whose centre is
nearest, i.e. per axis the tile in whose central part it lies, which makes the ownership regions
axis-aligned boxes: MISE runs box by box and each box needs one encoded tile.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence, Tuple

import numpy as np


def tile_starts(size: int, patch: int, tile_step: float) -> List[float]:
    if size <= patch:
        # whole voxels, as the crop (VolumeField._crop) takes them: a half-voxel start would be looked
        # up half a voxel away from where the tile was cut
        return [float(np.floor((size - patch) / 2.0))]
    span = size - patch
    count = int(np.ceil(span / (patch * tile_step))) + 1
    return [float(s) for s in np.linspace(0, span, count).round()]


@dataclass
class Tiling:
    shape: Sequence[int]            # preprocessed volume (z, y, x)
    patch: Sequence[int]
    starts: List[List[float]]       # per axis

    @classmethod
    def over(cls, shape: Sequence[int], patch: Sequence[int], tile_step: float) -> "Tiling":
        return cls(list(shape), list(patch), [tile_starts(n, p, tile_step) for n, p in zip(shape, patch)])

    @property
    def grid(self) -> Tuple[int, ...]:
        return tuple(len(s) for s in self.starts)

    def start(self, tile: Sequence[int]) -> List[float]:
        return [self.starts[a][t] for a, t in enumerate(tile)]

    def centres(self, axis: int) -> np.ndarray:
        return np.asarray(self.starts[axis]) + (self.patch[axis] - 1) / 2.0

    def nearest_tile(self, axis: int, positions: np.ndarray) -> np.ndarray:
        """Index of the tile whose centre is nearest, per position along one axis."""
        centres = self.centres(axis)
        return np.abs(np.asarray(positions)[:, None] - centres[None, :]).argmin(axis=1)

    def covering_tiles(self, axis: int, position: float) -> List[int]:
        """Tiles whose extent contains the position along one axis (for blending)."""
        starts = np.asarray(self.starts[axis])
        inside = np.nonzero((position >= starts - 0.5) & (position <= starts + self.patch[axis] - 0.5))[0]
        return inside.tolist() or [int(self.nearest_tile(axis, np.array([position]))[0])]


def ownership_runs(tile_of_index: np.ndarray) -> List[Tuple[int, int, int]]:
    """(tile, first, end) runs of equal tile along one axis of output indices."""
    runs, start = [], 0
    for i in range(1, len(tile_of_index) + 1):
        if i == len(tile_of_index) or tile_of_index[i] != tile_of_index[start]:
            runs.append((int(tile_of_index[start]), start, i))
            start = i
    return runs
