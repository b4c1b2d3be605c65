"""Intensity normalisation per channel, as written in the plan."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from nnocc.planning.normalization import SCHEMES
from nnocc.planning.plans import ChannelNormalization


def normalize_channel(channel: np.ndarray, norm: ChannelNormalization, mask: Optional[np.ndarray] = None) -> np.ndarray:
    channel = channel.astype(np.float32, copy=False)
    if norm.scheme == "ct":
        low, high, mean, std = norm.clip_low, norm.clip_high, norm.mean, norm.std
        if low is None or high is None or mean is None or std is None:
            raise ValueError(f"channel {norm.channel}: the CT scheme needs clip_low, clip_high, mean and std")
        out = np.clip(channel, low, high)      # one new array, then in place: a 512 x 512 x 400 CT is 400 MB a copy
        out -= mean
        out /= max(std, 1e-8)
        return out
    if norm.scheme == "zscore":
        region = channel[mask] if (norm.use_nonzero_mask and mask is not None and mask.any()) else channel
        out = channel - np.float32(region.mean())
        out /= max(float(region.std()), 1e-8)
        if norm.use_nonzero_mask and mask is not None:
            out[~mask] = 0
        return out
    if norm.scheme == "rescale_to_0_1":
        lo, hi = float(channel.min()), float(channel.max())
        out = channel - np.float32(lo)
        out /= max(hi - lo, 1e-8)
        return out
    if norm.scheme == "none":
        return channel
    raise ValueError(f"unknown normalisation scheme {norm.scheme!r}; expected one of {SCHEMES}")


def normalize_image(image: np.ndarray, schemes: Sequence[ChannelNormalization], mask: Optional[np.ndarray]) -> np.ndarray:
    channels = [normalize_channel(c, n, mask) for c, n in zip(image, schemes)]
    return channels[0][None] if len(channels) == 1 else np.stack(channels)
