"""The implicit shape model (seed 004's reconstruction network, Amiranashvili et al. 2022): an
auto-decoder, one latent code per shape, and an MLP from (code, position) to occupancy.

Eight linear layers of width 128 with ReLU; the position joins at layers 0 and 4, and the other
hidden layers are residual (the public definition: 116,481 weights, 116,609 with one shape's code).
Positions are physical millimetres relative to the crop's centre, divided by ``POSITION_SCALE_MM``
so that the first layers see values of order one (the public code feeds raw millimetres).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

LATENT_DIM = 128
POSITION_SCALE_MM = 50.0


class ShapeDecoder(nn.Module):
    def __init__(self, latent_dim: int = LATENT_DIM, width: int = 128, layers: int = 8,
                 position_layers: Sequence[int] = (0, 4)):
        super().__init__()
        if latent_dim != width:
            raise ValueError("the residual layers need the code's size to equal the width")
        self.latent_dim, self.position_layers = latent_dim, tuple(position_layers)
        inputs = [width + (3 if i in self.position_layers else 0) for i in range(layers - 1)]
        self.hidden = nn.ModuleList(nn.Linear(n, width) for n in inputs)
        self.out = nn.Linear(width, 1)

    def forward(self, latents: torch.Tensor, positions_mm: torch.Tensor) -> torch.Tensor:
        """latents (S, D), positions (S, M, 3) mm from each crop's centre -> logits (S, M)."""
        positions = positions_mm / POSITION_SCALE_MM
        h = latents[:, None].expand(-1, positions.shape[1], -1)
        for i, layer in enumerate(self.hidden):
            if i in self.position_layers:
                h = F.relu(layer(torch.cat([h, positions.to(h.dtype)], dim=-1)))
            else:
                h = h + F.relu(layer(h))
        return self.out(h)[..., 0]


def occupancy_loss(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Per shape, BCE plus (1 - soft Dice) over its points; ``weights`` (S, M) zero out padding."""
    bce = (F.binary_cross_entropy_with_logits(logits, targets, reduction="none") * weights).sum(1)
    bce = bce / weights.sum(1).clamp(min=1)
    probs = torch.sigmoid(logits) * weights
    dice = (2 * (probs * targets).sum(1) + 1) / (probs.sum(1) + (targets * weights).sum(1) + 1)
    return bce + 1 - dice
