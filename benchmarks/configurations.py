"""Every planned nnocc configuration against nnU-Net v2, on the same data, budget and machine.

    python -m benchmarks.configurations --budget-minutes 10 [--nnunet-venv PATH] [--device cpu|cuda]
                                        [--memory-target GB] [--work DIR] [--out FILE]

One generated CT dataset, planned once by nnocc (both configurations, one preprocessed copy) and
once by nnU-Net at the same memory target; each configuration and nnU-Net train fold 0 for the
same wall-clock budget and predict the held-back cases.  Reported per tool: training peak memory
(RSS on the CPU, allocated on CUDA), seconds per iteration, query points per patch or case,
parameters, inference time and peak memory per case, Dice / Surface Dice / HD95 per class.  For
``3d_ossnet`` also OSS-Net's seeded MISE against the original (unseeded) one on the same network:
time, queries and the voxels on which they disagree.  Raw figures go to ``--out`` (JSON).
"""
from __future__ import annotations

import argparse
import datetime
import json
import logging
import shutil
import sys
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from benchmarks.run import agreement, evaluate, inference_stats, machine, prepare_dataset
from benchmarks.tools import NnoccTool, NnunetTool, Workspace

HERE = Path(__file__).resolve().parent
logger = logging.getLogger("benchmarks")
CONFIGURATIONS = ("3d_occ", "3d_ossnet")


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget-minutes", type=float, required=True, help="training budget per configuration and tool")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--memory-target", type=float, default=None,
                   help="GB for both tools' planners (default 2 on the CPU, 8 on a GPU)")
    p.add_argument("--nnunet-venv", default=None, help="nnU-Net's virtual environment (or $NNUNET_VENV)")
    p.add_argument("--num-train", type=int, default=20)
    p.add_argument("--num-test", type=int, default=5)
    p.add_argument("--shape", type=int, nargs=3, default=[40, 120, 120])
    p.add_argument("--work", type=Path, default=None, help="working folder (default benchmarks/work/configurations)")
    p.add_argument("--out", type=Path, default=None, help="results JSON (default benchmarks/results/...)")
    p.add_argument("--dataset", default="generated_ct", help=argparse.SUPPRESS)
    p.add_argument("--memory-only", type=Path, default=None, metavar="RESULTS_JSON",
                   help="only add the 2^14-point training memory to an earlier run's results (same --work)")
    return p.parse_args(argv)


def plan_summary(nnocc: NnoccTool) -> Dict:
    from nnocc.planning.plans import Plans

    plans = Plans.load(nnocc.results.parent / "preprocessed" / nnocc.ws.dataset_name / "nnoccPlans.json")
    return {"recommended": plans.recommended_configuration, "reason": plans.recommendation_reason,
            "notes": plans.notes,
            "configurations": {name: {"patch_size": c.patch_size, "batch_size": c.batch_size,
                                      "points": c.sampling.points_per_patch, "preset": c.architecture.kwargs["preset"],
                                      "parameters": c.memory.model_parameters,
                                      "estimated_peak_gb": c.memory.estimated_peak_gb,
                                      "data_identifier": c.data_identifier}
                               for name, c in plans.configurations.items()}}


def train_and_predict(tool, ws, name: str) -> Dict:
    logger.info("%s: train fold 0 for %.1f minutes", name, ws.budget_minutes)
    figures: Dict = {"train": tool.train().to_dict() | tool.training_figures()}
    output = ws.root / f"predictions_{name}"
    shutil.rmtree(output, ignore_errors=True)
    logger.info("%s: predict %s", name, ws.test_images)
    predicted = tool.predict(output).to_dict()
    predicted["seconds_per_case"] = predicted["seconds"] / max(len(list(ws.test_images.glob("*_0000.nii.gz"))), 1)
    figures["predict"] = predicted
    figures["evaluation"] = evaluate(ws, output, name)
    return figures


def seeded_against_unseeded(nnocc: NnoccTool, ws) -> Dict:
    """OSS-Net's encoder-seeded MISE against MISE evaluating its coarse lattice, same network."""
    out: Dict = {}
    for mode, flag in (("seeded", "--seed_from_aux"), ("unseeded", "--no_seed_from_aux")):
        folder = ws.root / f"predictions_ossnet_{mode}"
        shutil.rmtree(folder, ignore_errors=True)
        m = nnocc.predict(folder, f"predict_ossnet_{mode}", "--disable_tta", "--no_refinement", flag)
        out[mode] = {"command": m.command, "seconds": m.seconds, "peak_rss_mb": m.peak_rss_mb} | inference_stats(folder)
    agree = agreement(ws.root / "predictions_ossnet_seeded", ws.root / "predictions_ossnet_unseeded")
    out["voxel_disagreement_percent"] = 100.0 * (1.0 - agree)
    out["speed_up"] = out["unseeded"]["seconds_total"] / max(out["seeded"]["seconds_total"], 1e-9)
    return out


