"""SCONet (``3d_sconet``, seed 002) against ``3d_occ`` and nnU-Net v2 on the generated larger CT.

    python -m benchmarks.sconet --budget-minutes 8 [--nnunet-venv PATH] [--shape 96 256 256]
                                [--num-train 10] [--num-test 3] [--memory-target GB] [--work DIR] [--out FILE]

One generated CT dataset, planned once by each tool at the same memory target.  Each model trains
fold 0 for the same wall-clock budget and predicts the held-back cases without test-time mirroring
(SCONet is never mirrored, so the others are not either).  Reported per model: Dice, Surface Dice
and HD95 per class; the inference cost of one case (peak memory above the loaded model and case,
GFLOPs from torch's flop counter, parameters; benchmarks/inference_cost.py); training figures.
The paper's descriptor ablation (its Table 2) trains ``3d_sconet`` again with the intensity at the
contour point and with no descriptor, at the same budget, and once more with intensity augmentation
before a fresh extraction per step (which the paper does not do).  Raw figures go to ``--out`` (JSON).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shutil
import sys
from pathlib import Path
from typing import Dict, Union

from benchmarks.configurations import add_nnunet, plan_summary, save_results, start_comparison
from benchmarks.measure import measure
from benchmarks.run import evaluate, inference_stats
from benchmarks.tools import NnoccTool, NnunetTool, Workspace

HERE = Path(__file__).resolve().parent
logger = logging.getLogger("benchmarks")
ABLATION = ("intensity", "none")          # besides the planned 'gradient' descriptor


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget-minutes", type=float, required=True, help="training budget per model")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--memory-target", type=float, default=None, help="GB for both planners (default 2 CPU, 8 GPU)")
    p.add_argument("--nnunet-venv", default=None, help="nnU-Net's virtual environment (or $NNUNET_VENV)")
    p.add_argument("--num-train", type=int, default=10)
    p.add_argument("--num-test", type=int, default=3)
    p.add_argument("--shape", type=int, nargs=3, default=[96, 256, 256])
    p.add_argument("--work", type=Path, default=None, help="working folder (default benchmarks/work/sconet)")
    p.add_argument("--out", type=Path, default=None, help="results JSON (default benchmarks/results/...)")
    p.add_argument("--dataset", default="generated_ct", help=argparse.SUPPRESS)
    p.add_argument("--cost-only", type=Path, default=None, metavar="RESULTS_JSON",
                   help="only measure the trained nnocc models' inference cost again (same --work) into earlier results")
    p.add_argument("--augmentation-only", type=Path, default=None, metavar="RESULTS_JSON",
                   help="only train 3d_sconet with intensity augmentation before extraction (same --work) into earlier "
                        "results")
    return p.parse_args(argv)


def variant_plans(tool: NnoccTool, name: str, **point_cloud) -> str:
    """Plans ``name`` whose only configuration is 3d_sconet with other point-cloud settings; the images
    are shared with the planned ones (same data identifier), the clouds are its own."""
    from nnocc.planning.plans import DESCRIPTOR_CHANNELS, Plans

    folder = tool.results.parent / "preprocessed" / tool.ws.dataset_name
    plans = Plans.load(folder / "nnoccPlans.json")
    config = plans.configuration("3d_sconet")
    assert config.point_cloud is not None
    config.point_cloud = dataclasses.replace(config.point_cloud, **point_cloud)
    config.architecture.kwargs["point_features"] = DESCRIPTOR_CHANNELS[config.point_cloud.descriptor]
    dataclasses.replace(plans, plans_name=name, configurations={"3d_sconet": config}).save(folder / f"{name}.json")
    tool.run(f"preprocess_{name}", "preprocess", "-d", tool.ws.dataset_id, "-p", name, "-c", "3d_sconet", "-np", 2)
    return name


def inference_cost(tool: Union[NnoccTool, NnunetTool], ws: Workspace, label: str) -> Dict:
    """One test case's inference cost, preprocessing in a process of its own (see inference_cost.py)."""
    image = sorted(ws.test_images.glob("*_0000.nii.gz"))[0]
    work, out = ws.root / f"cost_{label}", ws.root / f"cost_{label}.json"
    if isinstance(tool, NnunetTool):
        command = [str(tool.venv / "bin" / "python"), str(HERE / "nnunet_inference_cost.py")]
    else:
        command = [sys.executable, "-m", "benchmarks.inference_cost"]
    folder = str(tool.model_folder())
    measure([*command, "prepare", folder, str(image), str(work)], ws.log(f"cost_prepare_{label}"), tool.env)
    measure([*command, "measure", folder, str(work), str(out)], ws.log(f"cost_{label}"), tool.env)
    return json.loads(out.read_text()) | {"case": image.name}


