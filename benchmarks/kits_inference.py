"""KiTS-sized inference: whole scans at their own resolution (512 x 512 in-plane, 1-5 mm slices).

    python -m benchmarks.kits_inference --kits23 PATH --work benchmarks/work/learning_curves/2GB
        [--cases case_00017 case_00123] [--configuration 3d_occ] [--dense CASE ...] [--nnunet-venv PATH] [--out FILE]

Uses the models that ``benchmarks.learning_curves`` trained in ``--work`` (its final checkpoints).
Real KiTS23 label maps are painted at their own resolution (``benchmarks.kits_anatomy``); nnocc
predicts them with ``--output_spacing`` equal to the input (its default) and no mirroring, by MISE
and, for the cases named by ``--dense``, by querying every voxel: seconds, peak memory, queries per case, and the
voxels on which MISE and dense agree.  nnU-Net predicts the same scans the same way (no
mirroring) for time and memory.
"""
from __future__ import annotations

import argparse
import datetime
import json
import logging
import shutil
import sys
from pathlib import Path
from typing import Dict, List

import cc3d
import numpy as np

from benchmarks.learning_curves import DATASET_ID, DATASET_NAME
from benchmarks.run import agreement, machine
from benchmarks.tools import NnoccTool, NnunetTool, Workspace
from nnocc.dataset_conversion.real_anatomy import paint_native_cases
from nnocc.inference.predictor import InferenceSettings
from nnocc.io.images import read_image
from nnocc.utils.json_io import save_json

HERE = Path(__file__).resolve().parent
logger = logging.getLogger("benchmarks")


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kits23", type=Path, required=True)
    p.add_argument("--work", type=Path, required=True, help="a learning-curves workspace (one memory target)")
    p.add_argument("--cases", nargs="+", default=["case_00017", "case_00123"])
    p.add_argument("--configuration", default="3d_occ")
    p.add_argument("--dense", nargs="*", default=[], metavar="CASE",
                   help="cases also predicted by querying every voxel (the reference for MISE; slow on thin slices)")
    p.add_argument("--sweep", nargs="*", default=[], metavar="MM:MARGIN[:CHILDREN[:HINT]]",
                   help="for the --dense cases, MISE alone again with these coarse lattices, uncertainty margins, "
                        "children rules and hint factors (--coarse_spacing_mm, --uncertainty_margin, --mise_children, "
                        "--aux_hint_factor; 'plan' keeps the plan's), e.g. 6.4:0.4 plan:0.1 plan:plan:changing:4")
    p.add_argument("--nnunet-venv", default=None)
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--out", type=Path, default=HERE / "results" / "kits_inference_cpu.json")
    p.add_argument("--curves", type=Path, default=HERE / "results" / "learning_curves_cpu.json",
                   help="the learning-curves results that trained --work's models (to say which models these are)")
    p.add_argument("--plain-only", action="store_true",
                   help="only add MISE without the refinement pass to the dense cases of --out (same --work)")
    return p.parse_args(argv)


def per_case(folder: Path) -> Dict:
    return json.loads((folder / "inference_stats.json").read_text())["cases"]


def predict_nnocc(nnocc: NnoccTool, images: Path, output: Path, name: str, *extra) -> Dict:
    shutil.rmtree(output, ignore_errors=True)
    m = nnocc.predict(output, name, "--disable_tta", *extra, images=images)
    return {"command": m.to_dict(), "cases": per_case(output)}


def predict_nnunet(nnunet: NnunetTool, images: Path, output: Path) -> Dict:
    shutil.rmtree(output, ignore_errors=True)
    return {"command": nnunet.predict(output, "predict_native", "--disable_tta", images=images).to_dict()}


def main(argv=None) -> Path:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args = parse(argv)
    ws = Workspace(args.work, DATASET_ID, f"Dataset{DATASET_ID}_{DATASET_NAME}", args.device, 0.0)
    if args.plain_only:
        return add_plain_mise(args, ws)
    images, labels = args.work / "native" / "imagesTs", args.work / "native" / "labelsTs"
    paint_native_cases(args.kits23, args.cases, images, labels)
    results: Dict = {"date": datetime.date.today().isoformat(), "machine": machine(),
                     "commands": [f"python -m benchmarks.kits_inference {' '.join(sys.argv[1:] or argv or [])}"],
                     "models": trained_models(args.curves, args.work.name),
                     "defaults": {"mise_children": InferenceSettings.mise_children}, "cases": {}}
    for case in args.cases:
        case_images = args.work / "native" / f"single_{case}"
        case_images.mkdir(parents=True, exist_ok=True)
        link = case_images / f"{case}_0000.nii.gz"
        if not link.exists():
            link.symlink_to((images / f"{case}_0000.nii.gz").resolve())
        results["cases"][case] = one_case(args, ws, case_images, case)
        save_json(results, args.out)
    return args.out


def trained_models(curves: Path, target: str) -> Dict:
    """Budget and iterations of the models in the workspace, from the learning-curves results."""
    if not curves.is_file():
        return {}
    run = json.loads(curves.read_text()).get("runs", {}).get(target, {})
    return {tool: {"budget_minutes": run.get("budget_minutes"), "iterations": figures["train"].get("iterations")}
            for tool, figures in run.get("tools", {}).items()}


