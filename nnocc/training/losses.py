"""Losses on query points (seed 000 / seed 002): cross-entropy or per-region BCE, a soft Dice
term over the points of the batch, OSS-Net's auxiliary low-resolution voxel loss (seed 001), and an
architecture's own weighted terms (SwIPE's image decoder, patch overreach, embedding penalty)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

import torch
from torch.nn import functional as F

from nnocc.architectures.outputs import probabilities


@dataclass
class LossWeights:
    ce: float = 1.0
    dice: float = 1.0
    aux: float = 0.1
    # the decoder's logits ('decoder', 1 unless named) and the architecture's further terms (training_terms)
    terms: Dict[str, float] = field(default_factory=dict)


def _one_hot(targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    if targets.is_floating_point():
        return targets
    return F.one_hot(targets, num_classes).to(torch.float32)


def soft_dice_loss(probs: torch.Tensor, targets: torch.Tensor, regions: bool, smooth: float = 1e-5) -> torch.Tensor:
    """1 - mean soft Dice over the foreground outputs, pooled over every point of the batch."""
    truth = targets if regions else _one_hot(targets, probs.shape[-1])
    probs, truth = probs.reshape(-1, probs.shape[-1]), truth.reshape(-1, probs.shape[-1])
    if not regions:  # background is not a structure
        probs, truth = probs[:, 1:], truth[:, 1:]
    intersection = (probs * truth).sum(0)
    dice = (2 * intersection + smooth) / (probs.sum(0) + truth.sum(0) + smooth)
    return 1 - dice.mean()


def classification_loss(logits: torch.Tensor, targets: torch.Tensor, regions: bool) -> torch.Tensor:
    """logits (..., K); targets: class indices (...) or probabilities / region masks (..., K)."""
    flat = logits.reshape(-1, logits.shape[-1]).float()
    if regions:
        return F.binary_cross_entropy_with_logits(flat, targets.reshape(flat.shape).float())
    if targets.is_floating_point():
        return F.cross_entropy(flat, targets.reshape(flat.shape))
    return F.cross_entropy(flat, targets.reshape(-1))


class OccupancyLoss:
    def __init__(self, regions: bool, weights: LossWeights):
        self.regions = regions
        self.weights = weights

    def point_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(cross-entropy, soft Dice) of logits (B, N, K) at the points' targets."""
        ce = classification_loss(logits, targets, self.regions)
        return ce, soft_dice_loss(probabilities(logits.float(), self.regions), targets, self.regions)

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor, aux_logits: Optional[torch.Tensor] = None,
                 grid_targets: Optional[torch.Tensor] = None, terms: Optional[Dict[str, torch.Tensor]] = None
                 ) -> Tuple[torch.Tensor, Dict[str, float]]:
        ce, dice = self.point_loss(logits, targets)
        total = self.weights.terms.get("decoder", 1.0) * (self.weights.ce * ce + self.weights.dice * dice)
        parts = {"ce": float(ce.detach()), "dice": float(dice.detach())}
        for name, value in (terms or {}).items():
            term = value if value.dim() == 0 else self.repeated_point_loss(value, targets)
            total = total + self.term_weight(name) * term
            parts[name] = float(term.detach())
        if aux_logits is not None and grid_targets is not None and self.weights.aux > 0:
            channels_last = aux_logits.movedim(1, -1)
            grid = grid_targets.movedim(1, -1) if self.regions else grid_targets
            aux = classification_loss(channels_last, grid, self.regions)
            total = total + self.weights.aux * aux
            parts["aux"] = float(aux.detach())
        return total, parts

    def repeated_point_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The weighted CE + Dice of logits (B, r * N, K): r copies of the N points, copy after copy."""
        copies = logits.shape[1] // targets.shape[1]
        ce, dice = self.point_loss(logits, torch.cat([targets] * copies, dim=1))
        return self.weights.ce * ce + self.weights.dice * dice

    def term_weight(self, name: str) -> float:
        if name not in self.weights.terms:
            raise KeyError(f"the plan's training.loss_weights has no weight for the architecture's loss term "
                           f"{name!r} (it has {sorted(self.weights.terms)})")
        return self.weights.terms[name]
