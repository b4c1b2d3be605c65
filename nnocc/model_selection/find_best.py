"""Pick the best trained configuration (or ensemble) on cross-validation and write how to use it.

Every candidate's cross-validation predictions are evaluated; pairs and larger groups whose
validation probabilities were saved (``nnocc_train ... --npz``) are ensembled and evaluated too.
The best by ``metric`` gets its postprocessing determined, and ``inference_instructions.txt`` /
``inference_information.json`` hold the exact commands to run on new data.
"""
from __future__ import annotations

import itertools
import logging
import math
from pathlib import Path
from typing import Any, Dict, List, Sequence

from nnocc.ensembling.ensemble import ensemble_folders
from nnocc.evaluation.evaluate_folder import evaluate_folder, evaluation_settings
from nnocc.fingerprint.fingerprint import DatasetFingerprint
from nnocc.io.dataset_json import load_dataset_json
from nnocc.model_selection.crossval import (
    TrainedModel,
    crossval_folder,
    evaluate_crossval,
    existing_models,
    has_probabilities,
)
from nnocc.paths import DatasetPaths
from nnocc.postprocessing.determine import determine_postprocessing
from nnocc.utils.atomic import atomic_write_text
from nnocc.utils.errors import NnoccError
from nnocc.utils.json_io import save_json

logger = logging.getLogger(__name__)
LOWER_IS_BETTER = ("hd95", "assd")


def smallest_structure_mm(paths: DatasetPaths) -> float:
    if not paths.fingerprint_file.is_file():
        return float("inf")
    sizes = [s.component_diameter_p05_mm for s in DatasetFingerprint.load(paths.fingerprint_file).labels()
             if s.cases_present > 0]
    return min(sizes) if sizes else float("inf")


def _score(summary: Dict, metric: str) -> float:
    value = summary["foreground_mean"].get(metric)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        raise NnoccError(f"metric {metric!r} is not in the evaluation (choose dice, iou, surface_dice, hd95, assd)")
    return float(value)


def _ensemble_candidates(paths: DatasetPaths, models: List[TrainedModel], folds: Sequence[str], ending: str,
                         num_processes: int, description) -> Dict[str, Dict]:
    with_probabilities = [m for m in models if has_probabilities(crossval_folder(m.folder(paths), folds), ending)]
    results = {}
    for size in range(2, len(with_probabilities) + 1):
        for members in itertools.combinations(with_probabilities, size):
            name = "ensemble__" + "__and__".join(m.label for m in members)
            folder = paths.results / "ensembles" / name / f"crossval_results_folds_{'_'.join(folds)}"
            ensemble_folders([crossval_folder(m.folder(paths), folds) for m in members], folder, num_processes)
            summary = evaluate_folder(paths.preprocessed / "gt_segmentations", folder, evaluation_settings(description),
                                      ending, num_processes=num_processes, allow_missing=True)
            results[name] = {"members": list(members), "folder": folder, "summary": summary}
    return results


def find_best_configuration(paths: DatasetPaths, candidates: List[TrainedModel], folds: Sequence[str],
                            metric: str = "dice", allow_ensembling: bool = True, num_processes: int = 1) -> Dict:
    description = load_dataset_json(paths.dataset_json)
    models = existing_models(paths, candidates, folds)
    if not models:
        raise NnoccError(f"none of {', '.join(c.label for c in candidates)} has validation results for folds "
                         f"{', '.join(folds)} in {paths.results}")
    results: Dict[str, Dict[str, Any]] = {}
    for model in models:
        summary = evaluate_crossval(paths, model, folds, description, num_processes)
        results[model.label] = {"members": [model], "folder": crossval_folder(model.folder(paths), folds),
                                "summary": summary}
    if allow_ensembling:
        results.update(_ensemble_candidates(paths, models, folds, description.file_ending, num_processes, description))
    sign = -1 if metric in LOWER_IS_BETTER else 1
    best = max(results, key=lambda name: sign * _score(results[name]["summary"], metric))
    chosen = results[best]
    plan = determine_postprocessing(paths.preprocessed / "gt_segmentations", chosen["folder"], description,
                                    smallest_structure_mm(paths), chosen["folder"], num_processes)
    information = _information(paths, results, best, folds, metric, chosen["folder"] / "postprocessing.json", plan)
    save_json(information, paths.results / "inference_information.json")
    atomic_write_text(paths.results / "inference_instructions.txt", _instructions_text(information))
    return information


def _commands(paths: DatasetPaths, members: List[TrainedModel], folds: Sequence[str], pp_file: Path) -> List[str]:
    fold_text = " ".join(folds)
    if len(members) == 1:
        m = members[0]
        return [f"nnocc_predict -d {paths.name} -i INPUT_FOLDER -o OUTPUT_FOLDER -c {m.configuration} "
                f"-p {m.plans_name} -tr {m.trainer} -f {fold_text}",
                f"nnocc_apply_postprocessing -i OUTPUT_FOLDER -o OUTPUT_FOLDER_PP -pp {pp_file}"]
    commands = [f"nnocc_predict -d {paths.name} -i INPUT_FOLDER -o OUTPUT_FOLDER_MODEL_{k + 1} -c {m.configuration} "
                f"-p {m.plans_name} -tr {m.trainer} -f {fold_text} --save_probabilities" for k, m in enumerate(members)]
    outputs = " ".join(f"OUTPUT_FOLDER_MODEL_{k + 1}" for k in range(len(members)))
    commands.append(f"nnocc_ensemble -i {outputs} -o OUTPUT_FOLDER")
    commands.append(f"nnocc_apply_postprocessing -i OUTPUT_FOLDER -o OUTPUT_FOLDER_PP -pp {pp_file}")
    return commands


def _information(paths, results, best, folds, metric, pp_file, plan) -> Dict:
    return {
        "dataset": paths.name, "folds": list(folds), "metric": metric,
        "results": {name: {"foreground_mean": r["summary"]["foreground_mean"],
                           "mean": {k: v.get(metric) for k, v in r["summary"]["mean"].items()}}
                    for name, r in results.items()},
        "best": best, "best_members": [m.label for m in results[best]["members"]],
        "postprocessing_file": str(pp_file), "postprocessing_steps": [s.describe() for s in plan.steps],
        "cross_validation_dice_before_postprocessing": plan.baseline_dice,
        "cross_validation_dice_after_postprocessing": plan.final_dice,
        "commands": _commands(paths, results[best]["members"], folds, pp_file)}


def _instructions_text(information: Dict) -> str:
    lines = [f"Best on {information['dataset']} ({information['metric']}, folds {' '.join(information['folds'])}): "
             f"{information['best']}", "", "Cross-validation results (mean over structures):"]
    for name, r in information["results"].items():
        lines.append(f"  {name}: {information['metric']} {r['foreground_mean'][information['metric']]:.4f}")
    lines += ["", f"Postprocessing: {'; '.join(information['postprocessing_steps']) or 'none'} "
                  f"(mean Dice {information['cross_validation_dice_before_postprocessing']:.4f} -> "
                  f"{information['cross_validation_dice_after_postprocessing']:.4f})", "",
              "Run on new data (replace INPUT_FOLDER and OUTPUT_FOLDER*):"]
    lines += [f"  {c}" for c in information["commands"]]
    return "\n".join(lines) + "\n"
