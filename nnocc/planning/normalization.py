"""Which intensity normalisation each channel gets (nnU-Net's rules); preprocessing applies it."""
from __future__ import annotations

from nnocc.fingerprint.fingerprint import IntensityStatistics
from nnocc.planning.plans import ChannelNormalization

SCHEMES = ("ct", "zscore", "rescale_to_0_1", "none")


def scheme_for_channel(name: str) -> str:
    """nnU-Net's convention: the channel *name* chooses the scheme."""
    lowered = name.lower()
    if lowered == "ct":
        return "ct"
    if lowered in ("nonorm", "none"):
        return "none"
    if lowered in ("rescale_to_0_1", "rgb_to_0_1"):
        return "rescale_to_0_1"
    return "zscore"


def plan_normalization(name: str, statistics: IntensityStatistics, use_nonzero_mask: bool) -> ChannelNormalization:
    scheme = scheme_for_channel(name)
    if scheme == "ct":
        # the HU window: foreground 0.5 / 99.5 percentiles, then z-score with foreground statistics
        return ChannelNormalization(name, "ct", clip_low=statistics.percentile_00_5,
                                    clip_high=statistics.percentile_99_5, mean=statistics.mean,
                                    std=statistics.std)
    return ChannelNormalization(name, scheme, use_nonzero_mask=use_nonzero_mask and scheme == "zscore")
