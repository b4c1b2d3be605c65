"""nnU-Net's target-spacing rule.

The median spacing, except when the data is strongly anisotropic (the coarsest axis' median
spacing more than three times the others' and that axis has three times fewer voxels): then the
coarse axis takes the 10th percentile of its spacings, so that thick-slice cases are not
over-interpolated while thin-slice cases keep most of their resolution.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np

ANISOTROPY_THRESHOLD = 3.0


def out_of_plane_axis(spacing: Sequence[float], target_spacing: Sequence[float]) -> Optional[int]:
    """The axis to treat apart when the original or the target spacing is strongly anisotropic."""
    for values in (spacing, target_spacing):
        candidate = np.asarray(values, dtype=np.float64)
        if candidate.max() / candidate.min() > ANISOTROPY_THRESHOLD:
            return int(np.argmax(candidate))
    return None


def target_spacing(spacings: np.ndarray, shapes: np.ndarray) -> List[float]:
    """spacings, shapes: (cases, 3) in array order."""
    target = np.percentile(spacings, 50, axis=0)
    median_shape = np.percentile(shapes, 50, axis=0)
    worst = int(np.argmax(target))
    others = [a for a in range(3) if a != worst]
    anisotropic_spacing = target[worst] > ANISOTROPY_THRESHOLD * max(target[others])
    few_slices = median_shape[worst] * ANISOTROPY_THRESHOLD < min(median_shape[others])
    if anisotropic_spacing and few_slices:
        value = float(np.percentile(spacings[:, worst], 10))
        target[worst] = max(value, max(target[others]) + 1e-5)
    return [float(t) for t in target]
