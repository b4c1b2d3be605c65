"""Evaluate a folder of predictions against references: ``summary.json`` a person can read.

Per case and per structure (the regions when dataset.json declares regions, else each label):
Dice, IoU, Surface Dice at the tolerance(s), HD95, ASSD, volumes and voxel counts.  Means per
structure and over structures (``foreground_mean``).  ``kits23`` uses the challenge's definitions
(regions, tolerances, empty cases as 1) and adds its two headline figures.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from nnocc.evaluation.metrics import MetricSettings, structure_metrics, surface_dice_key
from nnocc.io.dataset_json import DatasetDescription
from nnocc.io.images import read_image
from nnocc.utils.errors import NnoccError
from nnocc.utils.json_io import save_json
from nnocc.utils.parallel import map_cases

logger = logging.getLogger(__name__)

# The KiTS23 hierarchical evaluation classes and their Surface Dice tolerances, exactly as the
# challenge's own evaluation defines them (neheller/kits23, kits23/configuration/labels.py): at
# spacings near these values a rounded tolerance moves a region's Surface Dice by up to 0.23.
KITS23_CLASSES: List[Tuple[str, Tuple[int, ...], float]] = [
    ("kidney_and_masses", (1, 2, 3), 1.0330772532390826),
    ("masses", (2, 3), 1.1328796488598762),
    ("tumor", (2,), 1.1498198361434828)]
KITS23_LABEL_VALUES = (0, 1, 2, 3)


@dataclass
class EvaluationClass:
    name: str
    label_values: Tuple[int, ...]
    tolerances_mm: List[float]


@dataclass
class EvaluationSettings:
    classes: List[EvaluationClass]
    empty_is_one: bool = False
    surface_metrics: bool = True
    kits23: bool = False
    label_values: Tuple[int, ...] = ()     # the values a label map may hold; any other is an error
    extra: Dict[str, Any] = field(default_factory=dict)


def evaluation_settings(description: DatasetDescription, tolerances_mm: Sequence[float] = (1.0,),
                        empty_is_one: bool = False, kits23: bool = False, surface_metrics: bool = True
                        ) -> EvaluationSettings:
    if kits23:
        classes = [EvaluationClass(n, v, [t]) for n, v, t in KITS23_CLASSES]
        return EvaluationSettings(classes, empty_is_one=True, surface_metrics=True, kits23=True,
                                  label_values=KITS23_LABEL_VALUES)
    classes = [EvaluationClass(n, tuple(v), list(tolerances_mm)) for n, v in description.evaluation_classes()]
    return EvaluationSettings(classes, empty_is_one, surface_metrics, label_values=tuple(description.label_values))


def check_label_values(labels: np.ndarray, path: Path, declared: Sequence[int]) -> None:
    """A value the dataset does not declare would silently count as background: refuse it."""
    if not declared:
        return
    undeclared = sorted(set(np.unique(labels).tolist()) - set(declared))
    if undeclared:
        raise NnoccError(f"{path}: value(s) {undeclared} not declared in dataset.json (declared: {list(declared)})")


def evaluate_case(job) -> Dict[str, Any]:
    reference_file, prediction_file, settings = job
    reference, ref_geometry = read_image(reference_file)
    prediction, pred_geometry = read_image(prediction_file)
    diff = ref_geometry.differences(pred_geometry)
    if diff:
        raise NnoccError(f"{prediction_file}: geometry differs from the reference {reference_file.name} "
                         f"({'; '.join(diff)})")
    check_label_values(reference, reference_file, settings.label_values)
    check_label_values(prediction, prediction_file, settings.label_values)
    metrics = {}
    for cls in settings.classes:
        values = structure_metrics(np.isin(reference, cls.label_values), np.isin(prediction, cls.label_values),
                                   ref_geometry.spacing, MetricSettings(cls.tolerances_mm, settings.empty_is_one,
                                                                        settings.surface_metrics))
        if settings.surface_metrics:
            values["surface_dice"] = values[surface_dice_key(cls.tolerances_mm[0])]
        metrics[cls.name] = values
    return {"reference_file": str(reference_file), "prediction_file": str(prediction_file), "metrics": metrics}


def _mean(values: List[float]) -> float:
    finite = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return float(np.mean(finite)) if finite else float("nan")


def summarize(per_case: List[Dict[str, Any]], settings: EvaluationSettings,
              missing: Sequence[str] = ()) -> Dict[str, Any]:
    names = [c.name for c in settings.classes]
    keys = {n: list(per_case[0]["metrics"][n]) if per_case else [] for n in names}
    mean = {n: {k: _mean([c["metrics"][n][k] for c in per_case]) for k in keys[n]} for n in names}
    shared = [k for k in keys[names[0]] if all(k in keys[n] for n in names)] if names else []
    foreground = {k: _mean([mean[n][k] for n in names]) for k in shared}
    summary = {"classes": [{"name": c.name, "label_values": list(c.label_values), "tolerances_mm": c.tolerances_mm}
                           for c in settings.classes],
               "empty_is_one": settings.empty_is_one, "num_cases": len(per_case),
               "missing_predictions": list(missing),
               "foreground_mean": foreground, "mean": mean, "metric_per_case": per_case}
    if settings.kits23:
        summary["kits23"] = {"mean_dice": foreground.get("dice"), "mean_surface_dice": foreground.get("surface_dice"),
                             "note": "averages over cases, then over the three HEC regions (leaderboard figures)"}
    return summary


def match_files(reference_folder: Path, prediction_folder: Path, ending: str, allow_missing: bool
                ) -> Tuple[List[Tuple[Path, Path]], List[str]]:
    """(reference, prediction) pairs, and the references without a prediction (allowed with
    ``allow_missing``; the summary lists them, because its means then cover fewer cases)."""
    predictions = sorted(p for p in Path(prediction_folder).glob(f"*{ending}") if not p.name.startswith("."))
    if not predictions:
        raise NnoccError(f"{prediction_folder}: no predictions ending in {ending}")
    pairs, missing_ref = [], []
    for pred in predictions:
        ref = Path(reference_folder) / pred.name
        (pairs.append((ref, pred)) if ref.is_file() else missing_ref.append(pred.name))
    if missing_ref:
        raise NnoccError(f"{reference_folder}: no reference for {', '.join(missing_ref[:5])}"
                         f"{' ...' if len(missing_ref) > 5 else ''}")
    references = {p.name for p in Path(reference_folder).glob(f"*{ending}")}
    unpredicted = sorted(references - {p.name for p in predictions})
    if unpredicted and not allow_missing:
        raise NnoccError(f"{prediction_folder}: no prediction for {', '.join(unpredicted[:5])} "
                         f"(pass --chill to evaluate only the cases present)")
    return pairs, unpredicted


def evaluate_folder(reference_folder: Path, prediction_folder: Path, settings: EvaluationSettings, ending: str,
                    output_file: Optional[Path] = None, num_processes: int = 1, allow_missing: bool = False
                    ) -> Dict[str, Any]:
    output_file = output_file or Path(prediction_folder) / "summary.json"
    output_file.unlink(missing_ok=True)   # a failed run must not leave an older summary looking current
    pairs, missing = match_files(reference_folder, prediction_folder, ending, allow_missing)
    if missing:
        logger.warning("%d reference(s) without a prediction are left out of the means: %s", len(missing),
                       ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else ""))
    jobs = [(ref, pred, settings) for ref, pred in pairs]
    results, failures = map_cases(evaluate_case, jobs, num_processes, desc="evaluating",
                                  names=[p.name for _, p in pairs])
    if failures:
        raise NnoccError("\n".join(str(e) for _, e in failures))
    summary = summarize(results, settings, missing)
    save_json(summary, output_file)
    return summary
