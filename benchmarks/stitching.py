"""Nearest-tile against Gaussian-blended stitching, measured on cases larger than one patch.

    python -m benchmarks.stitching -m MODEL_FOLDER [--cases 4] [--shape 60 200 200] [--device cpu]
                                   [--out benchmarks/results/stitching_cpu.json]

Generates KiTS-like CT cases big enough that every one is covered by several overlapping tiles,
predicts each with both stitching modes (MISE, no TTA, no refinement pass, so only the stitching
differs) and reports per mode the Dice per class against the generated reference, the seconds
per case and the voxels on which the two modes disagree.  The plan's default follows this figure.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np

from nnocc.dataset_conversion.synthetic import CaseSpec, make_case
from nnocc.evaluation.metrics import MetricSettings, structure_metrics
from nnocc.inference.predictor import InferenceSettings, Predictor
from nnocc.io.dataset_json import load_dataset_json

MODES = ("nearest", "gaussian")


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-m", "--model", type=Path, required=True, help="a trained model folder (fold_0 inside)")
    p.add_argument("--cases", type=int, default=4)
    p.add_argument("--shape", type=int, nargs=3, default=[60, 200, 200], help="voxels (z y x) before jitter")
    p.add_argument("--seed", type=int, default=4242, help="unlike the training data's seeds")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, default=None)
    return p.parse_args(argv)


def load_predictors(model: Path, device: str) -> Dict[str, Predictor]:
    return {mode: Predictor.from_model_folder(model, folds=[0], settings=InferenceSettings(
        tta=False, refine=False, stitching=mode, device=device)) for mode in MODES}


def predict_both(predictors: Dict[str, Predictor], image: np.ndarray, geometry) -> Dict[str, Dict]:
    out = {}
    for mode, predictor in predictors.items():
        start = time.perf_counter()
        prediction = predictor.predict_case(image, geometry)
        out[mode] = {"labels": prediction.labels, "seconds": time.perf_counter() - start,
                     "queries": prediction.stats.get("queries")}
    return out


Classes = Sequence[Tuple[str, Tuple[int, ...]]]   # (name, label values): each label, or each region


def case_row(labels: np.ndarray, spacing, predictions: Dict[str, Dict], classes: Classes) -> Dict:
    settings = MetricSettings(tolerances_mm=(1.0,))
    row = {"disagreeing_voxels": int(np.count_nonzero(predictions["nearest"]["labels"] != predictions["gaussian"]["labels"])),
           "voxels": int(labels.size)}
    for mode, p in predictions.items():
        row[mode] = {"seconds": p["seconds"], "queries": p["queries"]}
        for name, values in classes:
            m = structure_metrics(np.isin(labels, values), np.isin(p["labels"], values), spacing, settings)
            row[mode][name] = {"dice": m["dice"], "surface_dice@1": m["surface_dice@1"]}
    return row


def summarise(rows: List[Dict], classes: Classes) -> Dict:
    summary = {"disagreement_fraction": sum(r["disagreeing_voxels"] for r in rows) / sum(r["voxels"] for r in rows)}
    for mode in MODES:
        summary[mode] = {"seconds_per_case": float(np.mean([r[mode]["seconds"] for r in rows]))}
        for name, _ in classes:
            for metric in ("dice", "surface_dice@1"):
                summary[mode][f"{metric}_{name}"] = float(np.nanmean([r[mode][name][metric] for r in rows]))
    return summary


def main(argv=None) -> Dict:
    args = parse(argv)
    classes = load_dataset_json(args.model / "dataset.json").evaluation_classes()
    predictors, rows = load_predictors(args.model, args.device), []
    for i in range(args.cases):
        image, labels, geometry = make_case(CaseSpec(f"stitch_{i}", args.seed + i, tuple(args.shape), "ct"))
        rows.append(case_row(labels, geometry.spacing, predict_both(predictors, image, geometry), classes))
        print(json.dumps({"case": i, **{m: rows[-1][m] for m in MODES}}), flush=True)
    result = {"machine": platform.processor() or platform.machine(), "device": args.device, "model": str(args.model),
              "cases": args.cases, "shape": args.shape, "summary": summarise(rows, classes), "rows": rows}
    print(json.dumps(result["summary"], indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
