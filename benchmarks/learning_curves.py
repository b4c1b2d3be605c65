"""Learning curves on real anatomy: each nnocc configuration and nnU-Net v2, one budget, one memory target.

    python -m benchmarks.learning_curves --kits23 PATH --budget-minutes 60 --marks 5 15 30 60 --memory-target 2
        [--tools 3d_occ 3d_ossnet 3d_sconet 3d_swipe nnunet] [--nnunet-venv PATH] [--train 40] [--test 10]
        [--spacing 3 2 2]
        [--work DIR] [--out FILE]

The dataset is ``benchmarks.kits_anatomy``'s (real KiTS23 label maps, painted CT).  Both tools plan
for the same memory target; each tool trains fold 0 for the same wall-clock budget, keeping a
checkpoint as its clock passes each mark; every checkpoint then predicts the held-back cases (no
mirroring, for both) and is scored per class (Dice, Surface Dice at 1 and 3 mm, HD95) and, with
KiTS23's definitions, per region (mean Dice and Surface Dice over kidney+masses, masses, tumour).
At the end, one held-back case's inference cost: parameters, GFLOPs (torch's flop counter) and
peak memory above the loaded model and case (benchmarks/inference_cost.py).

Runs add to ``--out``: one entry per memory target and tool, so targets and tools can be run in
different sessions and read side by side (a tool already in the file is skipped; ``--redo`` reruns;
a new ``--budget-minutes`` for a target starts that target afresh).  Keep ``--work`` where it outlives
the session (the default, ``benchmarks/work/``, is git-ignored): find_best chooses among the models it
holds, and a workspace that lost its preprocessed data is planned again.
"""
from __future__ import annotations

import argparse
import datetime
import json
import logging
import shutil
import sys
from pathlib import Path
from typing import Dict, List, Sequence, Union

from benchmarks.measure import measure
from benchmarks.run import inference_stats, machine
from benchmarks.sconet import inference_cost
from benchmarks.tools import NnoccTool, NnunetTool, Workspace
from nnocc.training.checkpoint import snapshot_name
from nnocc.utils.json_io import save_json

HERE = Path(__file__).resolve().parent
logger = logging.getLogger("benchmarks")
DATASET_ID, DATASET_NAME = 992, "KiTSAnatomy"
TOOLS = ("3d_occ", "3d_ossnet", "3d_sconet", "3d_swipe", "nnunet")
Tool = Union[NnoccTool, NnunetTool]


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kits23", type=Path, required=True, help="KiTS23 checkout (its dataset/ folder is read)")
    p.add_argument("--budget-minutes", type=float, required=True)
    p.add_argument("--marks", type=float, nargs="+", required=True, help="minutes at which checkpoints are scored")
    p.add_argument("--memory-target", type=float, required=True, help="GB, for both planners")
    p.add_argument("--tools", nargs="+", default=list(TOOLS), choices=TOOLS)
    p.add_argument("--nnunet-venv", default=None, help="nnU-Net's virtual environment (or $NNUNET_VENV)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--train", type=int, default=40)
    p.add_argument("--test", type=int, default=10)
    p.add_argument("--spacing", type=float, nargs=3, default=[3.0, 2.0, 2.0],
                   help="mm (z y x) of the dataset made from the label maps (once per --work)")
    p.add_argument("--work", type=Path, default=HERE / "work" / "learning_curves")
    p.add_argument("--out", type=Path, default=HERE / "results" / "learning_curves_cpu.json")
    p.add_argument("--redo", action="store_true", help="rerun tools already in --out")
    p.add_argument("--rescore", action="store_true",
                   help="score the kept checkpoints at --marks of tools already in --out again with the code as it "
                        "is now (after a change to inference), or add marks a cut-off run did not score; training "
                        "and its figures untouched")
    p.add_argument("--resume", action="store_true",
                   help="score nnocc configurations whose training finished in --work but whose scoring was cut off "
                        "(a session's end), without training them again; --marks may be some of the target's, "
                        "and --rescore adds the others later")
    p.add_argument("--prepare-only", action="store_true",
                   help="make the dataset and plan for the tools in --work, train nothing and leave --out as it is "
                        "(for a session too short for the budget; the run that trains plans again and times it)")
    return p.parse_args(argv)


