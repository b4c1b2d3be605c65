"""nnocc against nnU-Net v2 on the same data and machine, in one run.

    python -m benchmarks.run --budget-minutes 30 [--device cpu|cuda] [--dataset generated_ct|generated_mri|ID]
                             [--nnunet-venv PATH]

Stages: generate (or use) a dataset; plan and preprocess with both tools; train fold 0 with both
for the same wall-clock budget; predict the held-back cases with both; evaluate both with
``nnocc_evaluate_folder``; nnocc's scaling studies.  Results go to
``benchmarks/results/<date>_<machine>_<dataset>.json`` and ``benchmarks/readme.md``.

nnU-Net is found through ``--nnunet-venv`` or the ``NNUNET_VENV`` environment variable; set one up
with ``python3 -m venv ~/nnunet && ~/nnunet/bin/pip install nnunetv2``.  Without it, nnocc's half runs.
"""
from __future__ import annotations

import argparse
import datetime
import json
import logging
import platform
import shutil
import sys
from pathlib import Path
from typing import Dict, Sequence

import numpy as np

from benchmarks.measure import measure
from benchmarks.tools import NnoccTool, NnunetTool, Workspace

HERE = Path(__file__).resolve().parent
logger = logging.getLogger("benchmarks")
STAGES = ("plan", "train", "predict", "mise", "scaling")


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget-minutes", type=float, required=True, help="training budget per tool")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--dataset", default="generated_ct", help="generated_ct, generated_mri, or a raw dataset id")
    p.add_argument("--nnunet-venv", default=None, help="nnU-Net's virtual environment (or $NNUNET_VENV)")
    p.add_argument("--work", type=Path, default=None, help="working folder (default benchmarks/work/<date>)")
    p.add_argument("--num-train", type=int, default=20)
    p.add_argument("--num-test", type=int, default=5)
    p.add_argument("--shape", type=int, nargs=3, default=[40, 120, 120])
    p.add_argument("--memory-target", type=float, default=None,
                   help="GB, for both tools' planners (nnocc's --gpu_memory_target, nnU-Net's -gpu_memory_target); "
                        "default 2 on the CPU, 8 (nnU-Net's own default) on a GPU; ratios are read within one target")
    p.add_argument("--scaling-cases", type=int, default=2, help="test cases used for the scaling studies")
    p.add_argument("--output-factors", type=float, nargs="+", default=[1.0, 0.5, 0.25],
                   help="output spacings of the resolution study, as fractions of the input's")
    p.add_argument("--patch-scales", type=float, nargs="+", default=[0.5, 0.75, 1.0, 1.25, 1.5],
                   help="patch sizes of the training-memory study, as fractions of the planned one")
    p.add_argument("--results", type=Path, default=HERE / "results")
    p.add_argument("--stages", default=",".join(STAGES),
                   help=f"comma-separated subset of {','.join(STAGES)}; the others are taken from --reuse")
    p.add_argument("--reuse", type=Path, default=None, help="an earlier results JSON of the same work folder")
    p.add_argument("--skip-nnunet", action="store_true", help="run nnocc's stages only (keep nnU-Net's from --reuse)")
    p.add_argument("--no-readme", action="store_true", help="do not rewrite benchmarks/readme.md")
    return p.parse_args(argv)


