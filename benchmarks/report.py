"""Results JSON, the ratios nnocc / nnU-Net, the goals table, plots, and benchmarks/readme.md."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Dict, List, Optional

HERE = Path(__file__).resolve().parent


def _get(d: Dict, *keys):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def _ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return None if a is None or b in (None, 0) else a / b


def ratios(results: Dict) -> Dict:
    if "nnunet" not in results:
        return {}
    n, u = results["nnocc"], results["nnunet"]
    out = {
        "plan_and_preprocess_seconds": _ratio(_get(n, "plan_and_preprocess", "seconds"), _get(u, "plan_and_preprocess", "seconds")),
        "plan_and_preprocess_peak_rss": _ratio(_get(n, "plan_and_preprocess", "peak_rss_mb"), _get(u, "plan_and_preprocess", "peak_rss_mb")),
        "training_peak_rss": _ratio(_get(n, "train", "peak_rss_mb"), _get(u, "train", "peak_rss_mb")),
        "training_peak_gpu": _ratio(_get(n, "train", "peak_gpu_mb"), _get(u, "train", "peak_gpu_mb")),
        "seconds_per_iteration": _ratio(_get(n, "train", "seconds_per_iteration"), _get(u, "train", "seconds_per_iteration")),
        "inference_seconds_per_case": _ratio(_get(n, "predict", "seconds_per_case"), _get(u, "predict", "seconds_per_case")),
        "inference_peak_rss": _ratio(_get(n, "predict", "peak_rss_mb"), _get(u, "predict", "peak_rss_mb")),
    }
    for cls, values in n["evaluation"].items():
        for metric in ("dice", "surface_dice@1", "surface_dice@3"):
            theirs = _get(u, "evaluation", cls, metric)
            if values.get(metric) is not None and theirs is not None:
                out[f"{metric}_difference_{cls}"] = values[metric] - theirs
    return out


def goals(results: Dict) -> List[Dict]:
    n, r = results["nnocc"], results.get("ratios", {})
    mise = n.get("mise_vs_dense", {})
    rows = [{"goal": "MISE: at most 15 % of dense queries", "value": _get(mise, "mise", "query_fraction"),
             "met": (_get(mise, "mise", "query_fraction") or 1) <= 0.15},
            {"goal": "MISE: at least 99.99 % voxel agreement with dense", "value": mise.get("voxel_agreement"),
             "met": (mise.get("voxel_agreement") or 0) >= 0.9999}]
    if "nnunet" not in results:
        return rows
    classes = [c for c in n["evaluation"] if c != "mean"]
    dice_ok = all((r.get(f"dice_difference_{c}") or -1) >= -0.02 for c in classes)
    sd_ok = all((r.get(f"surface_dice@1_difference_{c}") or -1) > 0 for c in classes)
    rows += [
        {"goal": "Dice per class at least nnU-Net's - 0.02", "value": {c: r.get(f"dice_difference_{c}") for c in classes}, "met": dice_ok},
        {"goal": "Surface Dice (1 mm) above nnU-Net's", "value": {c: r.get(f"surface_dice@1_difference_{c}") for c in classes}, "met": sd_ok},
        {"goal": "peak training memory at most 1/3 of nnU-Net's", "value": r.get("training_peak_gpu") or r.get("training_peak_rss"),
         "met": (r.get("training_peak_gpu") or r.get("training_peak_rss") or 1) <= 1 / 3},
        {"goal": "inference time per case at most 1/2 of nnU-Net's", "value": r.get("inference_seconds_per_case"),
         "met": (r.get("inference_seconds_per_case") or 1) <= 0.5},
        {"goal": "plan-and-preprocess no slower than nnU-Net's", "value": r.get("plan_and_preprocess_seconds"),
         "met": (r.get("plan_and_preprocess_seconds") or 2) <= 1.0}]
    return rows


def write_results(results: Dict, folder: Path) -> Path:
    results["goals"] = goals(results)
    machine = re.sub(r"[^A-Za-z0-9]+", "-", results["machine"].get("gpu") or results["device"] + "-" +
                     str(results["machine"]["cores"]) + "cores").strip("-").lower()
    path = folder / f"{results['date']}_{machine}_{results['dataset']}.json"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=float) + "\n")
    return path


def load_result(name: str) -> Optional[Dict]:
    """A study's raw figures from benchmarks/results/, or None before it has run."""
    path = HERE / "results" / name
    return json.loads(path.read_text()) if path.is_file() else None


def met_text(value: Optional[bool]) -> str:
    return "not checked" if value is None else "yes" if value else "no"