def prepare(args) -> Workspace:
    from nnocc.dataset_conversion.real_anatomy import make_real_anatomy_dataset

    ws = Workspace(args.work / f"{args.memory_target:g}GB", DATASET_ID, f"Dataset{DATASET_ID}_{DATASET_NAME}",
                   args.device, args.budget_minutes)
    shared_raw = args.work / "raw"
    if not (shared_raw / ws.dataset_name / "dataset.json").is_file():
        make_real_anatomy_dataset(args.kits23, shared_raw, DATASET_ID, args.train, args.test, tuple(args.spacing),
                                  num_processes=2, name=DATASET_NAME)
    check_spacing(shared_raw / ws.dataset_name, args.spacing)
    ws.root.mkdir(parents=True, exist_ok=True)
    if not ws.raw.exists():
        ws.raw.symlink_to(shared_raw.resolve())
    return ws


def check_spacing(dataset: Path, spacing: Sequence[float]) -> None:
    """A workspace keeps the dataset it was first made with: another --spacing is an error, not a silent reuse."""
    from nnocc.io.images import read_image

    made = read_image(next((dataset / "imagesTr").glob("*_0000.nii.gz")))[1].spacing
    if not all(abs(a - b) < 1e-3 for a, b in zip(made, spacing)):
        raise SystemExit(f"{dataset}: made at {' x '.join(f'{v:g}' for v in made)} mm, not --spacing "
                         f"{' '.join(f'{v:g}' for v in spacing)}; pass that spacing or another --work")


def evaluate(ws: Workspace, predictions: Path, name: str) -> Dict:
    """Per class (labels) and per KiTS23 region, as the challenge reports them."""
    dataset_json = str(ws.raw / ws.dataset_name / "dataset.json")
    figures: Dict = {}
    for kind, flags in (("classes", ["--tolerance_mm", "1", "3"]), ("kits23", ["--kits23"])):
        out = ws.root / f"summary_{name}_{kind}.json"
        measure([sys.executable, "-m", "nnocc", "evaluate_folder", str(ws.test_labels), str(predictions), "-djfile",
                 dataset_json, "-o", str(out), "-np", "2", *flags], ws.log(f"evaluate_{name}"))
        summary = json.loads(out.read_text())
        figures[kind] = summary["mean"] | {"mean": summary["foreground_mean"]}
        if kind == "kits23":
            figures[kind]["challenge"] = summary["kits23"]
    return figures


def score_checkpoint(tool: Tool, ws: Workspace, minutes: float) -> Dict:
    name = f"{tool_key(tool)}_at_{minutes:g}min"
    output = ws.root / f"predictions_{name}"
    shutil.rmtree(output, ignore_errors=True)
    predicted = tool.predict(output, f"predict_{name}", "-chk", snapshot_name(minutes), "--disable_tta")
    cases = max(len(list(ws.test_images.glob("*_0000.nii.gz"))), 1)
    figures = {"minutes": minutes, "predict": predicted.to_dict() | {"seconds_per_case": predicted.seconds / cases},
               "evaluation": evaluate(ws, output, name)}
    if isinstance(tool, NnoccTool):
        figures["inference_stats"] = inference_stats(output)
    return figures


def tool_key(tool: Tool) -> str:
    return tool.configuration if isinstance(tool, NnoccTool) else "nnunet"


def run_tool(tool: Tool, ws: Workspace, marks: List[float]) -> Dict:
    logger.info("%s: train for %g minutes, snapshots at %s", tool_key(tool), ws.budget_minutes, marks)
    figures: Dict = {"train": tool.train(marks).to_dict() | tool.training_figures(), "curve": []}
    for minutes in marks:
        logger.info("%s: score the checkpoint at %g minutes", tool_key(tool), minutes)
        figures["curve"].append(score_checkpoint(tool, ws, minutes))
    figures["inference_cost"] = inference_cost(tool, ws, tool_key(tool))
    return figures


def finished_training(tool: Tool, marks: List[float]) -> bool:
    fold = tool.model_folder() / "fold_0"
    return isinstance(tool, NnoccTool) and (fold / "checkpoint_final.pth").is_file() and \
        all((fold / snapshot_name(m)).is_file() for m in marks)