def train_predict_evaluate(tool: Union[NnoccTool, NnunetTool], ws: Workspace, label: str, cost: bool = True) -> Dict:
    logger.info("%s: train fold 0 for %.1f minutes", label, ws.budget_minutes)
    figures: Dict = {"train": tool.train().to_dict() | tool.training_figures()}
    output = ws.root / f"predictions_{label}"
    shutil.rmtree(output, ignore_errors=True)
    logger.info("%s: predict %s", label, ws.test_images)
    predicted = tool.predict(output, f"predict_{label}", "--disable_tta").to_dict()
    predicted["seconds_per_case"] = predicted["seconds"] / max(len(list(ws.test_images.glob("*_0000.nii.gz"))), 1)
    if isinstance(tool, NnoccTool):
        predicted |= {"stats": inference_stats(output)}
    figures["predict"] = predicted
    figures["evaluation"] = evaluate(ws, output, label)
    if cost:
        logger.info("%s: inference cost of one case", label)
        figures["inference_cost"] = inference_cost(tool, ws, label)
    return figures


def ratios(results: Dict) -> Dict:
    """3d_sconet and 3d_occ against nnU-Net: inference memory, GFLOPs and parameters per case."""
    tools = results["tools"]
    if "nnunet" not in tools:
        return {}
    reference = tools["nnunet"]["inference_cost"]
    return {name: {key: tools[name]["inference_cost"][key] / max(reference[key], 1e-9)
                   for key in ("peak_memory_mb", "gflops", "parameters")}
            for name in ("3d_sconet", "3d_occ") if name in tools}


def with_intensity_augmentation(sco: NnoccTool, ws: Workspace, target: float) -> Dict:
    """3d_sconet with the cloud extracted afresh each step from the intensity-augmented case (the issue's
    'where it pays'): at the same budget, fewer but more varied steps."""
    name = variant_plans(sco, "nnoccPlans_intensity_augmentation", augment_intensities=True)
    figures = train_predict_evaluate(NnoccTool(ws, target, sys.executable, "3d_sconet", name), ws,
                                     "3d_sconet_intensity_augmentation")
    return figures["evaluation"] | {"train": figures["train"]}


def measure_costs_again(path: Path, command: str, ws: Workspace, tools: Dict[str, NnoccTool], target: float) -> Path:
    """The inference cost of every nnocc model of an earlier run, measured again with the code as it is."""
    earlier = json.loads(path.read_text())
    for label, tool in tools.items():
        earlier["tools"][label]["inference_cost"] = inference_cost(tool, ws, label)
    for descriptor in ABLATION:
        tool = NnoccTool(ws, target, sys.executable, "3d_sconet", f"nnoccPlans_descriptor_{descriptor}")
        earlier["descriptor_ablation"][descriptor]["inference_cost"] = inference_cost(tool, ws, f"3d_sconet_{descriptor}")
    earlier["ratios_to_nnunet"] = ratios(earlier)
    earlier.setdefault("commands", [earlier["command"]]).append(command)
    return save_results(earlier, path)


def main(argv=None) -> Path:
    args = parse(argv)
    ws, target, results = start_comparison(args, "sconet", argv)
    results["descriptor_ablation"] = {}
    command = results["command"]
    sco, occ = (NnoccTool(ws, target, sys.executable, c) for c in ("3d_sconet", "3d_occ"))
    if args.cost_only:
        return measure_costs_again(args.cost_only, command, ws, {"3d_sconet": sco, "3d_occ": occ}, target)
    if args.augmentation_only:
        earlier = json.loads(args.augmentation_only.read_text())
        earlier["intensity_augmentation"] = with_intensity_augmentation(sco, ws, target)
        earlier.setdefault("commands", [earlier["command"]]).append(command)
        return save_results(earlier, args.augmentation_only)
    results["nnocc_plan_and_preprocess"] = sco.plan_and_preprocess().to_dict()
    results["nnocc_plans"] = plan_summary(sco)
    ablation = {d: NnoccTool(ws, target, sys.executable, "3d_sconet",
                             variant_plans(sco, f"nnoccPlans_descriptor_{d}", descriptor=d)) for d in ABLATION}
    for label, tool in (("3d_sconet", sco), ("3d_occ", occ)):
        results["tools"][label] = train_predict_evaluate(tool, ws, label)
    add_nnunet(results, args.nnunet_venv, ws, target, train_predict_evaluate)
    results["ratios_to_nnunet"] = ratios(results)
    results["intensity_augmentation"] = with_intensity_augmentation(sco, ws, target)
    results["descriptor_ablation"]["gradient"] = results["tools"]["3d_sconet"]["evaluation"]
    for descriptor, tool in ablation.items():
        figures = train_predict_evaluate(tool, ws, f"3d_sconet_{descriptor}")
        results["descriptor_ablation"][descriptor] = figures["evaluation"] | {"train": figures["train"],
                                                                              "inference_cost": figures["inference_cost"]}
    return save_results(results, args.out or HERE / "results" / f"{results['date']}_sconet_{args.device}.json")


if __name__ == "__main__":
    main()
