"""From logits to probabilities: one sigmoid per region, else a softmax over the classes.  Training
(losses, pseudo Dice) and inference (the field, MISE) share it."""
from __future__ import annotations

import torch


def probabilities(logits: torch.Tensor, regions: bool) -> torch.Tensor:
    """Logits (..., K) -> per-output probabilities."""
    return torch.sigmoid(logits) if regions else torch.softmax(logits, dim=-1)
