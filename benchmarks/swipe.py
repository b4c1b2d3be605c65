"""SwIPE (``3d_swipe``, seed 003) against ``3d_ossnet``, ``3d_occ`` and nnU-Net v2 on one generated CT.

    python -m benchmarks.swipe --budget-minutes 8 --ablation-minutes 3 [--nnunet-venv PATH]
                               [--shape 64 192 192] [--num-train 10] [--num-test 3] [--memory-target GB]
                               [--work DIR] [--out FILE]

One generated CT dataset, planned once by each tool at the same memory target.  Reported:

* per patch (SwIPE's table 1): parameters and GFLOPs of each planned model on its own patch (encoding
  plus one query per voxel; benchmarks/patch_cost.py), SwIPE at the paper's size (d = 512, 96^3, 14
  outputs) and nnU-Net's network on its patch;
* each model trained for fold 0 for the same wall-clock budget, predicting the held-back cases without
  test-time mirroring: Dice, Surface Dice and HD95 per class, and one case's inference cost;
* the paper's ablation at a shorter budget: ``3d_swipe`` as planned, without MEA, without the image
  decoder, without Stochastic Patch Overreach (variant plans on the same preprocessed data).

Raw figures go to ``--out`` (JSON).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path
from typing import Dict, Optional

from benchmarks.configurations import add_nnunet, plan_summary, save_results, start_comparison
from benchmarks.measure import measure
from benchmarks.patch_cost import model_patch_cost, planned_patch_cost
from benchmarks.sconet import train_predict_evaluate
from benchmarks.tools import NnoccTool, NnunetTool, Workspace

HERE = Path(__file__).resolve().parent
logger = logging.getLogger("benchmarks")
CONFIGURATIONS = ("3d_swipe", "3d_ossnet", "3d_occ")
# the paper's ablation, each part taken out of the planned model
ABLATION = {"without_mea": {"mea": False}, "without_image_decoder": {"use_image_decoder": False},
            "without_overreach": {"overreach": 0}}
PAPER_PATCH, PAPER_OUTPUTS = [96, 96, 96], 14          # BCV: 96^3 crops, 13 organs and background


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget-minutes", type=float, required=True, help="training budget per model")
    p.add_argument("--ablation-minutes", type=float, required=True, help="training budget per ablation variant")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--memory-target", type=float, default=None, help="GB for both planners (default 2 CPU, 8 GPU)")
    p.add_argument("--nnunet-venv", default=None, help="nnU-Net's virtual environment (or $NNUNET_VENV)")
    p.add_argument("--num-train", type=int, default=10)
    p.add_argument("--num-test", type=int, default=3)
    p.add_argument("--shape", type=int, nargs=3, default=[64, 192, 192])
    p.add_argument("--work", type=Path, default=None, help="working folder (default benchmarks/work/swipe)")
    p.add_argument("--out", type=Path, default=None, help="results JSON (default benchmarks/results/...)")
    p.add_argument("--dataset", default="generated_ct", help=argparse.SUPPRESS)
    p.add_argument("--background-weight-only", type=float, default=None, metavar="WEIGHT",
                   help="only train 3d_swipe again with background points weighted WEIGHT times a label's, into the "
                        "results of --out (same --work)")
    return p.parse_args(argv)


def plans_folder(tool: NnoccTool) -> Path:
    return tool.results.parent / "preprocessed" / tool.ws.dataset_name


def per_patch_costs(tool: NnoccTool) -> Dict:
    """Each planned configuration on its own patch, and SwIPE at the paper's 3D size."""
    from nnocc.architectures.registry import architecture_class, build_model
    from nnocc.planning.plans import Plans

    plans = Plans.load(plans_folder(tool) / "nnoccPlans.json")
    out = {name: planned_patch_cost(plans.configurations[name].architecture.name,
                                    plans.configurations[name].architecture.kwargs, plans.configurations[name].patch_size)
           for name in CONFIGURATIONS if name in plans.configurations}
    paper = architecture_class("swipe").build_kwargs("base", 1, PAPER_OUTPUTS, plans.configurations["3d_swipe"].spacing)
    out["3d_swipe_paper_size"] = model_patch_cost(build_model("swipe", paper), PAPER_PATCH)
    return out


