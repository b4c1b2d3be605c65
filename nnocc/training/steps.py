"""One optimisation step, one validation step, the learning-rate schedule, pseudo Dice."""
from __future__ import annotations

import math
from contextlib import nullcontext
from typing import Callable, Dict, Tuple

import numpy as np
import torch

from nnocc.architectures.base import Placement
from nnocc.architectures.outputs import probabilities
from nnocc.planning.plans import TrainingPlan
from nnocc.training.losses import OccupancyLoss


def poly_learning_rate(initial: float, progress: float, exponent: float = 0.9) -> float:
    """nnU-Net's schedule; ``progress`` in [0, 1] (epochs done, or share of the time budget)."""
    return initial * (1 - min(max(progress, 0.0), 1.0)) ** exponent


def cosine_learning_rate(initial: float, progress: float) -> float:
    """Cosine decay to zero (SwIPE's schedule), over the same ``progress`` as the poly schedule."""
    return initial * 0.5 * (1 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))


LR_SCHEDULES: Dict[str, Callable[[TrainingPlan, float], float]] = {
    "poly": lambda plan, progress: poly_learning_rate(plan.initial_lr, progress, plan.poly_exponent),
    "cosine": lambda plan, progress: cosine_learning_rate(plan.initial_lr, progress),
}


def learning_rate(plan: TrainingPlan, progress: float) -> float:
    """The plan's schedule (checked when the run is prepared: training.run.check_training_plan)."""
    return LR_SCHEDULES[plan.lr_schedule](plan, progress)


def to_device(batch: Dict[str, np.ndarray], device: torch.device) -> Dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.ascontiguousarray(v)).to(device, non_blocking=True) for k, v in batch.items()}


def autocast(device: torch.device, enabled: bool):
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return nullcontext()


def forward_batch(model, batch: Dict[str, torch.Tensor], loss_fn: OccupancyLoss
                  ) -> Tuple[torch.Tensor, torch.Tensor, Dict[str, float]]:
    """The architecture's forward pass on a loader batch and the loss: (logits, loss, loss parts)."""
    output = model(batch["data"], batch["points"], Placement.from_rows(batch["placement"]))
    loss, parts = loss_fn(output.logits, batch["point_targets"], output.aux, batch.get("grid_targets"), output.terms)
    return output.logits, loss, parts


def train_step(model, batch: Dict[str, torch.Tensor], loss_fn: OccupancyLoss, optimizer, scaler,
               amp: bool, grad_clip: float) -> Tuple[float, Dict[str, float]]:
    optimizer.zero_grad(set_to_none=True)
    device = batch["data"].device
    with autocast(device, amp):
        _, loss, parts = forward_batch(model, batch, loss_fn)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
    return float(loss.detach()), parts


def confusion_counts(logits: torch.Tensor, targets: torch.Tensor, regions: bool, threshold: float) -> torch.Tensor:
    """(3, K') true positives, false positives, false negatives per foreground output, over points."""
    k = logits.shape[-1]
    if regions:
        predicted = probabilities(logits.float(), True) > threshold
        truth = targets > 0.5
    else:
        predicted = torch.nn.functional.one_hot(logits.argmax(-1), k).bool()[..., 1:]
        hard = targets.argmax(-1) if targets.is_floating_point() else targets
        truth = torch.nn.functional.one_hot(hard, k).bool()[..., 1:]
    predicted, truth = predicted.reshape(-1, predicted.shape[-1]), truth.reshape(-1, truth.shape[-1])
    return torch.stack([(predicted & truth).sum(0), (predicted & ~truth).sum(0), (~predicted & truth).sum(0)]).double()


@torch.no_grad()
def validation_step(model, batch: Dict[str, torch.Tensor], loss_fn: OccupancyLoss, amp: bool, regions: bool,
                    threshold: float) -> Tuple[float, torch.Tensor]:
    with autocast(batch["data"].device, amp):
        logits, loss, _ = forward_batch(model, batch, loss_fn)
    return float(loss), confusion_counts(logits, batch["point_targets"], regions, threshold)


def pseudo_dice(counts: torch.Tensor) -> np.ndarray:
    tp, fp, fn = counts
    dice = (2 * tp) / (2 * tp + fp + fn)
    return torch.nan_to_num(dice, nan=float("nan")).cpu().numpy()
