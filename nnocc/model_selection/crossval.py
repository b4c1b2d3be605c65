"""Cross-validation results of a trained configuration: every fold's validation predictions in one folder."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence

from nnocc.evaluation.evaluate_folder import evaluate_folder, evaluation_settings
from nnocc.io.dataset_json import DatasetDescription
from nnocc.paths import DatasetPaths
from nnocc.utils.atomic import atomic_copy
from nnocc.utils.errors import NnoccError


@dataclass(frozen=True)
class TrainedModel:
    configuration: str
    plans_name: str
    trainer: str

    def folder(self, paths: DatasetPaths) -> Path:
        return paths.model_folder(self.configuration, self.plans_name, self.trainer)

    @property
    def label(self) -> str:
        return f"{self.trainer}__{self.plans_name}__{self.configuration}"


def crossval_folder(model_folder: Path, folds: Sequence[str]) -> Path:
    return model_folder / f"crossval_results_folds_{'_'.join(str(f) for f in folds)}"


def merge_validation(model_folder: Path, folds: Sequence[str], ending: str) -> Path:
    """Copy every fold's validation/ predictions (and probabilities) into one folder."""
    target = crossval_folder(model_folder, folds)
    target.mkdir(parents=True, exist_ok=True)
    for fold in folds:
        validation = model_folder / f"fold_{fold}" / "validation"
        if not validation.is_dir() or not list(validation.glob(f"*{ending}")):
            raise NnoccError(f"{validation}: no validation predictions; train fold {fold} to the end "
                             f"(or run nnocc_train ... {fold} --val)")
        for path in validation.iterdir():
            if path.name.endswith((ending, ".npz")) or (path.suffix == ".json" and path.stem != "summary"
                                                       and path.name != "inference_stats.json"):
                atomic_copy(path, target / path.name)
    return target


def evaluate_crossval(paths: DatasetPaths, model: TrainedModel, folds: Sequence[str], description: DatasetDescription,
                      num_processes: int = 1) -> Dict:
    folder = merge_validation(model.folder(paths), folds, description.file_ending)
    return evaluate_folder(paths.preprocessed / "gt_segmentations", folder, evaluation_settings(description),
                           description.file_ending, num_processes=num_processes, allow_missing=True)


def has_probabilities(folder: Path, ending: str) -> bool:
    labels = {p.name[:-len(ending)] for p in folder.glob(f"*{ending}")}
    return bool(labels) and all((folder / f"{name}.npz").is_file() for name in labels)


def existing_models(paths: DatasetPaths, candidates: List[TrainedModel], folds: Sequence[str]) -> List[TrainedModel]:
    return [m for m in candidates if all((m.folder(paths) / f"fold_{f}" / "validation").is_dir() for f in folds)]
