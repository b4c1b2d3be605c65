"""Choose connected-component postprocessing on cross-validation predictions.

Candidates, in order: for the foreground as a whole, then for each label (or region): keep only
the largest component; remove components under a size derived from the fingerprint's smallest
structure.  A candidate is kept only if it raises the mean Dice over structures and cases; later
candidates are judged on top of the steps kept so far.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from nnocc.evaluation.evaluate_folder import EvaluationSettings, evaluate_folder, evaluation_settings
from nnocc.evaluation.metrics import dice_iou
from nnocc.io.dataset_json import DatasetDescription
from nnocc.io.images import read_image
from nnocc.postprocessing.apply import apply_to_folder
from nnocc.postprocessing.components import PostprocessingPlan, PostprocessingStep, apply_plan
from nnocc.utils.errors import NnoccError
from nnocc.utils.parallel import map_cases

logger = logging.getLogger(__name__)


def minimum_size_mm3(smallest_structure_mm: float) -> float:
    """Half the volume of a sphere with the smallest structure's diameter: anything smaller is
    unlike every structure seen in training."""
    if not math.isfinite(smallest_structure_mm):
        return 0.0
    return 0.5 * math.pi / 6.0 * smallest_structure_mm ** 3


def candidate_targets(description: DatasetDescription) -> List[Tuple[str, List[int]]]:
    targets = [("foreground", description.foreground_labels)]
    if description.has_regions:
        targets += [(f"region:{name}", list(values)) for name, values in description.regions]
    else:
        targets += [(f"label:{v}", [v]) for v in description.foreground_labels]
    return targets


def _case_dice(job) -> List[float]:
    """Dice per evaluation class of one case after applying ``plan``."""
    reference_file, prediction_file, plan, classes = job
    reference, geometry = read_image(reference_file)
    prediction = apply_plan(read_image(prediction_file)[0], plan, geometry.spacing)
    scores = []
    for values in classes:
        r, p = np.isin(reference, values), np.isin(prediction, values)
        scores.append(dice_iou(int((r & p).sum()), int((p & ~r).sum()), int((r & ~p).sum()))[0])
    return scores


def mean_dice(pairs: Sequence[Tuple[Path, Path]], plan: PostprocessingPlan, settings: EvaluationSettings,
              num_processes: int) -> float:
    classes = [list(c.label_values) for c in settings.classes]
    jobs = [(ref, pred, plan, classes) for ref, pred in pairs]
    results, failures = map_cases(_case_dice, jobs, num_processes, names=[p.name for _, p in pairs],
                                  disable_progress=True)
    if failures:
        raise NnoccError(str(failures[0][1]))
    per_class = np.nanmean(np.array(results, dtype=np.float64), axis=0)
    return float(np.nanmean(per_class))


def determine_postprocessing(reference_folder: Path, prediction_folder: Path, description: DatasetDescription,
                             smallest_structure_mm: float, output_folder: Optional[Path] = None,
                             num_processes: int = 1) -> PostprocessingPlan:
    settings = evaluation_settings(description, surface_metrics=False)
    ending = description.file_ending
    pairs = [(Path(reference_folder) / p.name, p) for p in sorted(Path(prediction_folder).glob(f"*{ending}"))
             if (Path(reference_folder) / p.name).is_file()]
    if not pairs:
        raise NnoccError(f"{prediction_folder}: no predictions with a reference in {reference_folder}")
    plan = PostprocessingPlan()
    plan.baseline_dice = best = mean_dice(pairs, plan, settings, num_processes)
    min_size = minimum_size_mm3(smallest_structure_mm)
    for target, values in candidate_targets(description):
        for operation in ("keep_largest", "remove_small"):
            if operation == "remove_small" and min_size <= 0:
                continue
            step = PostprocessingStep(target, values, operation, min_size if operation == "remove_small" else 0.0)
            trial = PostprocessingPlan(plan.steps + [step], plan.connectivity)
            score = mean_dice(pairs, trial, settings, num_processes)
            kept = score > best + 1e-9
            plan.evidence.append({"step": step.describe(), "mean_dice_before": best, "mean_dice_with_step": score,
                                  "kept": kept})
            logger.info("%s: mean Dice %.5f -> %.5f (%s)", step.describe(), best, score, "kept" if kept else "rejected")
            if kept:
                step.dice_before, step.dice_after = best, score
                plan.steps.append(step)
                best = score
                break  # keep-largest already removes everything remove-small would
    plan.final_dice = best
    if output_folder is not None:
        postprocessed = Path(output_folder) / "postprocessed"
        apply_to_folder(Path(prediction_folder), postprocessed, plan, ending, num_processes)
        evaluate_folder(Path(reference_folder), postprocessed, evaluation_settings(description), ending,
                        num_processes=num_processes, allow_missing=True)
        plan.save(Path(output_folder) / "postprocessing.json")
    return plan
