"""The benchmark readme's second-edition sections: learning curves on real anatomy at equal memory
targets (``benchmarks.learning_curves``) and the GPU study (``benchmarks.gpu_study``), with the goals
of the whole edition; KiTS-sized inference is ``benchmarks.report_kits``'s."""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from benchmarks.learning_curves import TOOLS
from benchmarks.mise_oracle import oracle_goals
from benchmarks.report import HERE, _fmt, _get, load_result, met_text
from benchmarks.report_kits import KITS_INFERENCE_FILE, ORACLE_FILE, kits_inference_goals, kits_inference_section

CURVES_FILE = "learning_curves_cpu.json"
CURVES_PLOT = "learning_curves.png"


def kits_score(point: Dict, key: str) -> Optional[float]:
    return _get(point, "evaluation", "kits23", "challenge", key)


def point_at(curve: List[Dict], minutes: float) -> Dict:
    """The curve's point at a mark, or {} where that mark was not scored (a run cut off before it)."""
    return next((p for p in curve if p["minutes"] == minutes), {})


def scored_marks(figures: Dict) -> List[float]:
    return [p["minutes"] for p in figures["curve"]]


def differences(a: List[Dict], b: List[Dict], key: str = "mean_dice") -> List[Tuple[float, float]]:
    """(minutes, a - b) at the marks both curves scored, in a's order."""
    both = [(p, q) for p in a if (q := point_at(b, p["minutes"]))]
    return [(p["minutes"], (kits_score(p, key) or 0) - (kits_score(q, key) or 0)) for p, q in both]


def crossings(a: List[Dict], b: List[Dict], key: str = "mean_dice") -> List[Tuple[float, float]]:
    """(from, to) minutes between which the sign of a - b changes (the curves cross), over the marks both scored."""
    signs = differences(a, b, key)
    return [(m0, m1) for (m0, d0), (m1, d1) in zip(signs, signs[1:]) if d0 * d1 < 0 or (d0 == 0) != (d1 == 0)]


def plot_order(tool: str) -> int:
    return TOOLS.index(tool) if tool in TOOLS else len(TOOLS)


def line_style(tool: str) -> Dict[str, str]:
    """One colour per tool in every panel (the targets' runs list their tools in the order they were
    trained), and the peer dashed."""
    return {"color": f"C{plot_order(tool)}", "linestyle": "--" if tool == "nnunet" else "-"}


