"""Contour point clouds (seed 002, SCONet): 3D Canny edges of a preprocessed case, each with a
local descriptor of its neighbourhood.

The paper's descriptor is 3D-SURF from an external binary that no package provides.  Ours has the
same role and size: around each edge voxel, an 11^3 neighbourhood split into 2 x 2 x 2 blocks of
5^3 voxels (the centre planes left out, so the layout is symmetric), and per block the sums of the
gradient along each axis and of its absolute value (SURF's dx, |dx| per sub-region, in 3D):
8 blocks x 6 = 48 values, scaled to unit length (SURF's contrast invariance).  Gradients are in
intensity per millimetre, so thick-slice axes are not overweighted.

Rows are ``(z, y, x, features...)``: preprocessed voxel index, then 48 descriptor values
(``gradient``), the intensity at the voxel (``intensity``) or nothing (``none``); the paper's
ablation compares the three.
"""
from __future__ import annotations

import logging
from typing import Sequence

import numpy as np
import SimpleITK as sitk
from scipy.ndimage import uniform_filter

from nnocc.planning.plans import DESCRIPTOR_CHANNELS, PointCloudPlan
from nnocc.utils.errors import NnoccError

logger = logging.getLogger(__name__)

BLOCK = 5                      # voxels per descriptor block and axis
BLOCK_OFFSET = 3               # block centres at +-3 voxels: blocks span 1..5 voxels from the edge voxel
MIN_EDGE_POINTS = 64           # fewer: an error (nothing to encode)
FEW_EDGE_POINTS = 2000         # fewer: a warning (a flat image or a wrong window?)


def canny_edges(image: np.ndarray, spacing: Sequence[float], settings: PointCloudPlan) -> np.ndarray:
    """(z, y, x) intensities -> boolean edge mask (SimpleITK's 3D Canny, variance in mm^2)."""
    volume = sitk.GetImageFromArray(np.ascontiguousarray(image, dtype=np.float32))
    volume.SetSpacing([float(s) for s in reversed(list(spacing))])
    edges = sitk.CannyEdgeDetection(volume, float(settings.canny_lower), float(settings.canny_upper),
                                    [float(settings.canny_variance_mm2)] * 3)
    return sitk.GetArrayViewFromImage(edges) > 0


def gradient_descriptors(image: np.ndarray, spacing: Sequence[float], points: np.ndarray) -> np.ndarray:
    """(N, 3) voxel indices -> (N, 48) unit-length descriptors: per block (8), the 5^3 block means of
    the gradient along each axis and of its absolute value (6).  One axis at a time, so that at most
    three volumes beside the image are alive (inference memory)."""
    image = image.astype(np.float32, copy=False)
    upper = np.asarray(image.shape) - 1
    octants = [np.array([1 if octant & (4 >> a) else -1 for a in range(3)]) for octant in range(8)]
    where = [tuple(np.clip(points + signs * BLOCK_OFFSET, 0, upper).T) for signs in octants]
    descriptors = np.empty((len(points), 8, 6), dtype=np.float32)
    for axis in range(3):
        gradient = np.gradient(image, float(spacing[axis]), axis=axis)
        for kind, volume in enumerate((gradient, np.abs(gradient))):
            block_means = uniform_filter(volume, BLOCK, mode="nearest")
            for octant, index in enumerate(where):
                descriptors[:, octant, 2 * axis + kind] = block_means[index]
            del block_means
    flat = descriptors.reshape(len(points), 48)
    return flat / np.maximum(np.linalg.norm(flat, axis=1, keepdims=True), 1e-6)


def extract_point_cloud(image: np.ndarray, spacing: Sequence[float], settings: PointCloudPlan, name: str,
                        seed: int = 0) -> np.ndarray:
    """A preprocessed case (C, z, y, x) -> (N, 3 + F) float32 rows: edge voxel index, then features.

    Edges come from the first channel.  More than ``stored_points`` edges are subsampled (seeded, so a
    case always gives the same cloud).  Raises NnoccError naming the case when it has almost no
    edges; warns when it has few."""
    if settings.descriptor not in DESCRIPTOR_CHANNELS:
        raise NnoccError(f"unknown contour descriptor {settings.descriptor!r}; one of {', '.join(DESCRIPTOR_CHANNELS)}")
    channel = np.asarray(image[0] if image.ndim == 4 else image, dtype=np.float32)
    points = np.argwhere(canny_edges(channel, spacing, settings))
    if len(points) < MIN_EDGE_POINTS:
        raise NnoccError(f"{name}: only {len(points)} contour points (Canny thresholds {settings.canny_lower:.3g}/"
                         f"{settings.canny_upper:.3g} on normalised intensities); is the image flat or the "
                         f"intensity window wrong?")
    if len(points) < FEW_EDGE_POINTS:
        logger.warning("%s: only %d contour points; the point-cloud encoder sees little of this case", name, len(points))
    if len(points) > settings.stored_points:
        rng = np.random.default_rng(seed)
        points = points[np.sort(rng.choice(len(points), settings.stored_points, replace=False))]
    features = [points.astype(np.float32)]
    if settings.descriptor == "gradient":
        features.append(gradient_descriptors(channel, spacing, points))
    elif settings.descriptor == "intensity":
        features.append(channel[tuple(points.T)][:, None])
    return np.concatenate(features, axis=1).astype(np.float32)
