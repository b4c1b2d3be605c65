"""Seed 004 where it meets nnocc's pipeline, each use against its baseline on one generated CT:

    python -m benchmarks.shape_pipeline --iterations 300 [--memory-target 1] [--shape-minutes 6] [--sampler-minutes 4]
        [--structure kidney+tumor+cyst] [--cubes 8] [--edge 11] [--shape 64 192 192] [--num-train 20]
        [--num-test 5] [--work DIR] [--out FILE]

(a) Training patches: ``3d_occ`` trained twice for the same number of iterations (fold 0, so that the
    comparison does not depend on what else the machine runs), once as planned (random / label / donut)
    and once with the label sampler's share centred on the learned patch sampler's proposals
    (nnocc_propose_patch_centres); both predict the held-back cases.
(b) Shape-prior repair: the planned model's predictions repaired by the structure's shape model
    (nnocc_repair_shapes) at several margins, band and replace; the setting is chosen on fold 0's
    validation predictions and reported on the held-back cases with the others beside it.

The shape model and the sampler are trained on fold 0's training cases (seed 004's split of them).
Scores: per label (nnocc_evaluate_folder) and for the structure as one mask (Dice, ASD, HD95).
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np

from benchmarks.configurations import save_results, start_comparison
from benchmarks.run import evaluate
from benchmarks.tools import NnoccTool, Workspace

HERE = Path(__file__).resolve().parent
logger = logging.getLogger("benchmarks")
REPAIRS = [("band", 2.0), ("band", 4.0), ("replace", 4.0)]


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iterations", type=int, required=True, help="training iterations per model (multiple of 50)")
    p.add_argument("--shape-minutes", type=float, default=6.0)
    p.add_argument("--sampler-minutes", type=float, default=4.0)
    p.add_argument("--structure", default="kidney+tumor+cyst")
    p.add_argument("--cubes", type=int, default=8)
    p.add_argument("--edge", type=int, default=11)
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--memory-target", type=float, default=None)
    p.add_argument("--num-train", type=int, default=20)
    p.add_argument("--num-test", type=int, default=5)
    p.add_argument("--shape", type=int, nargs=3, default=[64, 192, 192])
    p.add_argument("--reuse-shape-models", action="store_true", help="the shape model and sampler left in --work")
    p.add_argument("--reuse-trained", action="store_true",
                   help="also the plans, models and predictions left in --work: (a) is only evaluated again")
    p.add_argument("--work", type=Path, default=None)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--dataset", default="generated_ct", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.budget_minutes = None
    return args


def train_for(tool: NnoccTool, iterations: int):
    shutil.rmtree(tool.model_folder(), ignore_errors=True)      # a run before may have trained another plan
    return tool.run(f"train_{tool.plans_name}", "train", tool.ws.dataset_id, tool.configuration, 0, "-p",
                    tool.plans_name, "--epochs", max(iterations // 50, 1), "--iterations_per_epoch", 50,
                    "--validation_iterations", 5, "--device", tool.ws.device, "--val_disable_tta", "--quiet")


def structure_scores(references: Path, predictions: Path, values: Sequence[int], ending: str = ".nii.gz") -> Dict:
    """The structure as one mask: mean Dice, ASD and HD95 over the cases (the files of ``references``)."""
    from nnocc.evaluation.metrics import MetricSettings, structure_metrics
    from nnocc.io.images import read_image

    rows: List[Dict] = []
    for path in sorted(references.glob(f"*{ending}")):
        reference, geometry = read_image(path)
        predicted, _ = read_image(predictions / path.name)
        m = structure_metrics(np.isin(reference, values), np.isin(predicted, values), geometry.spacing,
                              MetricSettings(tolerances_mm=[1.0]))
        rows.append({k: m[k] for k in ("dice", "assd", "hd95")})
    return {k: float(np.mean([r[k] for r in rows])) for k in ("dice", "assd", "hd95")} | {"cases": len(rows)}


def shape_models(tool: NnoccTool, args: argparse.Namespace) -> Dict:
    """The structure's shape model and learned sampler (or those a run before left, ``--reuse-shape-models``:
    they depend on the raw labels only), then the sampler's proposals on the planned preprocessed data."""
    structure = ["-s", args.structure]
    model = tool.results / tool.ws.dataset_name / "shape_models" / args.structure / "fold_0"
    trained = (model / "samplers" / f"N{args.cubes}_K{args.edge}" / "sampler.pth").is_file()
    if (args.reuse_shape_models or args.reuse_trained) and trained:
        propose = tool.run("propose_patch_centres", "propose_patch_centres", "-d", tool.ws.dataset_id, "3d_occ",
                           *structure, "-n", args.cubes, "-k", args.edge, "--quiet")
        return {"reused": {"shape_model": json.loads((model / "shape_model.json").read_text())["history"],
                           "sampler": json.loads((model / "samplers" / f"N{args.cubes}_K{args.edge}" / "sampler.json")
                                                 .read_text())},
                "propose": propose.to_dict()}
    shape = tool.run("train_shape_model", "train_shape_model", "-d", tool.ws.dataset_id, *structure, "--steps",
                     10 ** 7, "--minutes", args.shape_minutes, "--quiet")
    sampler = tool.run("train_patch_sampler", "train_patch_sampler", "-d", tool.ws.dataset_id, *structure, "-n",
                       args.cubes, "-k", args.edge, "-t", 10, "--epochs", 10 ** 6, "--minutes", args.sampler_minutes,
                       "--check_points", 2048, "--fit_points", 2048, "--quiet")
    propose = tool.run("propose_patch_centres", "propose_patch_centres", "-d", tool.ws.dataset_id, "3d_occ",
                       *structure, "-n", args.cubes, "-k", args.edge, "--quiet")
    return {"shape_model": shape.to_dict(), "sampler": sampler.to_dict(), "propose": propose.to_dict()}