RECIPE_POINTS = 2 ** 14


def memory_at_recipe_points(tools: List[NnoccTool]) -> Dict:
    """Training memory of each configuration's planned patch and batch at OSS-Net's 2^14 points
    (the paper's comparison), a few steps in a fresh process, as the memory model is measured."""
    from benchmarks.training_memory import measure_training_memory
    from nnocc.planning.plans import Plans

    out = {}
    for tool in tools:
        plans_file = tool.results.parent / "preprocessed" / tool.ws.dataset_name / "nnoccPlans.json"
        config = Plans.load(plans_file).configuration(tool.configuration)
        out[tool.configuration] = {"points": RECIPE_POINTS, "patch_size": config.patch_size,
                                   "batch_size": config.batch_size,
                                   "peak_mb": measure_training_memory(plans_file, tool.configuration, config.patch_size,
                                                                      tool.ws.device, tool.env, RECIPE_POINTS)}
    return out


def main(argv=None) -> Path:
    args = parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    root = (args.work or HERE / "work" / "configurations").resolve()
    root.mkdir(parents=True, exist_ok=True)
    args.budget_minutes = float(args.budget_minutes)
    ws = prepare_dataset(args, root)
    target = args.memory_target or (8.0 if args.device == "cuda" else 2.0)
    command = " ".join(["python -m benchmarks.configurations", *(argv if argv is not None else sys.argv[1:])])
    results: Dict = {"date": datetime.date.today().isoformat(), "command": command, "machine": machine(),
                     "dataset": ws.dataset_name, "device": args.device, "budget_minutes": args.budget_minutes,
                     "memory_target_gb": target, "tools": {}}
    tools: List = [NnoccTool(ws, target, sys.executable, c) for c in CONFIGURATIONS]
    if args.memory_only:
        earlier = json.loads(args.memory_only.read_text())
        earlier["training_memory_at_recipe_points"] = memory_at_recipe_points(tools)
        earlier.setdefault("commands", [earlier["command"]]).append(command)
        args.memory_only.write_text(json.dumps(earlier, indent=2, default=float) + "\n")
        print(args.memory_only)
        return args.memory_only
    results["nnocc_plan_and_preprocess"] = tools[0].plan_and_preprocess().to_dict()
    results["nnocc_plans"] = plan_summary(tools[0])
    for tool in tools:
        results["tools"][tool.configuration] = train_and_predict(tool, ws, tool.configuration)
    results["tools"]["3d_ossnet"]["seeded_vs_unseeded_mise"] = seeded_against_unseeded(tools[1], ws)
    results["training_memory_at_recipe_points"] = memory_at_recipe_points(tools)
    add_nnunet(results, args.nnunet_venv, ws, target, train_and_predict)
    return save_results(results, args.out or HERE / "results" / f"{results['date']}_configurations_{args.device}.json")


def add_nnunet(results: Dict, venv_option: Optional[str], ws, target: float,
               train_predict: Callable[[NnunetTool, object, str], Dict]) -> None:
    """nnU-Net planned at the same memory target, trained and evaluated by ``train_predict``, when found."""
    venv = NnunetTool.find(venv_option)
    if venv is None:
        results["nnunet_missing"] = "pass --nnunet-venv (python3 -m venv ~/nnunet && ~/nnunet/bin/pip install nnunetv2)"
        return
    nnunet = NnunetTool(ws, venv, target)
    results["nnunet_plan_and_preprocess"] = nnunet.plan_and_preprocess().to_dict()
    results["tools"]["nnunet"] = train_predict(nnunet, ws, "nnunet")


def start_comparison(args: argparse.Namespace, name: str, argv) -> Tuple[Workspace, float, Dict]:
    """A comparison without test-time mirroring (``benchmarks.NAME``): its working folder and generated
    dataset, the memory target both tools plan for, and the results' header."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    root = (args.work or HERE / "work" / name).resolve()
    root.mkdir(parents=True, exist_ok=True)
    ws = prepare_dataset(args, root)
    target = args.memory_target or (8.0 if args.device == "cuda" else 2.0)
    command = " ".join([f"python -m benchmarks.{name}", *(argv if argv is not None else sys.argv[1:])])
    return ws, target, {"date": datetime.date.today().isoformat(), "command": command, "machine": machine(),
                        "dataset": ws.dataset_name, "shape": args.shape, "device": args.device,
                        "budget_minutes": args.budget_minutes, "memory_target_gb": target,
                        "test_time_mirroring": False, "tools": {}}


def save_results(results: Dict, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=float) + "\n")
    print(out)
    return out


if __name__ == "__main__":
    main()