def resume_tool(tool: NnoccTool, ws: Workspace, marks: List[float]) -> Dict:
    """The figures of a configuration trained in an earlier, cut-off run.  The training command's own
    wall time and peak went with that run; the training process's peak kept in the checkpoint stands
    in for the peak, and ``peak_rss_source`` says so."""
    logger.info("%s: trained already; score the checkpoints at %s", tool_key(tool), marks)
    inside = tool.training_figures()
    train = inside | {"peak_rss_mb": inside["peak_memory_mb_in_process"],
                      "peak_rss_source": "the training process, from its checkpoint (scoring resumed in a later run)"}
    written = (tool.model_folder() / "fold_0" / "checkpoint_final.pth").stat().st_mtime
    figures = {"train": train, "curve": [score_checkpoint(tool, ws, minutes) for minutes in marks],
               "inference_cost": inference_cost(tool, ws, tool_key(tool)), "resumed": datetime.date.today().isoformat(),
               "date": datetime.date.fromtimestamp(written).isoformat()}
    # the processor that trained is known only when this machine has run since before the training ended
    return figures | ({"machine": machine()} if written > boot_time() else {"scoring_machine": machine()})


def boot_time() -> float:
    """When this machine started (Linux; elsewhere "now", so that nothing counts as trained here)."""
    stat = Path("/proc/stat")
    lines = stat.read_text().splitlines() if stat.is_file() else []
    return next((float(line.split()[1]) for line in lines if line.startswith("btime ")), datetime.datetime.now().timestamp())


def rescore_tool(tool: Tool, ws: Workspace, figures: Dict, marks: Sequence[float]) -> Dict:
    """The checkpoints at ``marks`` scored again, or for the first time where a cut-off run scored only
    some of them (a rescored point says when; the curve's other points stay as they were scored).  The
    inference cost is measured again only with a rescored point: adding one leaves the code as it was."""
    today = datetime.date.today().isoformat()
    had = {p["minutes"] for p in figures["curve"]}
    fold = tool.model_folder() / "fold_0"
    wanted = [m for m in marks if m in had or (fold / snapshot_name(m)).is_file()]
    logger.info("%s: score the checkpoints at %s (again: %s)", tool_key(tool), wanted, sorted(had & set(wanted)))
    scored = {m: score_checkpoint(tool, ws, m) | ({"rescored": today} if m in had else {}) for m in wanted}
    curve = sorted([p for p in figures["curve"] if p["minutes"] not in scored] + list(scored.values()),
                   key=lambda p: p["minutes"])
    if not had & set(scored):
        return figures | {"curve": curve}
    return figures | {"curve": curve, "inference_cost": inference_cost(tool, ws, tool_key(tool)), "rescored": today}


def find_best(ws: Workspace, configurations: List[str]) -> Dict:
    """What ``nnocc_find_best_configuration`` picks among the trained configurations (fold 0's validation,
    at the end of the budget), and the validation figures it picked on."""
    nnocc = NnoccTool(ws, 0.0, sys.executable)
    m = nnocc.run("find_best", "find_best_configuration", "-d", ws.dataset_id, "-c", *configurations, "-f", 0,
                  "--disable_ensembling")
    information = json.loads((nnocc.results / ws.dataset_name / "inference_information.json").read_text())
    return {"command": m.to_dict(), "best": information["best"],
            "validation": {name: r["foreground_mean"] for name, r in information["results"].items()},
            "postprocessing": information["postprocessing_steps"]}


def load(out: Path) -> Dict:
    return json.loads(out.read_text()) if out.is_file() else {"runs": {}}


def target_run(results: Dict, memory_target: float, budget_minutes: float) -> Dict:
    """The entry of one memory target; a run for another budget starts it afresh, so that every tool of a
    target has trained for the same time (the earlier budget's figures stay in git history)."""
    key = f"{memory_target:g}GB"
    run = results["runs"].setdefault(key, {"tools": {}})
    if run.get("budget_minutes", budget_minutes) != budget_minutes:
        logger.info("%s: the budget changes from %g to %g minutes; its tools are trained again",
                    key, run["budget_minutes"], budget_minutes)
        run = results["runs"][key] = {"tools": {}}
    return run


def make_tool(key: str, ws: Workspace, args, venv) -> Tool:
    if key == "nnunet":
        return NnunetTool(ws, venv, args.memory_target)
    return NnoccTool(ws, args.memory_target, sys.executable, configuration=key)


def available(args, venv) -> List[str]:
    """The tools asked for that this machine can run."""
    if "nnunet" in args.tools and venv is None:
        logger.warning("nnunet: no nnU-Net environment (--nnunet-venv or $NNUNET_VENV); skipped")
    return [k for k in args.tools if k != "nnunet" or venv is not None]


def plan_where_needed(run: Dict, tools: List[Tool]) -> None:
    """Plan and preprocess once per tool family, again when this workspace lost what the JSON remembers."""
    planned_now = set()
    for tool in tools:
        key = f"{tool.name}_plan"
        if key not in planned_now and (key not in run or not tool.planned()):
            run[key] = tool.plan_and_preprocess().to_dict()
            planned_now.add(key)


