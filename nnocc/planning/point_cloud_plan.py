"""A point-cloud encoder's contour settings (seed 002): Canny's thresholds from the foreground's
intensity spread, its smoothing from the paper."""
from __future__ import annotations

from typing import Mapping, Sequence

from nnocc.fingerprint.fingerprint import IntensityStatistics
from nnocc.planning.plans import ChannelNormalization, PointCloudPlan

# Canny hysteresis thresholds as shares of the foreground intensity spread: the paper's 20 / 50 HU
# are 0.27 / 0.67 of KiTS's foreground standard deviation (about 75 HU)
CANNY_THRESHOLD_SHARES = (0.25, 0.65)
CANNY_MIN_VARIANCE_MM2 = 2.0      # the paper's smoothing (variance 2 mm^2) unless the voxels are coarser


def plan_point_cloud(normalization: ChannelNormalization, intensities: Mapping[str, IntensityStatistics],
                     spacing: Sequence[float], descriptor: str) -> PointCloudPlan:
    """Thresholds in the preprocessed image's units (seed 002's 20 / 50 HU on KiTS-like data) from the
    first channel's foreground spread; smoothing as the paper, or a voxel if coarser."""
    lower, upper = CANNY_THRESHOLD_SHARES
    variance = max(CANNY_MIN_VARIANCE_MM2, min(spacing) ** 2)
    if normalization.scheme == "ct":
        spread = intensities[normalization.channel].std
        assert normalization.std is not None
        note = (f"{lower * spread:.1f} / {upper * spread:.1f} HU: {lower:g} / {upper:g} of the foreground's "
                f"standard deviation ({spread:.1f} HU)")
        return PointCloudPlan(variance, lower * spread / normalization.std, upper * spread / normalization.std,
                              descriptor, thresholds_note=note)
    note = f"{lower:g} / {upper:g} of the channel's standard deviation ({normalization.scheme})"
    return PointCloudPlan(variance, lower, upper, descriptor, thresholds_note=note)
