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

    def forward(self, inputs: List[torch.Tensor]) -> torch.Tensor:
        """Empties ``inputs`` once they are summed, so that a resized input is freed before the conv:
        at the base preset's finest level each tensor here is some 50 MB of a case's inference peak."""
        w = F.relu(self.weights)
        w = w / (w.sum() + 1e-4)
        out = w[0] * inputs[0]
        for wi, x in zip(w[1:], inputs[1:]):
            out.add_(wi * x)      # in place: the product's backward needs its inputs, not its result
        inputs.clear()
        # conv, norm and nonlinearity one by one, each result replacing the last: called as one module,
        # the block's input would stay alive beside the conv's and the norm's outputs
        layers: nn.Sequential = self.conv.all_modules    # type: ignore[assignment]   # dnA's block, untyped
        for layer in layers:
            out = layer(out)
        return out


def _resize(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    size = tuple(size)
    if tuple(x.shape[2:]) == size:
        return x
    if all(a >= b for a, b in zip(x.shape[2:], size)):
        return F.adaptive_max_pool3d(x, size)
    return F.interpolate(x, size=size, mode="trilinear", align_corners=False)


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

    def forward(self, levels: List[torch.Tensor]) -> List[torch.Tensor]:
        """``levels`` finest first.  The finest is taken out of the list as it is fused, so that it is
        freed before the fusion's conv: at inference it is the largest tensor alive."""
        middle, coarse = levels[1], levels[2]
        middle_size, fine_size = middle.shape[2:], levels[0].shape[2:]
        middle_td = self.middle_td([middle, _resize(coarse, middle_size)])
        fine_out = self.fine_out([levels.pop(0), _resize(middle_td, fine_size)])
        if not self.bottom_up:
            return [fine_out]
        middle_out = self.middle_out([middle, middle_td, _resize(fine_out, middle_size)])
        coarse_out = self.coarse_out([coarse, _resize(middle_out, coarse.shape[2:])])
        return [fine_out, middle_out, coarse_out]


class BiFPN(nn.Module):
    """Fuses the last three encoder scales into one feature grid at the finest of them."""

    def __init__(self, in_channels: Sequence[int], channels: int, repeats: int):
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv3d(c, channels, 1) for c in in_channels[-3:])
        self.layers = nn.ModuleList(BiFPNLayer(channels, bottom_up=i < repeats - 1) for i in range(repeats))

    def forward(self, features: List[torch.Tensor]) -> torch.Tensor:
        """Empties ``features`` (the encoder's outputs) once they are projected, for the same reason."""
        levels = [conv(f) for conv, f in zip(self.lateral, features[-3:])]
        features.clear()
        for layer in self.layers:
            levels = layer(levels)
        return levels[0]
