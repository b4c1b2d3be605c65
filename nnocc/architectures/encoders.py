"""CNN encoders that turn a patch into multi-scale features, and a BiFPN that fuses them.

Built from dynamic-network-architectures blocks (ResNet-D basic blocks, instance norm) so that
the encoder matches what nnU-Net users know.
"""
from __future__ import annotations

from typing import List, Sequence

import torch
from dynamic_network_architectures.building_blocks.residual import BasicBlockD, StackedResidualBlocks
from dynamic_network_architectures.building_blocks.simple_conv_blocks import ConvDropoutNormReLU
from torch import nn
from torch.nn import functional as F

_NORM = dict(norm_op=nn.InstanceNorm3d, norm_op_kwargs={"eps": 1e-5, "affine": True},
             nonlin=nn.LeakyReLU, nonlin_kwargs={"inplace": True})


def conv_block(in_channels: int, out_channels: int, kernel: int = 3, stride=1) -> nn.Module:
    return ConvDropoutNormReLU(nn.Conv3d, in_channels, out_channels, kernel, stride, conv_bias=True, **_NORM)


class ResNetEncoder(nn.Module):
    """ResNet-10 style: a strided stem, then one residual stage per scale.

    ``strides[0]`` is the stem's stride; ``strides[i]`` the first block's stride of stage i.
    Returns the output of every stage (finest first).
    """

    def __init__(self, in_channels: int, stem_channels: int, stage_channels: Sequence[int],
                 strides: Sequence[Sequence[int]], blocks_per_stage: Sequence[int]):
        super().__init__()
        if len(strides) != len(stage_channels) + 1:
            raise ValueError("strides needs one entry for the stem and one per stage")
        self.stem = conv_block(in_channels, stem_channels, kernel=3, stride=list(strides[0]))
        stages, previous = [], stem_channels
        for channels, stride, n_blocks in zip(stage_channels, strides[1:], blocks_per_stage):
            stages.append(StackedResidualBlocks(n_blocks, nn.Conv3d, previous, channels, 3, list(stride), True,
                                                block=BasicBlockD, **_NORM))
            previous = channels
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        x = self.stem(x)
        outputs = []
        for stage in self.stages:
            x = stage(x)
            outputs.append(x)
        return outputs


class _WeightedFusion(nn.Module):
    """EfficientDet's fast normalised fusion: sum_i w_i x_i / (eps + sum_i w_i), w_i >= 0."""

    def __init__(self, n_inputs: int, channels: int):
        super().__init__()
        self.weights = nn.Parameter(torch.ones(n_inputs))
        self.conv = conv_block(channels, channels)

    def forward(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        w = F.relu(self.weights)
        w = w / (w.sum() + 1e-4)
        return self.conv(sum(wi * x for wi, x in zip(w, inputs)))


def _resize(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if x.shape[2:] == like.shape[2:]:
        return x
    if all(a >= b for a, b in zip(x.shape[2:], like.shape[2:])):
        return F.adaptive_max_pool3d(x, like.shape[2:])
    return F.interpolate(x, size=like.shape[2:], mode="trilinear", align_corners=False)


class BiFPNLayer(nn.Module):
    """One top-down and bottom-up pass over three scales (finest first).

    The last layer only needs the finest output (it is the feature grid), so it has no bottom-up
    path: computing it would cost time and leave parameters without gradients.
    """

    def __init__(self, channels: int, bottom_up: bool = True):
        super().__init__()
        self.middle_td = _WeightedFusion(2, channels)
        self.fine_out = _WeightedFusion(2, channels)
        self.bottom_up = bottom_up
        if bottom_up:
            self.middle_out = _WeightedFusion(3, channels)
            self.coarse_out = _WeightedFusion(2, channels)

    def forward(self, fine: torch.Tensor, middle: torch.Tensor, coarse: torch.Tensor):
        middle_td = self.middle_td([middle, _resize(coarse, middle)])
        fine_out = self.fine_out([fine, _resize(middle_td, fine)])
        if not self.bottom_up:
            return fine_out, None, None
        middle_out = self.middle_out([middle, middle_td, _resize(fine_out, middle)])
        coarse_out = self.coarse_out([coarse, _resize(middle_out, coarse)])
        return fine_out, middle_out, coarse_out


class BiFPN(nn.Module):
    """Fuses the last three encoder scales into one feature grid at the finest of them."""

    def __init__(self, in_channels: Sequence[int], channels: int, repeats: int):
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv3d(c, channels, 1) for c in in_channels[-3:])
        self.layers = nn.ModuleList(BiFPNLayer(channels, bottom_up=i < repeats - 1) for i in range(repeats))

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        levels = [conv(f) for conv, f in zip(self.lateral, features[-3:])]
        for layer in self.layers:
            levels = layer(*levels)
        return levels[0]
