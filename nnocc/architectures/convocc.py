"""ConvOccNet (seed 000), the ``3d_occ`` architecture.

ResNet-10 style encoder -> BiFPN over three scales -> one feature grid (``C`` channels at the
stem's resolution) -> per query point: trilinear feature lookup + sinusoidal positional encoding
-> residual blocks with conditional batch norm -> one small MLP head per output.  An optional
1x1x1 convolution on the grid gives a low-resolution voxel prediction (OSS-Net's auxiliary head,
seed 001) that supervises the encoder and can seed MISE at inference.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
from torch import nn

from nnocc.architectures.base import Encoding, MemoryCalibration, OccupancyArchitecture, Placement
from nnocc.architectures.blocks import OccupancyDecoder
from nnocc.architectures.encoders import BiFPN, ResNetEncoder

# Channel widths by size.  'base' is seed 000 (128-channel grid, 128-wide decoder, 5 CBN blocks).
PRESETS: Dict[str, Dict[str, Any]] = {
    "tiny": dict(stem_channels=16, stage_channels=[16, 32, 64], bifpn_channels=32, bifpn_repeats=1,
                 hidden=64, head_hidden=32, decoder_blocks=5, pe_frequencies=6),
    "small": dict(stem_channels=24, stage_channels=[32, 64, 128], bifpn_channels=64, bifpn_repeats=1,
                  hidden=96, head_hidden=64, decoder_blocks=5, pe_frequencies=6),
    "base": dict(stem_channels=32, stage_channels=[64, 128, 256], bifpn_channels=128, bifpn_repeats=2,
                 hidden=128, head_hidden=128, decoder_blocks=5, pe_frequencies=6),
}
PRESET_ORDER = ["tiny", "small", "base"]


def plan_strides(spacing: Sequence[float], num_downsamplings: int = 3) -> List[List[int]]:
    """Strides for [stem, stage 1, stage 2, stage 3]; stage 1 keeps the stem's resolution.

    nnU-Net's rule per step: an axis is halved only while its spacing is at most twice the
    finest current spacing, so thick-slice axes wait until the others have caught up.
    """
    current = np.asarray(spacing, dtype=np.float64)
    steps = []
    for _ in range(num_downsamplings):
        stride = [2 if s <= 2 * current.min() else 1 for s in current]
        current = current * np.asarray(stride)
        steps.append(stride)
    return [steps[0], [1, 1, 1], steps[1], steps[2]]


def total_stride(strides: Sequence[Sequence[int]]) -> List[int]:
    return [int(np.prod([s[a] for s in strides])) for a in range(3)]


@dataclass
class ConvEncoding(Encoding):
    features: torch.Tensor                   # (B, C, g0, g1, g2)
    aux_logits: Optional[torch.Tensor]       # (B, K, g0, g1, g2) or None


class ConvOccNet(OccupancyArchitecture):
    configuration_name = "3d_occ"
    field_of_view = "patch"
    memory_calibration = MemoryCalibration(5.95, 202e6)      # CPU, benchmarks/results/memory_model_cpu.json
    PRESET_ORDER = PRESET_ORDER

    def __init__(self, in_channels: int, num_outputs: int, strides: Sequence[Sequence[int]],
                 stem_channels: int, stage_channels: Sequence[int], bifpn_channels: int, bifpn_repeats: int,
                 hidden: int, head_hidden: int, decoder_blocks: int, pe_frequencies: int,
                 blocks_per_stage: Sequence[int] = (1, 1, 1), aux_head: bool = True, preset: str = ""):
        super().__init__()
        self.in_channels, self.num_outputs = in_channels, num_outputs
        self.strides = [list(s) for s in strides]
        self.encoder = ResNetEncoder(in_channels, stem_channels, stage_channels, strides, blocks_per_stage)
        self.fusion = BiFPN(stage_channels, bifpn_channels, bifpn_repeats)
        self.aux_head = nn.Conv3d(bifpn_channels, num_outputs, 1) if aux_head else None
        self.decoder = OccupancyDecoder(bifpn_channels, hidden, decoder_blocks, pe_frequencies, num_outputs,
                                        head_hidden)
        self.grid_stride = list(strides[0])

    @classmethod
    def build_kwargs(cls, preset: str, in_channels: int, num_outputs: int, spacing: Sequence[float]) -> Dict[str, Any]:
        return build_kwargs(preset, in_channels, num_outputs, spacing)

    def input_multiple(self) -> List[int]:
        return total_stride(self.strides)

    def encode(self, image: torch.Tensor, placement: Optional[Placement] = None) -> ConvEncoding:
        """patch (B, in_channels, s0, s1, s2) -> feature grid at the stem's resolution."""
        features = self.fusion(self.encoder(image))
        aux = self.aux_head(features) if self.aux_head is not None else None
        return ConvEncoding(features, aux)

    def decode(self, points: torch.Tensor, encoding: Encoding) -> torch.Tensor:
        """points (B, N, 3) in patch coordinates -> logits (B, N, num_outputs)."""
        assert isinstance(encoding, ConvEncoding)
        return self.decoder(points, encoding.features)

    def auxiliary_logits(self, encoding: Encoding) -> Optional[torch.Tensor]:
        assert isinstance(encoding, ConvEncoding)
        return encoding.aux_logits

    def aux_grid_shape(self, patch: Sequence[int]) -> Optional[List[int]]:
        if self.aux_head is None:
            return None
        return [p // s for p, s in zip(patch, self.grid_stride)]

    def pretrained_module(self) -> nn.Module:
        return self.encoder


def build_kwargs(preset: str, in_channels: int, num_outputs: int, spacing: Sequence[float],
                 aux_head: bool = True) -> Dict[str, Any]:
    """The plan's architecture arguments for one preset and the data's spacing."""
    if preset not in PRESETS:
        raise ValueError(f"unknown ConvOccNet preset {preset!r}; expected one of {PRESET_ORDER}")
    return dict(in_channels=in_channels, num_outputs=num_outputs, strides=plan_strides(spacing),
                aux_head=aux_head, preset=preset, **PRESETS[preset])
