"""Per-structure metrics of one case, in physical units.

Empty structures are stated, not guessed:
* reference and prediction both empty: Dice, IoU and Surface Dice are NaN and left out of means
  (nnU-Net's convention), or 1 with ``empty_is_one`` (the KiTS23 convention); distances are NaN,
  or 0 with ``empty_is_one``;
* exactly one empty: Dice, IoU and Surface Dice are 0; HD95 and ASSD are the image's diagonal in
  millimetres, the largest distance possible, so that means stay finite and such a miss counts
  as the worst case.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Sequence

import numpy as np

from nnocc.evaluation.surface import average_symmetric_surface_distance, hausdorff, surface_dice, surface_distances


def surface_dice_key(tolerance_mm: float) -> str:
    """``surface_dice@1`` for round tolerances; the exact value otherwise, so that tolerances that
    agree to six digits (KiTS23's 1.1328796488598762 and 1.13288) keep apart."""
    short = f"{tolerance_mm:g}"
    return f"surface_dice@{short if float(short) == tolerance_mm else repr(float(tolerance_mm))}"


@dataclass
class MetricSettings:
    tolerances_mm: Sequence[float] = (1.0,)
    empty_is_one: bool = False
    surface_metrics: bool = True


def dice_iou(tp: int, fp: int, fn: int):
    if tp + fp + fn == 0:
        return float("nan"), float("nan")
    return 2 * tp / (2 * tp + fp + fn), tp / (tp + fp + fn)


def structure_metrics(reference: np.ndarray, prediction: np.ndarray, spacing: Sequence[float],
                      settings: MetricSettings) -> Dict[str, float]:
    reference, prediction = reference.astype(bool), prediction.astype(bool)
    tp = int(np.count_nonzero(reference & prediction))
    fp = int(np.count_nonzero(prediction & ~reference))
    fn = int(np.count_nonzero(reference & ~prediction))
    voxel = float(np.prod(spacing))
    dice, iou = dice_iou(tp, fp, fn)
    out = {"dice": dice, "iou": iou, "tp": tp, "fp": fp, "fn": fn,
           "n_ref": tp + fn, "n_pred": tp + fp,
           "volume_ref_mm3": (tp + fn) * voxel, "volume_pred_mm3": (tp + fp) * voxel}
    if settings.surface_metrics:
        out.update(_surface_metrics(reference, prediction, spacing, settings))
    both_empty = tp + fp + fn == 0
    if both_empty and settings.empty_is_one:
        out.update({k: 1.0 for k in out if k in ("dice", "iou") or k.startswith("surface_dice")})
        out.update({k: 0.0 for k in ("hd95", "assd") if k in out})
    return out


def _surface_metrics(reference: np.ndarray, prediction: np.ndarray, spacing: Sequence[float],
                     settings: MetricSettings) -> Dict[str, float]:
    out = {}
    ref_any, pred_any = reference.any(), prediction.any()
    if not ref_any and not pred_any:
        out.update({surface_dice_key(t): float("nan") for t in settings.tolerances_mm})
        out.update(hd95=float("nan"), assd=float("nan"))
    elif not ref_any or not pred_any:
        diagonal = float(np.linalg.norm(np.asarray(reference.shape) * np.asarray(spacing)))
        out.update({surface_dice_key(t): 0.0 for t in settings.tolerances_mm})
        out.update(hd95=diagonal, assd=diagonal)
    else:
        d = surface_distances(reference, prediction, spacing)
        out.update({surface_dice_key(t): surface_dice(d, t) for t in settings.tolerances_mm})
        out.update(hd95=hausdorff(d, 95.0), assd=average_symmetric_surface_distance(d))
    return out
