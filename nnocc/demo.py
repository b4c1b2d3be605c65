"""The whole pipeline on a generated KiTS-like CT dataset, as a first run for a new user.

generate -> fingerprint, plans, preprocessing -> train fold 0 for a time budget -> postprocessing
chosen on fold 0's validation -> MISE prediction of the held-back cases -> postprocessing ->
evaluation -> overlay PNGs.  Every stage reuses what an earlier run left.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Dict

import torch

from nnocc.dataset_conversion.synthetic import generate_dataset
from nnocc.evaluation.evaluate_folder import evaluate_folder, evaluation_settings
from nnocc.fingerprint.run import run_fingerprint_extraction
from nnocc.inference.batch import predict_folder
from nnocc.inference.predictor import InferenceSettings, Predictor
from nnocc.io.dataset_json import load_dataset_json
from nnocc.model_selection.find_best import smallest_structure_mm
from nnocc.paths import DataFolders, DatasetPaths
from nnocc.planning.run import run_planning
from nnocc.postprocessing.apply import apply_to_folder
from nnocc.postprocessing.determine import determine_postprocessing
from nnocc.preprocessing.run import run_preprocessing_for_plans
from nnocc.training.checkpoint import latest_resumable
from nnocc.training.loop import FoldTrainer
from nnocc.training.run import TrainingSettings, prepare_run
from nnocc.visualization.folders import overlay_folder

logger = logging.getLogger(__name__)


@dataclass
class DemoSettings:
    dataset_id: int = 900
    budget_minutes: float = 9.0
    device: str = "auto"
    num_training: int = 20
    num_test: int = 5
    tta: bool = True
    num_processes: int = 2
    shape: tuple = (40, 120, 120)

    def resolved_device(self) -> str:
        if self.device != "auto":
            return self.device
        return "cuda" if torch.cuda.is_available() else "cpu"


def prepare_data(folders: DataFolders, settings: DemoSettings) -> DatasetPaths:
    paths = DatasetPaths(folders, f"Dataset{settings.dataset_id:03d}_DemoCT")
    if not (paths.raw / "dataset.json").is_file():
        logger.info("generating %d + %d KiTS-like CT cases in %s", settings.num_training, settings.num_test, paths.raw)
        generate_dataset(folders.raw, settings.dataset_id, "DemoCT", settings.num_training, settings.num_test,
                         shape=settings.shape, seed=settings.dataset_id, num_processes=settings.num_processes)
    run_fingerprint_extraction(paths, settings.num_processes)
    memory = 8.0 if settings.resolved_device() == "cuda" else 1.0   # the CPU gets the small network
    if not paths.plans_file("nnoccPlans").is_file():
        run_planning(paths, gpu_memory_target_gb=memory)
    run_preprocessing_for_plans(paths, num_processes=settings.num_processes)
    return paths


def train(paths: DatasetPaths, settings: DemoSettings) -> Path:
    training = TrainingSettings(fold=0, device=settings.resolved_device(), num_epochs=100000, iterations_per_epoch=50,
                                validation_iterations=5, time_budget_minutes=settings.budget_minutes,
                                validation_tta=False, show_progress=True)
    run = prepare_run(paths, "3d_occ", training)
    training.continue_training = latest_resumable(run.output_folder) is not None   # an interrupted demo resumes
    if (run.output_folder / "checkpoint_final.pth").is_file():
        logger.info("fold 0 is already trained: %s", run.output_folder)
        if not (run.output_folder / "validation" / "summary.json").is_file():
            training.only_validation = True
            FoldTrainer(run).train()
        return run.output_folder
    return FoldTrainer(run).train()


def run_demo(folders: DataFolders, settings: DemoSettings) -> Dict:
    paths = prepare_data(folders, settings)
    fold_folder = train(paths, settings)
    description = load_dataset_json(paths.dataset_json)
    out = paths.results / "demo"
    plan = determine_postprocessing(paths.preprocessed / "gt_segmentations", fold_folder / "validation", description,
                                    smallest_structure_mm(paths), out / "fold0_validation")
    predictor = Predictor.from_model_folder(fold_folder.parent, ["0"], settings=InferenceSettings(
        tta=settings.tta, device=settings.resolved_device()))
    report = predict_folder(predictor, paths.raw / "imagesTs", out / "predictions", continue_prediction=True,
                            num_preprocessing=1, num_export=1)
    apply_to_folder(out / "predictions", out / "predictions_postprocessed", plan, description.file_ending,
                    settings.num_processes)
    summary = evaluate_folder(paths.raw / "labelsTs", out / "predictions_postprocessed",
                              evaluation_settings(description, tolerances_mm=(1.0, 3.0)), description.file_ending,
                              num_processes=settings.num_processes)
    overlays = overlay_folder(paths.raw / "imagesTs", out / "predictions_postprocessed", out / "overlays",
                              paths.raw / "labelsTs", description.label_value_names, settings.num_processes)
    return {"summary": summary, "postprocessing": [s.describe() for s in plan.steps], "fold_folder": fold_folder,
            "outputs": out, "overlays": overlays, "inference": report.stats, "failures": report.failures,
            "paths": paths}


def format_table(result: Dict) -> str:
    summary = result["summary"]
    lines = ["", f"{'structure':12s} {'Dice':>7s} {'SD@1mm':>7s} {'SD@3mm':>7s} {'HD95 mm':>8s}"]
    rows = list(summary["mean"].items()) + [("mean", summary["foreground_mean"])]
    for name, m in rows:
        lines.append(f"{name:12s} {m['dice']:7.3f} {m['surface_dice@1']:7.3f} {m['surface_dice@3']:7.3f} {m['hd95']:8.1f}")
    queries = [s["query_fraction"] for s in result["inference"].values()]
    if queries:
        lines.append(f"\nMISE queried {100 * sum(queries) / len(queries):.1f} % of the output voxels on average; "
                     f"postprocessing: {'; '.join(result['postprocessing']) or 'none'}")
    folder = result["fold_folder"]
    lines += ["", f"model:        {folder}", f"progress:     {folder / 'progress.png'}",
              f"predictions:  {result['outputs'] / 'predictions_postprocessed'}",
              f"evaluation:   {result['outputs'] / 'predictions_postprocessed' / 'summary.json'}",
              f"overlays:     {result['outputs'] / 'overlays'}"] + [f"              {p}" for p in result["overlays"][:3]]
    return "\n".join(lines)