def _fmt(value, digits=3) -> str:
    if value is None:
        return "–"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_fmt(v, digits)}" for k, v in value.items())
    if isinstance(value, bool):
        return "yes" if value else "no"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def plots(results: Dict, folder: Path) -> List[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    study = results["nnocc"].get("output_resolution")
    if study:
        factors = sorted(study, key=float, reverse=True)
        fig, ax = plt.subplots(1, 2, figsize=(10, 4))
        x = [1 / float(f) ** 3 for f in factors]
        ax[0].plot(x, [study[f]["seconds"] for f in factors], "o-", label="nnocc (MISE)")
        ax[0].plot(x, [study[factors[0]]["seconds"] * v for v in x], "k:", label="proportional to voxels")
        ax[0].set_xlabel("output voxels (x input)"), ax[0].set_ylabel("seconds"), ax[0].legend()
        ax[1].plot(x, [study[f]["query_fraction"] * 100 for f in factors], "o-")
        ax[1].set_xlabel("output voxels (x input)"), ax[1].set_ylabel("queries, % of dense")
        fig.suptitle("nnocc inference cost against output resolution")
        fig.tight_layout()
        fig.savefig(folder / "output_resolution.png", dpi=90)
        plt.close(fig)
        names.append("output_resolution.png")
    rows = results["nnocc"].get("training_memory_vs_patch")
    if rows:
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot([r["voxels"] for r in rows], [r["measured_mb"] for r in rows], "o-", label="nnocc measured")
        ax.plot([r["voxels"] for r in rows], [r["estimated_mb"] for r in rows], "x--", label="nnocc planner estimate")
        unet = _get(results, "nnunet", "train", "peak_rss_mb")
        if unet:
            ax.axhline(unet, color="tab:red", label="nnU-Net 3d_fullres (its patch)")
        ax.set_xlabel("patch voxels"), ax.set_ylabel("peak training memory (MB)"), ax.legend()
        fig.tight_layout()
        fig.savefig(folder / "training_memory.png", dpi=90)
        plt.close(fig)
        names.append("training_memory.png")
    return names


MEMORY_MODEL_RESULTS = (("convocc", "memory_model_cpu.json"), ("ossnet", "memory_model_ossnet_cpu.json"),
                        ("sconet", "memory_model_sconet_cpu.json"), ("swipe", "memory_model_swipe_cpu.json"))


def memory_model_section() -> List[str]:
    """The planner's memory model against measured peaks, per architecture, with the current
    calibration (``python -m benchmarks.memory_model --architecture NAME``)."""
    from benchmarks.memory_model import model_kwargs
    from nnocc.architectures.registry import architecture_class
    from nnocc.planning.memory_model import training_footprint

    lines = ["", "## The planner's memory model", "",
             "Each architecture's coefficients are fitted to its own measured peaks (CPU peak RSS above the idle "
             "process, float32 training); the estimate below uses the coefficients the planner uses now.", ""]
    for architecture, name in MEMORY_MODEL_RESULTS:
        path = HERE / "results" / name
        if not path.is_file():
            continue
        data = json.loads(path.read_text())
        cls = architecture_class(architecture)
        errors = []
        rows = []
        for r in data["rows"]:
            kwargs = model_kwargs(architecture, r["preset"], r.get("kwargs"))
            estimate = training_footprint(architecture, kwargs, r["patch"], r["batch"], r["points"]).estimated_bytes()
            estimate /= 2 ** 20
            errors.append(estimate / r["measured_mb"] - 1)
            preset = r["preset"] + (" (strides " + json.dumps(r["kwargs"]["strides"]) + ")" if "strides" in r.get("kwargs", {}) else "")
            rows.append(f"| {preset} | {r['patch']} | {r['batch']} | {r['points']} | {estimate:.0f} | "
                        f"{r['measured_mb']:.0f} | {estimate / r['measured_mb']:.2f} |")
        lines += [f"### {architecture} ({cls.configuration_name}): largest error {100 * max(abs(e) for e in errors):.0f} %",
                  "", f"`python -m benchmarks.memory_model --architecture {architecture} --fit "
                  f"--out {path.relative_to(HERE.parent)}` ({data['device']}):", "",
                  "| preset | patch | batch | points | estimated MB | measured MB | estimate / measured |",
                  "|---|---|---|---|---|---|---|", *rows, ""] + ([data["note"][0].upper() + data["note"][1:] + ".", ""]
                                                                   if data.get("note") else [])
    return lines


def stitching_section() -> List[str]:
    """Nearest-tile against Gaussian-blended stitching (``python -m benchmarks.stitching``)."""
    path = HERE / "results" / "stitching_cpu.json"
    if not path.is_file():
        return []
    data = json.loads(path.read_text())
    summary = data["summary"]
    classes = [k[len("dice_"):] for k in summary["nearest"] if k.startswith("dice_")]
    lines = ["", "## Stitching tiles: nearest tile centre against a Gaussian blend", "",
             f"{data['cases']} generated CT cases of about {' x '.join(map(str, data['shape']))} voxels (several tiles "
             f"each), fold 0 of the demo's model, no TTA, no refinement pass ({data['device']}, "
             f"`python -m benchmarks.stitching -m MODEL --out {path.relative_to(HERE.parent)}`). The two modes "
             f"disagree on {100 * summary['disagreement_fraction']:.3f} % of the voxels.", "",
             "| stitching | seconds per case | " + " | ".join(f"Dice {c} | SD@1mm {c}" for c in classes) + " |",
             "|---" * (2 + 2 * len(classes)) + "|"]
    for mode in ("nearest", "gaussian"):
        m = summary[mode]
        lines.append(f"| {mode} | {m['seconds_per_case']:.1f} | " +
                     " | ".join(f"{m['dice_' + c]:.3f} | {m['surface_dice@1_' + c]:.3f}" for c in classes) + " |")
    near, blend = summary["nearest"], summary["gaussian"]
    lines += ["", f"The model (the demo's short training) sees fields of view larger than it was trained on, hence "
              f"the low absolute figures; the rows differ only in stitching. A blend costs "
              f"{blend['seconds_per_case'] / near['seconds_per_case']:.1f}x the time (every point near a seam is "
              f"decoded by up to eight tiles) for a kidney Dice "
              f"{blend['dice_' + classes[0]] - near['dice_' + classes[0]]:+.3f} better, so `nearest` stays the "
              f"plan's default and `--stitching gaussian` is there for those who want the last hundredth."]
    return lines


def _targets_line(results: Dict) -> str:
    ours, theirs = results.get("nnocc_memory_target_gb"), results.get("nnunet_memory_target_gb")
    if theirs is None:   # the first edition: unequal targets, which flatters nnocc's memory and speed ratios
        return (f"- nnocc planned with `--gpu_memory_target {ours}` and nnU-Net with its default 3d_fullres plan "
                "(about 8 GB): a small network against a large one, so the memory and speed ratios above compare "
                "targets as much as tools; the learning curves below plan both for the same target.")
    return f"- Both tools planned for the same memory target, {ours:g} GB (`--memory-target`)."


def _side_by_side(n: Dict, u: Optional[Dict]) -> List[str]:
    lines = ["## Side by side", "", "| stage | figure | nnocc | nnU-Net | ratio |", "|---|---|---|---|---|"]
    for stage, figure, key in (("plan and preprocess", "seconds", "seconds"), ("plan and preprocess", "peak RSS (MB)", "peak_rss_mb"),
                               ("train fold 0", "seconds per iteration", "seconds_per_iteration"),
                               ("train fold 0", "iterations in budget", "iterations"),
                               ("train fold 0", "peak RSS (MB)", "peak_rss_mb"), ("train fold 0", "peak GPU (MB)", "peak_gpu_mb"),
                               ("predict", "seconds per case", "seconds_per_case"), ("predict", "peak RSS (MB)", "peak_rss_mb")):
        section = {"plan and preprocess": "plan_and_preprocess", "train fold 0": "train", "predict": "predict"}[stage]
        a, b = _get(n, section, key), _get(u or {}, section, key)
        lines.append(f"| {stage} | {figure} | {_fmt(a, 2)} | {_fmt(b, 2)} | {_fmt(_ratio(a, b), 2)} |")
    return lines


def _accuracy(n: Dict, u: Optional[Dict]) -> List[str]:
    lines = ["## Accuracy on the held-back cases", "",
             "| structure | nnocc Dice | nnU-Net Dice | nnocc SD@1mm | nnU-Net SD@1mm | nnocc SD@3mm | nnU-Net SD@3mm | nnocc HD95 | nnU-Net HD95 |",
             "|---|---|---|---|---|---|---|---|---|"]
    for cls, values in n["evaluation"].items():
        theirs = _get(u or {}, "evaluation", cls) or {}
        lines.append(f"| {cls} | {_fmt(values['dice'])} | {_fmt(theirs.get('dice'))} | {_fmt(values['surface_dice@1'])} | "
                     f"{_fmt(theirs.get('surface_dice@1'))} | {_fmt(values['surface_dice@3'])} | "
                     f"{_fmt(theirs.get('surface_dice@3'))} | {_fmt(values['hd95'], 1)} | {_fmt(theirs.get('hd95'), 1)} |")
    return lines


def _mise_and_resolution(n: Dict) -> List[str]:
    mise = n.get("mise_vs_dense", {})
    lines = ["## MISE against dense evaluation (nnocc, no TTA)", "",
             f"Queries {_fmt(_get(mise, 'mise', 'query_fraction'))} of dense, voxel agreement {_fmt(mise.get('voxel_agreement'), 6)}, "
             f"time {_fmt(_get(mise, 'mise', 'seconds'), 1)} s against {_fmt(_get(mise, 'dense', 'seconds'), 1)} s "
             f"(whole command, {_fmt(_get(mise, 'mise', 'cases'))} cases).", ""]
    study = n.get("output_resolution", {})
    if study:
        lines += ["## Inference cost against output resolution (nnocc; nnU-Net predicts only at its target spacing)", "",
                  "No TTA, with the small-class refinement pass (the default), which adds queries near small structures; "
                  "hence more than the MISE-against-dense figure at input spacing.", "",
                  "| output spacing (x input) | seconds (whole command) | queries per case | % of dense | peak RSS (MB) |",
                  "|---|---|---|---|---|"]
        for factor, s in study.items():
            lines.append(f"| {factor} | {_fmt(s['seconds'], 1)} | {_fmt(s['queries'], 0)} | {_fmt(100 * s['query_fraction'], 2)} | "
                         f"{_fmt(s['peak_rss_mb'], 0)} |")
    rows = n.get("training_memory_vs_patch", [])
    if rows:
        lines += ["", "## Training memory against patch size (nnocc)", "", "| patch | measured MB | planner estimate MB |",
                  "|---|---|---|"]
        lines += [f"| {r['patch_size']} | {_fmt(r['measured_mb'], 0)} | {_fmt(r['estimated_mb'], 0)} |" for r in rows]
    return lines


def first_edition(results: Dict, path: Path) -> List[str]:
    """The generated-phantom study, its headings one level down from the second edition's."""
    n, u = results["nnocc"], results.get("nnunet")
    lines = ["## First edition: generated phantom, nnocc planned for 1 GB against nnU-Net's default", "",
             f"Latest run: `{'` then `'.join(results.get('commands', [results['command']]))}` on {results['date']} "
             f"({results['machine'].get('gpu') or results['machine']['processor']}, {results['machine']['cores']} cores, "
             f"device {results['device']}); raw figures in `{path.relative_to(HERE.parent)}`.", "",
             "Rerun: `python -m benchmarks.run --budget-minutes 30 --nnunet-venv ~/nnunet` (see `run.py` for options).", ""]
    lines += ["## Goals", "", "| goal | value (nnocc / nnU-Net ratio, or difference) | met |", "|---|---|---|"]
    lines += [f"| {g['goal']} | {_fmt(g['value'], 6 if 'agreement' in g['goal'] else 3)} | {_fmt(g['met'])} |"
              for g in results["goals"]]
    lines += ["", *_side_by_side(n, u), "", *_accuracy(n, u), "", *_mise_and_resolution(n)]
    lines += [""] + [f"![{i}]({i})" for i in plots(results, HERE)]
    return [line.replace("## ", "### ", 1) if line.startswith("## ") and i else line for i, line in enumerate(lines)]


def _method_lines(results: Dict) -> List[str]:
    return ["", "## How the comparison is made", "",
            "- Both tools run as their users run them, in separate environments, on the same generated dataset "
            "and machine, one after the other; wall time and the peak resident memory of each command's largest "
            "process are measured around the whole command (`measure.py`).",
            _targets_line(results),
            "- Training budget: nnocc's `--budget_minutes` (the poly learning rate runs on the budget's clock); nnU-Net "
            "through `nnunet_runner.py`, its standard trainer with 25-iteration epochs that stops at the budget, the "
            "same time-driven learning rate, under the standard trainer's name so `nnUNetv2_predict` loads it as usual.",
            "- Prediction: both with test-time mirroring, fold 0, one process for preprocessing and one for export.",
            "- Evaluation: `nnocc_evaluate_folder` for both, against the same references (SD = Surface Dice).",
            "- nnU-Net's environment, kept on the CPU build of torch: `python3 -m venv ~/nnunet && ~/nnunet/bin/pip "
            "install torch==2.13.0 && printf 'torch==2.13.0\\ndynamic-network-architectures<0.4\\n' > pins.txt && "
            "~/nnunet/bin/pip install nnunetv2 -c pins.txt` (this gives nnunetv2 2.6.0; an unpinned install pulls "
            "dynamic-network-architectures 0.4, timm, torchvision and a CUDA torch of several GB). The real label "
            "maps: `git clone https://github.com/neheller/kits23` (only `dataset/case_*/segmentation.nii.gz` is "
            "read, case_00000-case_00299).", ""]


def write_readme(results: Dict, path: Path) -> None:
    # imported here: those sections use this module's helpers
    from benchmarks.report_configurations import configurations_section, sconet_section, swipe_section
    from benchmarks.report_curves import second_edition
    from benchmarks.report_shapes import pipeline_section, reconstruction_section

    lines = second_edition() + first_edition(results, path)
    for section in (configurations_section, sconet_section, swipe_section, reconstruction_section, pipeline_section,
                    memory_model_section, stitching_section):
        lines += section()
    lines += _method_lines(results)
    (HERE / "readme.md").write_text("\n".join(lines))