def curves_plot(runs: Dict) -> Optional[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not runs:
        return None
    fig, axes = plt.subplots(len(runs), 2, figsize=(11, 4 * len(runs)), squeeze=False)
    for row, (target, run) in zip(axes, sorted(runs.items())):
        for ax, (key, label) in zip(row, (("mean_dice", "KiTS23 mean Dice"), ("mean_surface_dice", "mean Surface Dice"))):
            for tool in sorted(run["tools"], key=plot_order):
                points = [(p["minutes"], kits_score(p, key)) for p in run["tools"][tool]["curve"]]
                ax.plot([m for m, _ in points], [v for _, v in points], marker="o", label=tool, **line_style(tool))
            ax.set(xlabel="training minutes (wall clock)", ylabel=label, title=f"{label}, planned for {target}",
                   ylim=(0, 1))
            ax.grid(alpha=0.3)
            ax.legend()
    fig.tight_layout()
    fig.savefig(HERE / CURVES_PLOT, dpi=80)
    plt.close(fig)
    return CURVES_PLOT


def _end_of_budget_figures(tool: str, figures: Dict, run: Dict) -> Dict[str, str]:
    """One column of the end-of-budget table: figure name -> formatted value."""
    last = figures["curve"][-1] if figures["curve"] else {}
    plan = run.get("nnunet_plan" if tool == "nnunet" else "nnocc_plan", {})
    train, cost = figures["train"], figures.get("inference_cost", {})
    classes = _get(last, "evaluation", "classes") or {}
    column = {"trained on": trained_on(figures),
              "parameters (M)": _fmt(cost["parameters"] / 1e6 if "parameters" in cost else None, 2),
              "inference GFLOPs per case": _fmt(cost.get("gflops"), 0),
              "plan and preprocess (s, whole tool)": _fmt(plan.get("seconds"), 0),
              "training peak RSS (MB)": _fmt(train.get("peak_rss_mb"), 0) + (" (process)" if "peak_rss_source" in train else ""),
              "seconds per iteration": _fmt(train.get("seconds_per_iteration"), 2),
              "iterations in the budget": _fmt(train.get("iterations"), 0),
              "inference seconds per case": _fmt(_get(last, "predict", "seconds_per_case"), 1),
              "inference peak RSS (MB)": _fmt(_get(last, "predict", "peak_rss_mb"), 0),
              "MISE query share": _fmt(_get(last, "inference_stats", "query_fraction"))}
    for c in ("kidney", "tumor", "cyst"):
        for metric, label, digits in (("dice", "Dice", 3), ("surface_dice@1", "SD@1mm", 3), ("hd95", "HD95 (mm)", 1)):
            column[f"{label} {c}"] = _fmt(_get(classes, c, metric), digits)
    column["KiTS23 mean Dice"] = _fmt(kits_score(last, "mean_dice"))
    column["KiTS23 mean Surface Dice"] = _fmt(kits_score(last, "mean_surface_dice"))
    return column


def trained_on(figures: Dict) -> str:
    """Date and, where recorded, processor: the same machine name is not always the same speed."""
    cpu = figures.get("machine", {})
    processor = f", {cpu['cpu']} at {cpu['cpu_mhz']:.0f} MHz" if "cpu" in cpu and "cpu_mhz" in cpu else ""
    return f"{figures.get('date', '–')}{processor}"


def _end_of_budget_table(run: Dict) -> List[str]:
    columns = {tool: _end_of_budget_figures(tool, figures, run) for tool, figures in run["tools"].items()}
    rows = list(next(iter(columns.values())))
    lines = ["| figure | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    return lines + [f"| {row} | " + " | ".join(c[row] for c in columns.values()) + " |" for row in rows]


def _curve_table(run: Dict) -> List[str]:
    tools = list(run["tools"])
    marks = run["marks"]
    lines = ["| minutes | " + " | ".join(f"{t} Dice / SD" for t in tools) + " |", "|---|" + "---|" * len(tools)]
    for minutes in marks:
        cells = []
        for t in tools:
            p = point_at(run["tools"][t]["curve"], minutes)
            cells.append(f"{_fmt(kits_score(p, 'mean_dice'))} / {_fmt(kits_score(p, 'mean_surface_dice'))}")
        lines.append(f"| {minutes:g} | " + " | ".join(cells) + " |")
    return lines


def _crossing_text(run: Dict) -> List[str]:
    tools = run["tools"]
    if "nnunet" not in tools:
        return []
    out = []
    for tool, figures in tools.items():
        if tool == "nnunet":
            continue
        found = crossings(figures["curve"], tools["nnunet"]["curve"])
        common = differences(figures["curve"], tools["nnunet"]["curve"])
        if found:
            spans = ", ".join(f"between {a:g} and {b:g} minutes" for a, b in found)
            out.append(f"- {tool} and nnU-Net: the KiTS23 mean Dice curves cross {spans}.")
        elif common:     # no crossing: the side at the last common mark is the side at every one
            side = "above" if common[-1][1] > 0 else "below"
            out.append(f"- {tool} and nnU-Net: the curves do not cross within the budget "
                       f"({tool} {side} at every mark both scored).")
        else:
            out.append(f"- {tool} and nnU-Net: no mark scored by both.")
    return out


def _versions(run: Dict) -> str:
    version = run.get("versions", {}).get("nnunetv2")
    return f"; nnunetv2 {version}" if version else ""


def _find_best_text(run: Dict) -> List[str]:
    pick = run.get("find_best")
    if not pick:
        return []
    scores = ", ".join(f"{name} {_fmt(v.get('dice'))}" for name, v in pick["validation"].items())
    steps = "; ".join(pick["postprocessing"]) or "none"
    caveats = "".join(f" {text}: {', '.join(pick[key])}." for key, text in (
        ("not_rechosen_with", "Not weighed (trained on a machine whose workspace no longer held the others)"),
        ("retrained_since", "Trained again since this choice (their figures above are the earlier models')"))
        if pick.get(key))
    return [f"`nnocc_find_best_configuration -f 0` picks **{pick['best']}** among {', '.join(pick['among'])} "
            f"(fold 0's validation Dice at the end of the budget: {scores}; postprocessing: {steps}).{caveats}", ""]


def curves_section() -> List[str]:
    data = load_result(CURVES_FILE)
    if not data or not data.get("runs"):
        return []
    image = curves_plot(data["runs"])
    lines = ["", "## Learning curves on real anatomy, both tools planned for the same memory target", ""]
    for target, run in sorted(data["runs"].items()):
        commands = "` then `".join(dict.fromkeys(run["commands"]))
        lines += [f"### Planned for {target}", "",
                  f"`{commands}` ({run['machine'].get('gpu') or run['machine']['processor']}, "
                  f"{run['machine']['cores']} cores, {run['device']}), {run['dataset']}: real KiTS23 label maps, CT "
                  f"painted by nnocc; every tool trained fold 0 for {run['budget_minutes']:g} minutes; checkpoints "
                  f"scored on the held-back cases without mirroring{_versions(run)}; raw figures in "
                  f"`benchmarks/results/{CURVES_FILE}`.",
                  "", "At the end of the budget:", ""]
        lines += _end_of_budget_table(run)
        lines += ["", "KiTS23 mean Dice / mean Surface Dice (its regions and tolerances) against training time:", ""]
        lines += _curve_table(run) + [""] + _crossing_text(run) + [""] + _find_best_text(run)
        if run.get("notes"):
            lines += [f"Conditions: {run['notes']}", ""]
    if image:
        lines += [f"![{image}]({image})", ""]
    lines += ["How to read it: wall clock, one tool at a time on a quiet machine (the row 'trained on' says "
              "when and, where recorded, on which processor); a checkpoint's "
              "Dice is the model at that minute of a run annealed over the whole budget. The MISE query share "
              "is taken at the input spacing, which here is the training spacing: the plan's coarse lattice is "
              "then one voxel (no coarser than the smallest structure), and the refinement pass around small "
              "structures asks some points twice, so MISE saves nothing there; at KiTS23's own resolution (below) "
              "it does.", ""]
    return lines


GPU_FILE = "gpu_study.json"


def _gpu_training_rows(steps: Dict) -> List[str]:
    lines = ["| configuration | patch, batch, points | parameters (M) | s / iteration, AMP | s / iteration, float32 | "
             "AMP speed-up | GPU peak MB, AMP | GPU peak MB, float32 | planner estimate MB | estimate / peak (float32) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    names = sorted({k.rsplit("_", 1)[0].removeprefix("nnocc_train_") for k in steps if k.startswith("nnocc_train_")})
    for name in names:
        amp, fp32 = steps.get(f"nnocc_train_{name}_amp", {}), steps.get(f"nnocc_train_{name}_fp32", {})
        ref = amp if "patch_size" in amp else fp32
        if "patch_size" not in ref:
            reason = amp.get("error") or amp.get("skipped") or fp32.get("error") or fp32.get("skipped")
            lines.append(f"| {name} | {str(reason)[:120]} |" + " |" * 8)
            continue
        speedup = None if "seconds_per_iteration" not in amp or "seconds_per_iteration" not in fp32 else \
            fp32["seconds_per_iteration"] / amp["seconds_per_iteration"]
        ratio = None if "peak_allocated_mb" not in fp32 else ref["planner_estimate_mb"] / fp32["peak_allocated_mb"]
        lines.append(f"| {name} | {ref['patch_size']}, {ref['batch_size']}, {ref['points']} | "
                     f"{ref['parameters'] / 1e6:.2f} | {_fmt(amp.get('seconds_per_iteration'))} | "
                     f"{_fmt(fp32.get('seconds_per_iteration'))} | {_fmt(speedup, 2)} | "
                     f"{_fmt(amp.get('peak_allocated_mb'), 0)} | {_fmt(fp32.get('peak_allocated_mb'), 0)} | "
                     f"{_fmt(ref['planner_estimate_mb'], 0)} | {_fmt(ratio, 2)} |")
    nn = steps.get("nnunet_train", {})
    if "seconds_per_iteration" in nn:
        lines.append(f"| nnU-Net 3d_fullres | – | – | {_fmt(nn['seconds_per_iteration'])} | – | – | "
                     f"{_fmt(nn.get('peak_gpu_mb'), 0)} (nvidia-smi) | – | – | – |")
    return lines


def _gpu_inference_rows(data: Dict) -> List[str]:
    steps = data["steps"]
    nnocc, nnunet = steps.get("nnocc_predict_native_3d_occ", {}), steps.get("nnunet_predict_native", {})
    lines = ["| case | voxels (z, y, x) | spacing (mm) | nnocc seconds | nnocc GPU peak MB (allocated) | "
             "nnocc MISE query share |", "|---|---|---|---|---|---|"]
    for name, case in data.get("native_cases", {}).items():
        stats = _get(nnocc, "per_case", name.split("_0000")[0]) or {}
        lines.append(f"| {name.split('_0000')[0]} | {case['shape']} | {[round(s, 2) for s in case['spacing']]} | "
                     f"{_fmt(stats.get('seconds_total'), 1)} | {_fmt(stats.get('peak_memory_mb'), 0)} | "
                     f"{_fmt(stats.get('query_fraction'), 4)} |")
    cases = max(len(data.get("native_cases", {})), 1)
    lines += ["", "| whole command | seconds per case | GPU peak MB (nvidia-smi, CUDA context included) | peak RSS MB |",
              "|---|---|---|---|"]
    for label, step in (("nnocc_predict (3d_occ)", _get(nnocc, "command")), ("nnUNetv2_predict", nnunet)):
        if step and "seconds" in step:
            lines.append(f"| {label} | {_fmt(step['seconds'] / cases, 1)} | {_fmt(step.get('peak_gpu_mb'), 0)} | "
                         f"{_fmt(step.get('peak_rss_mb'), 0)} |")
        elif step:
            lines.append(f"| {label} | {str(step.get('error') or step.get('skipped'))[:120]} | | |")
    return lines


def gpu_section() -> List[str]:
    data = load_result(GPU_FILE)
    if not data:
        return []
    args = data.get("arguments", {})
    return ["", "## On a GPU", "",
            f"`python -m benchmarks.gpu_study --kits23 LABELS --iterations {args.get('iterations')} "
            f"--memory-target {args.get('memory_target')} ...` on {data['machine'].get('gpu')} "
            f"({data['machine']['cores']} cores, torch {data['machine']['torch']}): "
            f"{args.get('train_cases')} KiTS23 label maps painted as CT (benchmarks.kits_anatomy), both tools planned "
            f"for {args.get('memory_target')} GB; each nnocc configuration trained two epochs of "
            f"{args.get('iterations')} iterations, the second one timed (one validation step included); raw figures "
            f"in `benchmarks/results/{GPU_FILE}`.", ""] + _gpu_training_rows(data["steps"]) + \
        ["", "KiTS-sized cases at their own resolution, output at the input spacing, no mirroring:", ""] + \
        _gpu_inference_rows(data)


def curves_goals(data: Dict) -> List[Dict]:
    """At the end of each budget, every nnocc configuration against nnU-Net planned for the same target."""
    rows = []
    for target, run in sorted(data.get("runs", {}).items()):
        nnunet = run["tools"].get("nnunet")
        if not nnunet or not nnunet["curve"]:
            continue
        theirs = nnunet["curve"][-1]
        for tool, figures in run["tools"].items():
            if tool == "nnunet" or not figures["curve"]:
                continue
            ours = figures["curve"][-1]
            dice = (kits_score(ours, "mean_dice") or 0) - (kits_score(theirs, "mean_dice") or 0)
            sd = (kits_score(ours, "mean_surface_dice") or 0) - (kits_score(theirs, "mean_surface_dice") or 0)
            memory = (_get(ours, "predict", "peak_rss_mb") or 0) / max(_get(theirs, "predict", "peak_rss_mb") or 1, 1)
            where = f"{tool}, {target}, {run['budget_minutes']:g} min"
            rows += [{"goal": f"{where}: KiTS23 mean Dice at least nnU-Net's - 0.02", "value": f"{dice:+.3f}",
                      "met": dice >= -0.02},
                     {"goal": f"{where}: KiTS23 mean Surface Dice above nnU-Net's", "value": f"{sd:+.3f}",
                      "met": sd > 0},
                     {"goal": f"{where}: inference peak memory at most half of nnU-Net's",
                      "value": f"{memory:.2f} of nnU-Net's", "met": memory <= 0.5}]
    return [coverage_goal(data)] + rows


def coverage_goal(data: Dict) -> Dict:
    """The study asked for: every tool, at least 60 minutes, at 2 GB and at nnU-Net's default 8 GB."""
    runs = data.get("runs", {})
    done = [f"{', '.join(run['tools'])} for {run['budget_minutes']:g} min at {target}" for target, run in sorted(runs.items())]
    partial = [f"{tool} at {target} scored at {', '.join(f'{m:g}' for m in scored_marks(figures))} min only"
               for target, run in sorted(runs.items()) for tool, figures in run["tools"].items()
               if set(scored_marks(figures)) != set(run["marks"])]
    complete = {"2GB", "8GB"} <= set(runs) and not partial and all(
        set(TOOLS) <= set(run["tools"]) and run["budget_minutes"] >= 60 for run in runs.values())
    return {"goal": "curves of at least 60 minutes for every configuration and nnU-Net, at 2 and 8 GB",
            "value": "; ".join(done + partial) or "none", "met": complete}


def second_edition() -> List[str]:
    """The readme's head: what the second edition measured, then its sections; the first edition follows."""
    lines = ["# Benchmarks: nnocc against nnU-Net v2", "",
             "The second edition compares the tools planned for the same memory target, on real anatomy (KiTS23 "
             "label maps with CT painted by nnocc; nothing downloaded, nothing of the labels committed), as learning "
             "curves rather than one point, at KiTS23's own resolution, and on a GPU where one was lent. The first "
             "edition (a generated phantom, nnocc planned for 1 GB against nnU-Net's default 8 GB) follows it, with "
             "the per-method studies.", ""]
    kits, curves, oracle = load_result(KITS_INFERENCE_FILE), load_result(CURVES_FILE), load_result(ORACLE_FILE)
    goals = (curves_goals(curves) if curves else []) + (kits_inference_goals(kits) if kits else []) + \
        (oracle_goals(oracle) if oracle else [])
    if goals:
        lines += ["## Goals", "", "| goal | measured | met |", "|---|---|---|"]
        lines += [f"| {g['goal']} | {g['value']} | {met_text(g['met'])} |" for g in goals]
        lines += [""]
    return lines + curves_section() + kits_inference_section() + gpu_section()