def forget_earlier_runs(run: Dict, tools: List[Tool]) -> None:
    """Before retraining: these tools are planned again (the other family keeps its plan and the time it
    took) and their earlier models go, since nnocc refuses to add a fold trained on a changed plan to a
    model folder, and their snapshots would be scored as this run's."""
    for tool in tools:
        run.pop(f"{tool.name}_plan", None)
        if tool.model_folder().is_dir():
            logger.info("%s: removing the earlier model %s", tool_key(tool), tool.model_folder())
            shutil.rmtree(tool.model_folder())


def main(argv=None) -> Path:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args = parse(argv)
    marks = sorted(m for m in args.marks if m <= args.budget_minutes)
    ws = prepare(args)
    venv = NnunetTool.find(args.nnunet_venv)
    if args.prepare_only:
        plan_where_needed({}, [make_tool(k, ws, args, venv) for k in available(args, venv)])
        return args.out
    results = load(args.out)
    earlier = results["runs"].get(f"{args.memory_target:g}GB", {}).get("budget_minutes", args.budget_minutes)
    if args.rescore and earlier != args.budget_minutes:
        raise SystemExit(f"--rescore: {args.out} holds a {earlier:g}-minute run for this target, not {args.budget_minutes:g}")
    run = target_run(results, args.memory_target, args.budget_minutes)
    run.update({"dataset": ws.dataset_name, "budget_minutes": args.budget_minutes, "memory_target_gb": args.memory_target,
                "machine": machine(), "device": args.device})
    if not (args.rescore or args.resume) or "marks" not in run:     # scoring some marks keeps the target's
        run["marks"] = marks
    run.setdefault("commands", []).append(f"python -m benchmarks.learning_curves {' '.join(sys.argv[1:] or argv or [])}")
    keys = available(args, venv)
    if venv is not None and "nnunet" in keys:
        run.setdefault("versions", {})["nnunetv2"] = NnunetTool.version(venv)
    if args.rescore:
        for key in [k for k in keys if k in run["tools"]]:
            run["tools"][key] = rescore_tool(make_tool(key, ws, args, venv), ws, run["tools"][key], marks)
            save_json(results, args.out)
        return args.out
    if not args.redo and set(keys) & set(run["tools"]):
        logger.info("already in %s, not trained again: %s", args.out, sorted(set(keys) & set(run["tools"])))
    to_train = [make_tool(k, ws, args, venv) for k in keys if k not in run["tools"] or args.redo]
    if args.resume:
        for tool in [t for t in to_train if finished_training(t, marks)]:
            run["tools"][tool_key(tool)] = resume_tool(tool, ws, marks)
            save_json(results, args.out)
            to_train.remove(tool)
    if args.redo:
        forget_earlier_runs(run, to_train)
    plan_where_needed(run, to_train)
    for tool in to_train:
        run["tools"][tool_key(tool)] = run_tool(tool, ws, marks) | {"date": datetime.date.today().isoformat(),
                                                                    "machine": machine()}   # tools run in different sessions
        save_json(results, args.out)
    update_find_best(run, ws, [k for k in run["tools"] if k != "nnunet"
                               and (make_tool(k, ws, args, venv).model_folder() / "fold_0").is_dir()],
                     [tool_key(t) for t in to_train])
    save_json(results, args.out)
    return args.out


def update_find_best(run: Dict, ws: Workspace, trained: List[str], retrained: Sequence[str] = ()) -> None:
    """find_best reads the trained models, so it can choose only among those this workspace still holds; a
    workspace that lost some (a new machine) keeps the earlier, wider choice and notes which models it could
    not weigh and which of those it chose among were trained again since (their validation figures are stale)."""
    chosen = run.get("find_best", {})
    earlier = chosen.get("among", [])
    stale = set(retrained) & set(earlier)
    if not trained or (set(trained) == set(earlier) and not stale):     # the order of the tools run is no new choice
        return
    if not set(earlier) <= set(trained):
        logger.info("find_best: the workspace holds %s only, not %s; the earlier choice stays", trained, earlier)
        for key, new in (("not_rechosen_with", set(trained) - set(earlier)), ("retrained_since", stale)):
            merged = new | set(chosen.get(key, []))
            if merged:
                chosen[key] = sorted(merged)
        return
    run["find_best"] = find_best(ws, trained) | {"among": trained}


if __name__ == "__main__":
    print(main())