def nnunet_patch_cost(nnunet: NnunetTool, ws: Workspace) -> Dict:
    out = ws.root / "patch_cost_nnunet.json"
    measure([str(nnunet.venv / "bin" / "python"), str(HERE / "nnunet_inference_cost.py"), "patch",
             str(nnunet.model_folder()), str(out)], ws.log("patch_cost_nnunet"), nnunet.env)
    return json.loads(out.read_text())


def variant_plans(tool: NnoccTool, name: str, changes: Dict, sampling: Optional[Dict] = None) -> str:
    """Plans ``name`` whose only configuration is 3d_swipe with other architecture arguments (or sampling
    settings), on the planned preprocessed data (same data identifier)."""
    from nnocc.planning.plans import Plans

    plans = Plans.load(plans_folder(tool) / "nnoccPlans.json")
    config = plans.configuration("3d_swipe")
    config.architecture.kwargs.update(changes)
    config.sampling = dataclasses.replace(config.sampling, **(sampling or {}))
    dataclasses.replace(plans, plans_name=name, configurations={"3d_swipe": config}).save(plans_folder(tool) / f"{name}.json")
    return name


def ablation(ws: Workspace, target: float, minutes: float) -> Dict:
    short = dataclasses.replace(ws, budget_minutes=minutes)
    out: Dict = {"budget_minutes": minutes}
    planned = NnoccTool(short, target, sys.executable, "3d_swipe", variant_plans(NnoccTool(ws, target, sys.executable),
                                                                                  "nnoccPlans_swipe_as_planned", {}))
    variants = {"as_planned": planned}
    for label, changes in ABLATION.items():
        variants[label] = NnoccTool(short, target, sys.executable, "3d_swipe",
                                    variant_plans(planned, f"nnoccPlans_swipe_{label}", changes))
    for label, tool in variants.items():
        figures = train_predict_evaluate(tool, short, f"3d_swipe_{label}", cost=False)
        out[label] = figures["evaluation"] | {"train": figures["train"]}
    return out


def with_background_weight(ws: Workspace, target: float, weight: float) -> Dict:
    """3d_swipe again at the same budget, its background drawn ``weight`` times a label's count."""
    name = variant_plans(NnoccTool(ws, target, sys.executable), f"nnoccPlans_swipe_background_{weight:g}", {},
                         {"background_point_weight": weight})
    return train_predict_evaluate(NnoccTool(ws, target, sys.executable, "3d_swipe", name), ws,
                                  f"3d_swipe_background_{weight:g}")


def main(argv=None) -> Path:
    args = parse(argv)
    ws, target, results = start_comparison(args, "swipe", argv)
    if args.background_weight_only is not None:
        out = args.out or HERE / "results" / f"{results['date']}_swipe_{args.device}.json"
        earlier = json.loads(out.read_text())
        label = f"3d_swipe, background x{args.background_weight_only:g}"
        earlier["tools"][label] = with_background_weight(ws, target, args.background_weight_only)
        earlier.setdefault("commands", [earlier["command"]]).append(results["command"])
        return save_results(earlier, out)
    tools = {c: NnoccTool(ws, target, sys.executable, c) for c in CONFIGURATIONS}
    results["nnocc_plan_and_preprocess"] = tools["3d_swipe"].plan_and_preprocess().to_dict()
    results["nnocc_plans"] = plan_summary(tools["3d_swipe"])
    results["per_patch"] = per_patch_costs(tools["3d_swipe"])
    for label, tool in tools.items():
        results["tools"][label] = train_predict_evaluate(tool, ws, label)
    add_nnunet(results, args.nnunet_venv, ws, target, train_predict_evaluate)
    if "nnunet" in results["tools"]:
        venv = NnunetTool.find(args.nnunet_venv)
        assert venv is not None
        results["per_patch"]["nnunet"] = nnunet_patch_cost(NnunetTool(ws, venv, target), ws)
    results["ablation"] = ablation(ws, target, args.ablation_minutes)
    return save_results(results, args.out or HERE / "results" / f"{results['date']}_swipe_{args.device}.json")


if __name__ == "__main__":
    main()
