"""The grid predictions are written on, and how its voxels map to preprocessed indices.

By default the input image's own grid.  With ``output_spacing`` the same physical extent, origin
corner and direction at another spacing (``n_out = round(n_in * s_in / s_out)``; the exact spacing
is then ``n_in * s_in / n_out`` so the extent is kept to the micrometre).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from nnocc.coordinates import cropped_to_preprocessed, rescale_index
from nnocc.io.images import ImageGeometry
from nnocc.preprocessing.storage import CaseProperties


def output_geometry(geometry: ImageGeometry, output_spacing: Optional[Sequence[float]]) -> ImageGeometry:
    if output_spacing is None:
        return geometry
    spacing = list(output_spacing) * 3 if len(output_spacing) == 1 else list(output_spacing)
    shape = [max(1, int(round(n * s / t))) for n, s, t in zip(geometry.shape, geometry.spacing, spacing)]
    exact = [n * s / m for n, s, m in zip(geometry.shape, geometry.spacing, shape)]
    # voxel 0's centre moves so that the outer voxel edges stay where they were
    first_centre = rescale_index(np.zeros(3), shape, geometry.shape)
    origin = geometry.index_to_physical(first_centre[None])[0]
    return ImageGeometry(shape=shape, spacing=exact, origin=[float(v) for v in origin], direction=geometry.direction)


@dataclass
class OutputGrid:
    geometry: ImageGeometry            # of the output
    properties: CaseProperties         # of the preprocessed case

    def to_preprocessed(self, index: np.ndarray) -> np.ndarray:
        """Output voxel indices (..., 3) -> preprocessed indices (float)."""
        original = rescale_index(np.asarray(index, dtype=np.float64), self.geometry.shape, self.properties.geometry.shape)
        cropped = original - np.asarray([lo for lo, _ in self.properties.crop_bbox])
        return cropped_to_preprocessed(cropped, self.properties.cropped_shape, self.properties.preprocessed_shape)

    def axis_to_preprocessed(self, axis: int, index: np.ndarray) -> np.ndarray:
        full = np.zeros((len(index), 3))
        full[:, axis] = index
        return self.to_preprocessed(full)[:, axis]

    def linear_map(self) -> Tuple[np.ndarray, np.ndarray]:
        """Per-axis (scale, offset) with preprocessed = scale * output + offset."""
        offset = self.to_preprocessed(np.zeros((1, 3)))[0]
        scale = self.to_preprocessed(np.ones((1, 3)))[0] - offset
        return scale, offset

    def crop_region(self) -> List[Tuple[int, int]]:
        """Per axis, the output indices inside the crop box (outside it is background)."""
        region = []
        for axis, (lo, hi) in enumerate(self.properties.crop_bbox):
            index = np.arange(self.geometry.shape[axis])
            original = rescale_index(index.astype(np.float64), [self.geometry.shape[axis]],
                                     [self.properties.geometry.shape[axis]])
            inside = np.nonzero((original >= lo - 0.5) & (original < hi - 0.5))[0]
            region.append((int(inside.min()), int(inside.max()) + 1) if len(inside) else (0, 0))
        return region
