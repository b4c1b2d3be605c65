"""Crop a case to the region where any channel is non-zero (nnU-Net's first step): the fingerprint
measures the cropped cases, and preprocessing crops them the same way."""
from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np
from acvl_utils.cropping_and_padding.bounding_boxes import bounding_box_to_slice, get_bbox_from_mask
from scipy.ndimage import binary_fill_holes

BoundingBox = List[List[int]]


def nonzero_bounding_box(image: np.ndarray) -> BoundingBox:
    """Box [[lo, hi), ...] around the non-zero voxels of (C, z, y, x); the whole image if none."""
    mask = np.any(image != 0, axis=0)
    if not mask.any():
        return [[0, n] for n in image.shape[1:]]
    mask = binary_fill_holes(mask)
    return [[int(lo), int(hi)] for lo, hi in get_bbox_from_mask(mask)]


def crop_to_nonzero(image: np.ndarray, label: Optional[np.ndarray] = None
                    ) -> Tuple[np.ndarray, Optional[np.ndarray], BoundingBox]:
    bbox = nonzero_bounding_box(image)
    region = bounding_box_to_slice(bbox)
    cropped_label = label[region] if label is not None else None
    return image[(slice(None),) + region], cropped_label, bbox


def nonzero_mask(image: np.ndarray) -> np.ndarray:
    return binary_fill_holes(np.any(image != 0, axis=0))