def machine() -> Dict:
    import torch

    info = {"processor": platform.processor() or platform.machine(), "cores": _cores(), "python": platform.python_version(),
            "torch": torch.__version__, "platform": platform.platform()}
    info |= _cpu_model()
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _cpu_model() -> Dict:
    """The host's processor and clock (Linux): virtual machines of one name differ from session to session,
    and training speed with them, so a run says which one it had."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        return {}
    fields = {key.strip(): value.strip() for key, _, value in
              (line.partition(":") for line in cpuinfo.read_text().splitlines() if ":" in line)}
    found = {"cpu": fields.get("model name"), "cpu_mhz": float(fields["cpu MHz"]) if "cpu MHz" in fields else None}
    return {k: v for k, v in found.items() if v is not None}


def _cores() -> int:
    import os
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def prepare_dataset(args, root: Path) -> Workspace:
    raw = root / "raw"
    if args.dataset.startswith("generated_"):
        modality = args.dataset.split("_", 1)[1]
        dataset_id, name = (990, "BenchCT") if modality == "ct" else (991, "BenchMRI")
        folder = raw / f"Dataset{dataset_id:03d}_{name}"
        if not folder.is_dir():
            measure([sys.executable, "-m", "nnocc", "generate_dataset", "-d", str(dataset_id), "--name", name,
                     "--modality", modality, "--num_training", str(args.num_train), "--num_test", str(args.num_test),
                     "--shape", *map(str, args.shape), "-o", str(raw), "-np", "2"], root / "logs" / "generate.log")
    else:  # a user's dataset from $nnocc_raw, linked into the workspace
        from nnocc.cli.environment import data_folders
        from nnocc.paths import dataset_name_from_folder, find_dataset_name
        folders = data_folders()
        full_name = find_dataset_name(args.dataset, folders)
        dataset_id, name = dataset_name_from_folder(full_name)
        raw.mkdir(parents=True, exist_ok=True)
        if not (raw / full_name).exists():
            (raw / full_name).symlink_to(folders.raw / full_name)
    return Workspace(root, dataset_id, f"Dataset{dataset_id:03d}_{name}", args.device, args.budget_minutes)


def evaluate(ws: Workspace, predictions: Path, name: str) -> Dict:
    dataset_json = ws.raw / ws.dataset_name / "dataset.json"
    out = ws.root / f"summary_{name}.json"
    measure([sys.executable, "-m", "nnocc", "evaluate_folder", str(ws.test_labels), str(predictions), "-djfile",
             str(dataset_json), "-o", str(out), "--tolerance_mm", "1", "3", "-np", "2"], ws.log(f"evaluate_{name}"))
    summary = json.loads(out.read_text())
    keys = ("dice", "surface_dice@1", "surface_dice@3", "hd95", "assd")
    return {cls: {k: values.get(k) for k in keys} for cls, values in summary["mean"].items()} | \
        {"mean": {k: summary["foreground_mean"].get(k) for k in keys}}


def agreement(a: Path, b: Path) -> float:
    from nnocc.io.images import read_image

    same = total = 0
    for path in sorted(a.glob("*.nii.gz")):
        x, y = read_image(path)[0], read_image(b / path.name)[0]
        same += int((x == y).sum())
        total += x.size
    return same / max(total, 1)


def inference_stats(folder: Path) -> Dict:
    cases = json.loads((folder / "inference_stats.json").read_text())["cases"]
    fields = ("queries", "dense_equivalent", "query_fraction", "seconds_total", "peak_memory_mb")
    return {f: float(np.mean([c[f] for c in cases.values()])) for f in fields} | {"cases": len(cases)}


def run_tool(tool, ws: Workspace, results: Dict, stages) -> None:
    figures = results.setdefault(tool.name, {})
    if "plan" in stages:
        logger.info("%s: plan and preprocess", tool.name)
        figures["plan_and_preprocess"] = tool.plan_and_preprocess().to_dict()
    if "train" in stages:
        logger.info("%s: train fold 0 for %.0f minutes", tool.name, ws.budget_minutes)
        figures["train"] = tool.train().to_dict() | tool.training_figures()
    if "predict" in stages:
        logger.info("%s: predict %s", tool.name, ws.test_images)
        output = ws.root / f"predictions_{tool.name}"
        shutil.rmtree(output, ignore_errors=True)
        predicted = tool.predict(output).to_dict()
        predicted["seconds_per_case"] = predicted["seconds"] / max(len(list(ws.test_images.glob("*_0000.nii.gz"))), 1)
        figures["predict"] = predicted
        figures["evaluation"] = evaluate(ws, output, tool.name)


def mise_against_dense(nnocc: NnoccTool, ws: Workspace) -> Dict:
    out = {}
    for mode, extra in (("mise", []), ("dense", ["--dense"])):
        folder = ws.root / f"predictions_nnocc_{mode}"
        shutil.rmtree(folder, ignore_errors=True)
        # the MISE algorithm against dense evaluation of the same field: no second pass in either
        m = nnocc.predict(folder, f"predict_{mode}", "--disable_tta", "--no_refinement", *extra)
        out[mode] = {"command": m.command, "seconds": m.seconds, "peak_rss_mb": m.peak_rss_mb} | inference_stats(folder)
    out["voxel_agreement"] = agreement(ws.root / "predictions_nnocc_mise", ws.root / "predictions_nnocc_dense")
    return out


def output_resolution_study(nnocc: NnoccTool, ws: Workspace, cases: int, factors: Sequence[float]) -> Dict:
    subset = ws.root / "scaling_inputs"
    shutil.rmtree(subset, ignore_errors=True)
    subset.mkdir(parents=True)
    for path in sorted(ws.test_images.glob("*_0000.nii.gz"))[:cases]:
        shutil.copy(path, subset / path.name)
    from nnocc.io.images import read_image
    spacing = np.array(read_image(next(subset.iterdir()))[1].spacing)
    study = {}
    for factor in factors:
        folder = ws.root / f"scaling_{factor}"
        shutil.rmtree(folder, ignore_errors=True)
        extra = [] if factor == 1.0 else ["--output_spacing", *[f"{s * factor:.4f}" for s in spacing]]
        m = measure([nnocc.python, "-m", "nnocc", "predict", "-i", str(subset), "-o", str(folder), "-d",
                     str(ws.dataset_id), "-c", nnocc.configuration, "-f", "0", "-device", ws.device, "-npp", "1",
                     "-nps", "1", "--disable_tta",
                     *extra], ws.log(f"scaling_{factor}"), nnocc.env, ws.device == "cuda")
        study[str(factor)] = {"seconds": m.seconds, "peak_rss_mb": m.peak_rss_mb, "peak_gpu_mb": m.peak_gpu_mb} | \
            inference_stats(folder)
    return study


def main(argv=None) -> Path:
    args = parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    stamp = datetime.datetime.now().strftime("%Y-%m-%d")
    root = (args.work or HERE / "work" / stamp).resolve()
    root.mkdir(parents=True, exist_ok=True)
    ws = prepare_dataset(args, root)
    memory_target = args.memory_target or (8.0 if args.device == "cuda" else 2.0)
    nnocc = NnoccTool(ws, memory_target, sys.executable)
    venv = None if args.skip_nnunet else NnunetTool.find(args.nnunet_venv)
    stages = set(args.stages.split(","))
    results: Dict = json.loads(args.reuse.read_text()) if args.reuse else {}
    command = " ".join(["python -m benchmarks.run", *(argv if argv is not None else sys.argv[1:])])
    results.update({"date": stamp, "machine": machine(), "dataset": ws.dataset_name, "device": args.device,
                    "budget_minutes": args.budget_minutes, "nnocc_memory_target_gb": memory_target,
                    "nnunet_memory_target_gb": memory_target})
    results.setdefault("commands", []).append(command)
    results["command"] = results["commands"][0]
    if venv is None and not args.skip_nnunet:
        results["nnunet_missing"] = ("nnU-Net v2 not found: python3 -m venv ~/nnunet && ~/nnunet/bin/pip install "
                                     "nnunetv2, then pass --nnunet-venv ~/nnunet or set NNUNET_VENV")
        logger.warning(results["nnunet_missing"])
    run_tool(nnocc, ws, results, stages)
    if "mise" in stages:
        results["nnocc"]["mise_vs_dense"] = mise_against_dense(nnocc, ws)
    if "scaling" in stages:
        from benchmarks.training_memory import patch_size_study
        results["nnocc"]["output_resolution"] = output_resolution_study(nnocc, ws, args.scaling_cases, args.output_factors)
        results["nnocc"]["training_memory_vs_patch"] = patch_size_study(nnocc, ws, args.patch_scales)
    if venv is not None:
        tool = NnunetTool(ws, venv, memory_target)
        results["versions"] = {"nnunetv2": NnunetTool.version(venv)}
        run_tool(tool, ws, results, stages)
    from benchmarks.report import ratios, write_readme, write_results
    results["ratios"] = ratios(results)
    path = write_results(results, args.results)
    if not args.no_readme:
        write_readme(results, path)
    print(path)
    return path


if __name__ == "__main__":
    main()