def one_case(args, ws: Workspace, images: Path, case: str) -> Dict:
    """Each case in its own command, so that time and peak memory belong to one scan."""
    nnocc = NnoccTool(ws, 0.0, sys.executable, configuration=args.configuration)
    mise_out = ws.root / "native" / f"nnocc_mise_{case}"
    figures: Dict = {"nnocc_mise": predict_nnocc(nnocc, images, mise_out, f"native_mise_{case}")}
    if case in args.dense:
        dense_out = ws.root / "native" / f"nnocc_dense_{case}"
        figures["nnocc_dense"] = predict_nnocc(nnocc, images, dense_out, f"native_dense_{case}", "--dense")
        figures["mise_dense_agreement"] = agreement(mise_out, dense_out)
        figures |= plain_mise(nnocc, images, case)
        figures["sweep"] = mise_sweep(nnocc, images, case, args.sweep)
    venv = NnunetTool.find(args.nnunet_venv)
    if venv is not None:
        figures["nnunet"] = predict_nnunet(NnunetTool(ws, venv), images, ws.root / "native" / f"nnunet_{case}")
    return figures


def plain_mise(nnocc: NnoccTool, images: Path, case: str) -> Dict:
    """MISE alone against dense (no second pass around small structures in either, as dense has none)."""
    out = nnocc.ws.root / "native" / f"nnocc_mise_plain_{case}"
    figures = {"nnocc_mise_plain": predict_nnocc(nnocc, images, out, f"native_mise_plain_{case}", "--no_refinement")}
    kept = structures_kept(out, nnocc.ws.root / "native" / f"nnocc_dense_{case}")
    figures["mise_plain_dense_agreement"] = kept.pop("agreement")
    figures["nnocc_mise_plain"] |= kept
    return figures


def mise_sweep(nnocc: NnoccTool, images: Path, case: str, settings) -> Dict:
    """MISE alone with other lattices and margins than the plan's: what each saves and what it loses
    against dense."""
    sweep = {}
    dense = nnocc.ws.root / "native" / f"nnocc_dense_{case}"
    for setting in settings:
        extra = sweep_arguments(setting)
        name = "mise_" + "_".join(setting.split(":")) + f"_{case}"
        out = nnocc.ws.root / "native" / f"nnocc_{name}"
        run = predict_nnocc(nnocc, images, out, f"native_{name}", "--no_refinement", *extra)
        sweep[setting] = run | structures_kept(out, dense)
    return sweep


SWEEP_FLAGS = ("--coarse_spacing_mm", "--uncertainty_margin", "--mise_children", "--aux_hint_factor")


def sweep_arguments(setting: str) -> List[str]:
    """'MM:MARGIN[:CHILDREN[:HINT]]' -> nnocc_predict's arguments ('plan' or a missing part: the default)."""
    values = setting.split(":")
    if not 2 <= len(values) <= len(SWEEP_FLAGS):
        raise SystemExit(f"--sweep {setting}: expected MM:MARGIN[:CHILDREN[:HINT]]")
    return [a for flag, value in zip(SWEEP_FLAGS, values) if value != "plan" for a in (flag, value)]


def structures_kept(mise: Path, dense: Path) -> Dict:
    """Voxel agreement with dense, and what it hides on a whole scan (see ``compare_structures``), over a
    folder; each pair of label maps is read once."""
    figures: Dict = {"dice_against_dense": {}, "dense_components": 0, "components_missed": 0, "largest_missed_voxels": 0}
    same = total = 0
    for path in sorted(mise.glob("*.nii.gz")):
        ours, reference = read_image(path)[0], read_image(dense / path.name)[0]
        case = compare_structures(ours, reference)
        same, total = same + int((ours == reference).sum()), total + reference.size
        figures["dice_against_dense"] |= case["dice_against_dense"]
        figures["dense_components"] += case["dense_components"]
        figures["components_missed"] += case["components_missed"]
        figures["largest_missed_voxels"] = max(figures["largest_missed_voxels"], case["largest_missed_voxels"])
    return figures | {"agreement": same / max(total, 1)}


def compare_structures(ours: np.ndarray, reference: np.ndarray) -> Dict:
    """Per label, Dice against the reference, and the reference's connected components that ``ours``
    does not touch at all (lost small structures), with the largest of them in voxels."""
    dice: Dict[str, float] = {}
    missed_sizes: list = []
    total = 0
    for value in (int(v) for v in np.unique(reference) if v):
        a, b = ours == value, reference == value
        dice[str(value)] = float(2 * (a & b).sum() / max(int(a.sum() + b.sum()), 1))
        components = cc3d.connected_components(b.view(np.uint8), connectivity=26)
        sizes = np.bincount(components.ravel())
        touched = np.zeros(len(sizes), dtype=bool)
        touched[np.unique(components[a])] = True
        total += len(sizes) - 1
        missed_sizes += sizes[1:][~touched[1:]].tolist()
    return {"dice_against_dense": dice, "dense_components": total, "components_missed": len(missed_sizes),
            "largest_missed_voxels": int(max(missed_sizes, default=0))}


def add_plain_mise(args, ws: Workspace) -> Path:
    """``--plain-only``: add MISE-without-refinement figures to an earlier run's dense cases (same --work)."""
    results = json.loads(args.out.read_text())
    nnocc = NnoccTool(ws, 0.0, sys.executable, configuration=args.configuration)
    for case, figures in results["cases"].items():
        if "nnocc_dense" in figures:
            figures |= plain_mise(nnocc, args.work / "native" / f"single_{case}", case)
    earlier = results.pop("command", None)     # runs from before "commands" was a list
    results["commands"] = ([earlier] if earlier else []) + results.get("commands", []) + \
        [f"python -m benchmarks.kits_inference {' '.join(sys.argv[1:])}"]
    save_json(results, args.out)
    return args.out


if __name__ == "__main__":
    print(main())
