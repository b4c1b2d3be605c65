"""The benchmark readme's sections on the configurations: all of them beside nnU-Net
(``python -m benchmarks.configurations``), SCONet with its ablation (``python -m benchmarks.sconet``)
and SwIPE with its ablation (``python -m benchmarks.swipe``)."""
from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from benchmarks.report import HERE, _fmt, _ratio


def _table_row(lines: List[str], tools: Dict, names: List[str], label: str, getter, digits: int = 2) -> None:
    """One row of a per-tool table: the getter's value for each tool, a dash where it has none."""
    values = []
    for n in names:
        try:
            values.append(_fmt(getter(tools[n]), digits))
        except (KeyError, TypeError):
            values.append("–")
    lines.append(f"| {label} | " + " | ".join(values) + " |")


def _tool_table(lines: List[str], tools: Dict):
    """Starts a per-tool table (a column per tool) and returns the function that adds its rows."""
    names = list(tools)
    lines += ["| figure | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    return partial(_table_row, lines, tools, names)


def _latest_run(pattern: str) -> Optional[Tuple[Path, Dict]]:
    found = sorted((HERE / "results").glob(pattern))
    return (found[-1], json.loads(found[-1].read_text())) if found else None


def _how_it_ran(data: Dict, path: Path, dataset: str, conditions: str) -> str:
    """The command(s), date, machine and conditions of a comparison at one memory target and budget."""
    return (f"`{data['command']}` on {data['date']} ({data['machine'].get('processor')}, {data['machine'].get('cores')} "
            f"cores, {data['device']}), {dataset}, both tools planned for {data['memory_target_gb']:g} GB, "
            f"{data['budget_minutes']:g} minutes of training each{conditions}; raw figures in "
            f"`{path.relative_to(HERE.parent)}`."
            + "".join(f" Then, on the same work folder, `{c}`." for c in data.get("commands", [])[1:]))


def _per_class_rows(row, tools: Dict, metrics: List[Tuple[str, str, int]]) -> None:
    """Per class (as the first tool's evaluation lists them), one row per (label, metric key, digits)."""
    for cls in [c for c in next(iter(tools.values()))["evaluation"] if c != "mean"]:
        for label, key, digits in metrics:
            row(f"{label} {cls}" + (" (mm)" if key == "hd95" else ""),
                lambda t, c=cls, k=key: t["evaluation"][c][k], digits)


def configurations_section() -> List[str]:
    """Every configuration against nnU-Net (``python -m benchmarks.configurations``), latest run."""
    latest = _latest_run("*_configurations_*.json")
    if latest is None:
        return []
    path, data = latest
    tools = data["tools"]
    names = list(tools)
    lines = ["", "## Configurations side by side: 3d_occ, 3d_ossnet and nnU-Net", "",
             _how_it_ran(data, path, data["dataset"], ""), ""]
    row = _tool_table(lines, tools)

    plans = data.get("nnocc_plans", {}).get("configurations", {})
    lines.append("| parameters (planned) | " + " | ".join(
        f"{plans[n]['parameters'] / 1e6:.2f} M" if n in plans else "–" for n in names) + " |")
    lines.append("| patch, batch, points (planned) | " + " | ".join(
        f"{plans[n]['patch_size']}, {plans[n]['batch_size']}, {plans[n]['points']}" if n in plans else "–"
        for n in names) + " |")
    lines.append("| planner's training estimate (MB, above the idle process) | " + " | ".join(
        f"{plans[n]['estimated_peak_gb'] * 1024:.0f}" if n in plans else "–" for n in names) + " |")
    at_points = data.get("training_memory_at_recipe_points", {})
    lines.append("| training at 2^14 points, planned patch and batch (MB, 3 steps above the idle process) | " + " | ".join(
        _fmt(at_points[n]["peak_mb"], 0) if n in at_points else "–" for n in names) + " |")
    row("training peak RSS, end of training (MB)", lambda t: t["train"]["peak_memory_mb_in_process"], 0)
    row("peak RSS of the whole command, final validation included (MB)", lambda t: t["train"]["peak_rss_mb"], 0)
    row("seconds per iteration", lambda t: t["train"]["seconds_per_iteration"])
    row("iterations in the budget", lambda t: t["train"]["iterations"], 0)
    row("inference seconds per case (TTA)", lambda t: t["predict"]["seconds_per_case"], 1)
    row("inference peak RSS (MB)", lambda t: t["predict"]["peak_rss_mb"], 0)
    _per_class_rows(row, tools, [("Dice", "dice", 3), ("SD@1mm", "surface_dice@1", 3), ("HD95", "hd95", 1)])
    seeded = tools.get("3d_ossnet", {}).get("seeded_vs_unseeded_mise")
    if seeded:
        lines += ["", "OSS-Net's encoder-seeded MISE against the original MISE on the same network (no TTA, no "
                  "refinement pass): seeded "
                  f"{_fmt(seeded['seeded']['seconds_total'], 2)} s and {_fmt(seeded['seeded']['queries'], 0)} queries per "
                  f"case, unseeded {_fmt(seeded['unseeded']['seconds_total'], 2)} s and "
                  f"{_fmt(seeded['unseeded']['queries'], 0)}: {_fmt(seeded['speed_up'], 2)}x faster, disagreeing on "
                  f"{_fmt(seeded['voxel_disagreement_percent'], 4)} % of the voxels (the paper: 2x, 6e-4 %)."]
    lines += ["", f"The plans recommended `{data['nnocc_plans'].get('recommended')}`: "
              f"{data['nnocc_plans'].get('reason')}."]
    lines += configuration_goals(tools, seeded, at_points)
    lines += ["", "How to read it: a short CPU budget is a few hundred iterations, enough for 3d_occ to find the "
              "kidneys but not for 3d_ossnet, whose recipe (the paper's: cross-entropy alone, batch 1, Lookahead "
              "over RAdam at 3e-4, 50 epochs on two GPUs there) still predicts background, nor for nnU-Net (tens of "
              "iterations). The Dice rows compare speed of learning on modest hardware, not converged models. On a "
              "CPU, memory is the process's resident set: the planner's estimate counts training above the idle "
              "process (Python, torch and the loader take about 0.5 GB more), and 3d_ossnet's whole-command peak "
              "comes from the final validation, which encodes whole cases under eight mirrorings. The MISE "
              "figures compare one network with itself and hold whatever its training."]
    return lines


def configuration_goals(tools: Dict, seeded: Optional[Dict], at_points: Dict) -> List[str]:
    """The issue's goals for 3d_ossnet, met or missed as measured."""
    rows = []
    unet = tools.get("nnunet", {})
    if "3d_ossnet" in at_points and unet:
        ratio = _ratio(at_points["3d_ossnet"]["peak_mb"], unet["train"].get("peak_rss_mb"))
        rows.append(("3d_ossnet training memory at 2^14 points at most 1/5 of nnU-Net's (the paper: 2.59 against "
                     "14.41 GB)", f"{_fmt(ratio, 2)} of nnU-Net's training peak", ratio is not None and ratio <= 0.2))
    if seeded:
        rows.append(("seeded MISE about 2x faster than unseeded (the paper: 2x)", f"{_fmt(seeded['speed_up'], 2)}x",
                     seeded["speed_up"] >= 1.8))
        rows.append(("seeded and unseeded MISE disagree on about 6e-4 % of the voxels (the paper)",
                     f"{_fmt(seeded['voxel_disagreement_percent'], 4)} %", seeded["voxel_disagreement_percent"] <= 1e-3))
    if not rows:
        return []
    return ["", "| goal | measured | met |", "|---|---|---|"] + \
        [f"| {goal} | {value} | {'met' if met else 'missed'} |" for goal, value, met in rows]


def sconet_section() -> List[str]:
    """3d_sconet against 3d_occ and nnU-Net, with the descriptor ablation (``python -m benchmarks.sconet``)."""
    latest = _latest_run("[0-9]*_sconet_*.json")       # dated runs, not the memory model's
    if latest is None:
        return []
    path, data = latest
    tools = data["tools"]
    lines = ["", "## SCONet (3d_sconet): a contour point cloud instead of the image", "",
             _how_it_ran(data, path, f"{data['dataset']} (generated, {' x '.join(map(str, data['shape']))} voxels)",
                         ", no test-time mirroring"), ""]
    row = _tool_table(lines, tools)

    row("parameters (M)", lambda t: t["inference_cost"]["parameters"] / 1e6, 2)
    row("inference GFLOPs per case", lambda t: t["inference_cost"]["gflops"], 1)
    row("inference peak memory above model and case (MB)", lambda t: t["inference_cost"]["peak_memory_mb"], 0)
    row("inference seconds per case", lambda t: t["inference_cost"]["seconds"], 1)
    row("contour extraction, preprocessing (MB above the case)",
        lambda t: t["inference_cost"]["contour_extraction"]["peak_memory_mb"], 0)
    row("contour extraction (seconds)", lambda t: t["inference_cost"]["contour_extraction"]["seconds"], 1)
    row("training seconds per iteration", lambda t: t["train"]["seconds_per_iteration"])
    row("iterations in the budget", lambda t: t["train"]["iterations"], 0)
    _per_class_rows(row, tools, [("Dice", "dice", 3), ("SD@1mm", "surface_dice@1", 3), ("SD@3mm", "surface_dice@3", 3)])
    ratio = data.get("ratios_to_nnunet", {}).get("3d_sconet")
    if ratio:
        met = ratio["peak_memory_mb"] <= 0.2 and ratio["gflops"] <= 0.2
        lines += ["", f"3d_sconet / nnU-Net per case: memory {_fmt(ratio['peak_memory_mb'], 3)}, GFLOPs "
                  f"{_fmt(ratio['gflops'], 3)}, parameters {_fmt(ratio['parameters'], 3)} (goal: memory and GFLOPs at "
                  f"most 0.2; {'met' if met else 'missed'}). The paper: 0.83 / 4.48 GB and 120 / 2,980 GFLOPs per "
                  f"256 x 256 x 100 volume."]
    ablation = data.get("descriptor_ablation", {})
    if ablation:
        classes = [c for c in ablation["gradient"] if c != "mean"]
        lines += ["", "The paper's descriptor ablation (its Table 2: none .788, intensity .820, 3D-SURF .867 mean "
                  "Dice), 3d_sconet at the same budget:", "",
                  "| descriptor | " + " | ".join(f"Dice {c}" for c in classes) + " | mean Dice | mean SD@1mm |",
                  "|---|" + "---|" * (len(classes) + 2)]
        variants = dict(ablation)
        if "intensity_augmentation" in data:
            variants["gradient, intensity augmentation before a fresh extraction per step"] = data["intensity_augmentation"]
        for name, figures in variants.items():
            lines.append(f"| {name} | " + " | ".join(_fmt(figures[c]["dice"], 3) for c in classes)
                         + f" | {_fmt(figures['mean']['dice'], 3)} | {_fmt(figures['mean']['surface_dice@1'], 3)} |")
        augmented = data.get("intensity_augmentation", {}).get("train")
        if augmented:
            lines += ["", f"With intensity augmentation and a fresh extraction per step, a step took "
                      f"{_fmt(augmented['seconds_per_iteration'], 2)} s ({_fmt(augmented['iterations'], 0)} in the budget) "
                      f"against {_fmt(tools['3d_sconet']['train']['seconds_per_iteration'], 2)} s "
                      f"({_fmt(tools['3d_sconet']['train']['iterations'], 0)})."]
    lines += ["", "How to read it: on a CPU, inference memory is the growth of the resident set while one "
              "preprocessed case is predicted, above the loaded model and case (each tool's preprocessing runs in a "
              "process of its own, benchmarks/inference_cost.py); GFLOPs are torch's flop counter over the same "
              "prediction (matrix products and convolutions). 3d_sconet's contour extraction (numpy and SimpleITK, "
              "no FLOPs counted) is preprocessing, as the paper's offline extraction and nnU-Net's resampling are: "
              "its own rows give what it costs. The descriptor is ours (oriented gradient sums over an 11^3 "
              "neighbourhood, preprocessing/contours.py), not the paper's 3D-SURF binary."]
    return lines


def swipe_section() -> List[str]:
    """3d_swipe against 3d_ossnet, 3d_occ and nnU-Net, per patch and trained, with the paper's ablation
    (``python -m benchmarks.swipe``)."""
    latest = _latest_run("[0-9]*_swipe_*.json")
    if latest is None:
        return []
    path, data = latest
    tools, patches = data["tools"], data["per_patch"]
    lines = ["", "## SwIPE (3d_swipe): one implicit embedding per patch cell", "",
             _how_it_ran(data, path, f"{data['dataset']} (generated, {' x '.join(map(str, data['shape']))} voxels)",
                         ", no test-time mirroring"), "",
             "Per patch (the paper's table 1: SwIPE 4.4 M parameters / 71.6 GFLOPs, U-Net 16.3 M / 800.9 on BCV's "
             "96^3 crops). An occupancy network's patch is its encoding plus one query per voxel (the dense output "
             "a voxel network gives; MISE asks far fewer, see the per-case rows below):", "",
             "| model | patch | parameters (M) | encoding GFLOPs | MFLOPs per query | GFLOPs per patch, dense |",
             "|---|---|---|---|---|---|"]
    for name, cost in patches.items():
        lines.append(f"| {name} | {' x '.join(map(str, cost['patch_size']))} | {_fmt(cost['parameters'] / 1e6, 2)} | "
                     f"{_fmt(cost.get('gflops_encode'), 1)} | {_fmt(cost.get('mflops_per_query'), 3)} | "
                     f"{_fmt(cost['gflops_per_patch'], 1)} |")
    lines += ["", "Trained for the same budget:", ""]
    row = _tool_table(lines, tools)
    row("inference GFLOPs per case", lambda t: t["inference_cost"]["gflops"], 1)
    row("inference peak memory above model and case (MB)", lambda t: t["inference_cost"]["peak_memory_mb"], 0)
    row("inference seconds per case", lambda t: t["inference_cost"]["seconds"], 1)
    row("training seconds per iteration", lambda t: t["train"]["seconds_per_iteration"])
    row("iterations in the budget", lambda t: t["train"]["iterations"], 0)
    _per_class_rows(row, tools, [("Dice", "dice", 3), ("SD@1mm", "surface_dice@1", 3), ("SD@3mm", "surface_dice@3", 3)])
    ablation = data.get("ablation", {})
    variants = {k: v for k, v in ablation.items() if isinstance(v, dict)}
    if variants:
        classes = [c for c in next(iter(variants.values())) if c not in ("mean", "train")]
        weighted = [n for n in tools if "background" in n]
        sampled = (f" (the plan before background weighting: every label present, background included, drew the same "
                   f"number of points; `{weighted[0]}` above is the plan's default now)" if weighted else "")
        lines += ["", f"The paper's ablation (2D, cumulative: MEA +2.1, image decoder +0.6, SPO +1.3 Dice points), "
                  f"3d_swipe for {_fmt(ablation['budget_minutes'], 1)} minutes each{sampled}:", "",
                  "| variant | " + " | ".join(f"Dice {c}" for c in classes) + " | mean Dice | mean SD@1mm | iterations |",
                  "|---|" + "---|" * (len(classes) + 3)]
        for name, figures in variants.items():
            lines.append(f"| {name.replace('_', ' ')} | " + " | ".join(_fmt(figures[c]["dice"], 3) for c in classes)
                         + f" | {_fmt(figures['mean']['dice'], 3)} | {_fmt(figures['mean']['surface_dice@1'], 3)} | "
                         f"{_fmt(figures['train']['iterations'], 0)} |")
    lines += ["", "How to read it: FLOPs are torch's flop counter (matrix products and convolutions); a SwIPE query at "
              "inference is decoded from its cell and the cell's six face neighbours and averaged (the paper's code), "
              "seven decodings, which is why its dense patch costs more than its encoding suggests. Per case, "
              "inference memory is the growth of the resident set while one preprocessed case is predicted, above the "
              "loaded model and case (benchmarks/inference_cost.py). Short CPU budgets compare speed of learning, not "
              "converged models; the ablation runs are shorter still, so differences of a few hundredths are noise."]
    return lines
