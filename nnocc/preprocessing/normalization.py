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
        return ((np.clip(channel, low, high) - mean) / max(std, 1e-8)).astype(np.float32)
    if norm.scheme == "zscore":
        region = channel[mask] if (norm.use_nonzero_mask and mask is not None and mask.any()) else channel
        out = (channel - region.mean()) / max(float(region.std()), 1e-8)
        if norm.use_nonzero_mask and mask is not None:
            out[~mask] = 0
        return out.astype(np.float32)
    if norm.scheme == "rescale_to_0_1":
        lo, hi = float(channel.min()), float(channel.max())
        return ((channel - lo) / max(hi - lo, 1e-8)).astype(np.float32)
    if norm.scheme == "none":
        return channel
    raise ValueError(f"unknown normalisation scheme {norm.scheme!r}; expected one of {SCHEMES}")


def normalize_image(image: np.ndarray, schemes: Sequence[ChannelNormalization], mask: Optional[np.ndarray]) -> np.ndarray:
    return np.stack([normalize_channel(c, n, mask) for c, n in zip(image, schemes)])
