"""Intensity normalisation per channel, as written in the plan."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from nnocc.planning.normalization import SCHEMES
from nnocc.planning.plans import ChannelNormalization


def normalize_channel(channel: np.ndarray, norm: ChannelNormalization, mask: Optional[np.ndarray] = None,
                      in_place: bool = False) -> np.ndarray:
    """``in_place``: the caller owns ``channel`` and lets it be overwritten (a 512 x 512 x 400 CT is
    400 MB a copy); a channel that is not float32 yet is converted into a new array either way."""
    converted = channel.astype(np.float32, copy=False)
    target = converted if (in_place or converted is not channel) else None
    if norm.scheme == "ct":
        low, high, mean, std = norm.clip_low, norm.clip_high, norm.mean, norm.std
        if low is None or high is None or mean is None or std is None:
            raise ValueError(f"channel {norm.channel}: the CT scheme needs clip_low, clip_high, mean and std")
        out = np.clip(converted, low, high, out=target)
        out -= mean
        out /= max(std, 1e-8)
        return out
    if norm.scheme == "zscore":
        region = converted[mask] if (norm.use_nonzero_mask and mask is not None and mask.any()) else converted
        centre, spread = np.float32(region.mean()), max(float(region.std()), 1e-8)
        out = np.subtract(converted, centre, out=target)
        out /= spread
        if norm.use_nonzero_mask and mask is not None:
            out[~mask] = 0
        return out
    if norm.scheme == "rescale_to_0_1":
        lo, hi = float(converted.min()), float(converted.max())
        out = np.subtract(converted, np.float32(lo), out=target)
        out /= max(hi - lo, 1e-8)
        return out
    if norm.scheme == "none":
        return converted
    raise ValueError(f"unknown normalisation scheme {norm.scheme!r}; expected one of {SCHEMES}")


def normalize_image(image: np.ndarray, schemes: Sequence[ChannelNormalization], mask: Optional[np.ndarray],
                    in_place: bool = False) -> np.ndarray:
    channels = [normalize_channel(c, n, mask, in_place) for c, n in zip(image, schemes)]
    if in_place and image.dtype == np.float32:      # every channel was normalised where it lies
        return image
    return channels[0][None] if len(channels) == 1 else np.stack(channels)
