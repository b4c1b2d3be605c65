"""Connected-component postprocessing steps and how to apply them to a label map.

A step acts on one *target* (all foreground together, one label, or one region) and either keeps
only the largest component or removes components smaller than a volume in mm^3.  Removed voxels
become background, as in nnU-Net.  Components are 26-connected by default (cc3d).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import cc3d
import numpy as np

from nnocc.utils.serialization import JsonDataclass

OPERATIONS = ("keep_largest", "remove_small")


@dataclass
class PostprocessingStep:
    target: str                        # 'foreground', 'label:<value>' or 'region:<name>'
    label_values: List[int]            # the label values that make up the target
    operation: str                     # one of OPERATIONS
    min_size_mm3: float = 0.0          # for remove_small
    dice_before: Optional[float] = None
    dice_after: Optional[float] = None

    def describe(self) -> str:
        what = "keep the largest component" if self.operation == "keep_largest" else \
            f"remove components under {self.min_size_mm3:.1f} mm^3"
        return f"{self.target}: {what}"


@dataclass
class PostprocessingPlan(JsonDataclass):
    steps: List[PostprocessingStep] = field(default_factory=list)
    connectivity: int = 26
    baseline_dice: Optional[float] = None
    final_dice: Optional[float] = None
    evidence: List[dict] = field(default_factory=list)   # every candidate tried, kept or not


def apply_step(labels: np.ndarray, step: PostprocessingStep, spacing: Sequence[float], connectivity: int = 26
               ) -> np.ndarray:
    if step.operation not in OPERATIONS:
        raise ValueError(f"unknown postprocessing operation {step.operation!r}; expected one of {OPERATIONS}")
    mask = np.isin(labels, step.label_values)
    if not mask.any():
        return labels
    components, n = cc3d.connected_components(mask.astype(np.uint8), connectivity=connectivity,  # type: ignore[call-overload]
                                              return_N=True)
    sizes = np.bincount(components.ravel(), minlength=n + 1)
    sizes[0] = 0
    if step.operation == "keep_largest":
        keep = np.zeros(n + 1, dtype=bool)
        keep[int(np.argmax(sizes))] = True
    else:
        keep = sizes * float(np.prod(spacing)) >= step.min_size_mm3
    keep[0] = True
    out = labels.copy()
    out[mask & ~keep[components]] = 0
    return out


def apply_plan(labels: np.ndarray, plan: PostprocessingPlan, spacing: Sequence[float]) -> np.ndarray:
    for step in plan.steps:
        labels = apply_step(labels, step, spacing, plan.connectivity)
    return labels
