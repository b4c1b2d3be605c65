"""Pieces shared by occupancy architectures: nnU-Net's pooling rule, feature lookup, positional encoding, CBN blocks, heads.

Shapes: ``B`` patches, ``N`` query points per patch, ``C`` feature channels, ``H`` hidden width,
``K`` outputs.  Points are patch coordinates in [-0.5, 0.5]^3, array order (see coordinates.py).
"""
from __future__ import annotations

import math
from typing import List, Optional, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from nnocc.coordinates import patch_to_grid_sample

MIN_POOLED_SIZE = 4      # nnU-Net's rule: an axis is not pooled below four voxels


def pooling_strides(spacing: Sequence[float], stages: int, shape: Optional[Sequence[float]] = None
                    ) -> List[List[int]]:
    """Per stage, 2 on the axes whose spacing is within 2x of the finest and (when the input's
    shape is known) that stay at least four voxels long, else 1 (nnU-Net's rules)."""
    current = np.asarray(spacing, dtype=np.float64)
    size = np.asarray(shape if shape is not None else [np.inf] * 3, dtype=np.float64)
    strides = []
    for _ in range(stages):
        stride = [2 if s <= 2 * current.min() and n / 2 >= MIN_POOLED_SIZE else 1 for s, n in zip(current, size)]
        current, size = current * np.asarray(stride), size / np.asarray(stride)
        strides.append(stride)
    return strides


def lookup_features(grid: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Trilinear lookup: grid (B, C, g0, g1, g2), points (B, N, 3) -> (B, N, C).

    Points outside the patch take the border value rather than zeros, so that a point on the
    patch edge is not pulled towards an artificial zero feature.
    """
    sample = patch_to_grid_sample(points).to(grid.dtype)[:, :, None, None, :]       # (B, N, 1, 1, 3)
    features = F.grid_sample(grid, sample, mode="bilinear", padding_mode="border", align_corners=False)
    return features[:, :, :, 0, 0].transpose(1, 2)                                   # (B, N, C)


class SinusoidalEncoding(nn.Module):
    """gamma(p) = (p, sin(2^k pi p), cos(2^k pi p)) for k < num_frequencies, per axis."""

    def __init__(self, num_frequencies: int):
        super().__init__()
        self.frequencies: torch.Tensor
        self.register_buffer("frequencies", (2.0 ** torch.arange(num_frequencies)) * math.pi, persistent=False)
        self.dim = 3 + 6 * num_frequencies

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        scaled = points[..., None] * self.frequencies                                   # (..., 3, L)
        encoded = torch.cat([torch.sin(scaled), torch.cos(scaled)], dim=-1).flatten(-2)
        return torch.cat([points, encoded], dim=-1)


class ConditionalBatchNorm(nn.Module):
    """Batch norm whose scale and shift are predicted from the point's local feature ``c``.

    Normalisation runs over all points of all patches of a batch (x is (M, H)); in eval mode the
    running statistics are used, so a point's output does not depend on the other points.
    """

    def __init__(self, c_dim: int, size: int):
        super().__init__()
        self.norm = nn.BatchNorm1d(size, affine=False)
        self.gamma = nn.Linear(c_dim, size)
        self.beta = nn.Linear(c_dim, size)
        nn.init.zeros_(self.gamma.weight)
        nn.init.ones_(self.gamma.bias)
        nn.init.zeros_(self.beta.weight)
        nn.init.zeros_(self.beta.bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.gamma(c) * self.norm(x) + self.beta(c)


class ResidualCBNBlock(nn.Module):
    def __init__(self, c_dim: int, size: int):
        super().__init__()
        self.norm0 = ConditionalBatchNorm(c_dim, size)
        self.fc0 = nn.Linear(size, size)
        self.norm1 = ConditionalBatchNorm(c_dim, size)
        self.fc1 = nn.Linear(size, size)
        nn.init.zeros_(self.fc1.weight)  # each block starts as the identity: stable early training

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        h = self.fc0(F.relu(self.norm0(x, c)))
        return x + self.fc1(F.relu(self.norm1(h, c)))


class ClassHeads(nn.Module):
    """One small MLP per output (seed 000: Linear(H, H') -> ReLU -> Linear(H', 1)), run batched."""

    def __init__(self, size: int, hidden: int, num_outputs: int):
        super().__init__()
        self.w1 = nn.Parameter(torch.empty(num_outputs, size, hidden))
        self.b1 = nn.Parameter(torch.zeros(num_outputs, hidden))
        self.w2 = nn.Parameter(torch.empty(num_outputs, hidden))
        self.b2 = nn.Parameter(torch.zeros(num_outputs))
        nn.init.kaiming_uniform_(self.w1.view(-1, hidden), a=math.sqrt(5))
        nn.init.uniform_(self.w2, -1 / math.sqrt(hidden), 1 / math.sqrt(hidden))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """The hidden layer of every head is one (M, K x H') tensor, biased and rectified in place: at
        inference it is the decoder's largest (33 MB for 16384 points, four heads of 128), and an
        einsum with a separate bias and ReLU held three of them at once.  Neither in-place step
        touches what the backward pass needs (the matmul's inputs, the ReLU's output)."""
        k, size, hidden = self.w1.shape
        z = h @ self.w1.permute(1, 0, 2).reshape(size, k * hidden)
        z = z.add_(self.b1.reshape(-1)).relu_().view(-1, k, hidden)
        # each head's output is its own rows of z times its w2: a strided batch, not a copy of z
        out = torch.bmm(z.transpose(0, 1), self.w2[:, :, None])[:, :, 0]
        return out.t() + self.b2


class OccupancyDecoder(nn.Module):
    """Query points -> logits, conditioned on a feature grid (seed 000, Fig. 2)."""

    def __init__(self, feature_channels: int, hidden: int, num_blocks: int, pe_frequencies: int,
                 num_outputs: int, head_hidden: int):
        super().__init__()
        self.encoding = SinusoidalEncoding(pe_frequencies)
        self.fc_in = nn.Linear(self.encoding.dim, hidden)
        self.blocks = nn.ModuleList(ResidualCBNBlock(feature_channels, hidden) for _ in range(num_blocks))
        self.norm_out = ConditionalBatchNorm(feature_channels, hidden)
        self.heads = ClassHeads(hidden, head_hidden, num_outputs)

    def forward(self, points: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        b, n, _ = points.shape
        c = lookup_features(grid, points).reshape(b * n, -1)
        h = self.fc_in(self.encoding(points.reshape(b * n, 3)).to(c.dtype))
        for block in self.blocks:
            h = block(h, c)
        h = F.relu(self.norm_out(h, c))
        return self.heads(h).reshape(b, n, -1)