def patch_sampling(ws: Workspace, tools: Dict[str, NnoccTool], args: argparse.Namespace, values) -> Dict:
    out: Dict = {}
    for label, tool in tools.items():
        predictions = ws.root / f"predictions_{label}"
        if args.reuse_trained and (predictions / "plans.json").is_file():
            figures: Dict = {"train": {"reused": True} | tool.training_figures()}
        else:
            logger.info("(a) %s: %d iterations", label, args.iterations)
            figures = {"train": train_for(tool, args.iterations).to_dict() | tool.training_figures()}
            shutil.rmtree(predictions, ignore_errors=True)
            figures["predict"] = tool.predict(predictions, f"predict_{label}", "--disable_tta").to_dict()
        figures["evaluation"] = evaluate(ws, predictions, label)
        figures["structure"] = structure_scores(ws.test_labels, predictions, values)
        out[label] = figures
    return out


def repair(tool: NnoccTool, ws: Workspace, structure: str, inputs: Path, output: Path, mode: str, margin: float):
    shutil.rmtree(output, ignore_errors=True)
    return tool.run(f"repair_{output.name}", "repair_shapes", "-d", ws.dataset_id, "-s", structure, "-i", inputs,
                    "-o", output, "--mode", mode, "--margin_mm", margin)


def shape_repair(ws: Workspace, tool: NnoccTool, args: argparse.Namespace, values) -> Dict:
    """Each repair on the validation predictions (to choose) and on the held-back cases (to report)."""
    validation = tool.model_folder() / "fold_0" / "validation"
    references = tool.results.parent / "preprocessed" / ws.dataset_name / "gt_segmentations"
    validation_refs = ws.root / "validation_references"
    shutil.rmtree(validation_refs, ignore_errors=True)
    validation_refs.mkdir()
    for path in validation.glob("*.nii.gz"):
        shutil.copy(references / path.name, validation_refs / path.name)
    test_predictions = ws.root / "predictions_as_planned"
    out: Dict = {"validation": {"none": structure_scores(validation_refs, validation, values)},
                 "test": {"none": structure_scores(ws.test_labels, test_predictions, values)
                          | {"per_label": evaluate(ws, test_predictions, "as_planned")}}}
    for mode, margin in REPAIRS:
        key = f"{mode}_{margin:g}mm"
        logger.info("(b) repair %s", key)
        repair(tool, ws, args.structure, validation, ws.root / f"validation_{key}", mode, margin)
        out["validation"][key] = structure_scores(validation_refs, ws.root / f"validation_{key}", values)
        repaired = ws.root / f"predictions_repaired_{key}"
        seconds = repair(tool, ws, args.structure, test_predictions, repaired, mode, margin).seconds
        out["test"][key] = structure_scores(ws.test_labels, repaired, values) | {
            "per_label": evaluate(ws, repaired, f"repaired_{key}"),
            "seconds_per_case": seconds / max(len(list(repaired.glob("*.nii.gz"))), 1)}
    out["chosen_on_validation"] = max(out["validation"], key=lambda k: out["validation"][k]["dice"])
    return out


def main(argv=None) -> Path:
    from nnocc.io.dataset_json import load_dataset_json
    from nnocc.shape.crops import structure_values

    args = parse(argv)
    ws, target, results = start_comparison(args, "shape_pipeline", argv)
    results |= {"iterations": args.iterations, "structure": args.structure, "cubes": args.cubes, "edge": args.edge}
    planned = NnoccTool(ws, target, sys.executable, "3d_occ")
    plans = planned.results.parent / "preprocessed" / ws.dataset_name / "nnoccPlans.json"
    if not (args.reuse_trained and plans.is_file()):
        results["nnocc_plan_and_preprocess"] = planned.plan_and_preprocess().to_dict()
    values = structure_values(load_dataset_json(ws.raw / ws.dataset_name / "dataset.json"), args.structure)
    results["shape_models"] = shape_models(planned, args)
    tools = {"as_planned": planned, "proposed_centres": NnoccTool(ws, target, sys.executable, "3d_occ",
                                                                  "nnoccPlans_proposed")}
    results["patch_sampling"] = patch_sampling(ws, tools, args, values)
    results["shape_repair"] = shape_repair(ws, planned, args, values)
    return save_results(results, args.out or HERE / "results" / f"{results['date']}_shape_pipeline_{args.device}.json")


if __name__ == "__main__":
    main()
