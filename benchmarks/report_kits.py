"""The benchmark readme's KiTS-sized inference section (``benchmarks.kits_inference``): whole scans at
their own resolution against dense and nnU-Net, MISE's settings swept against dense, the oracle field
(``benchmarks.mise_oracle``) and where inference memory goes (``benchmarks.inference_memory``)."""
from __future__ import annotations

from typing import Dict, List, Optional

from benchmarks.inference_memory import memory_section
from benchmarks.mise_oracle import AGREEMENT_GOAL, QUERY_GOAL, oracle_section
from benchmarks.report import _fmt, _get, load_result, met_text

KITS_INFERENCE_FILE = "kits_inference_cpu.json"
MEMORY_FILE = "inference_memory_cpu.json"
MEMORY_SETTINGS_FILE = "inference_memory_settings_cpu.json"     # a second case, with the per-setting runs
ORACLE_FILE = "mise_oracle_cpu.json"


def _share(figures: Dict, key: str) -> Optional[float]:
    run = figures.get(key)
    return None if not run else next(iter(run["cases"].values()))["query_fraction"]


def _models(data: Dict) -> str:
    models = data.get("models")
    if not models:
        return "the learning-curve models' final checkpoints"
    trained = [f"{tool} {m['budget_minutes']:g} min ({m['iterations']} iterations)" for tool, m in models.items()]
    return "models trained by benchmarks.learning_curves: " + ", ".join(trained)


def _native_row(case: str, figures: Dict) -> List[str]:
    mise = figures["nnocc_mise"]
    stats = next(iter(mise["cases"].values()))
    dense = figures.get("nnocc_dense", {})
    nnunet = _get(figures, "nnunet", "command") or {}
    ratio = None if not nnunet.get("peak_rss_mb") else mise["command"]["peak_rss_mb"] / nnunet["peak_rss_mb"]
    return [case, str(stats["output_shape"]), _fmt(mise["command"]["seconds"], 1),
            _fmt(mise["command"]["peak_rss_mb"], 0), _fmt(stats["query_fraction"], 4),
            _fmt(figures.get("mise_dense_agreement"), 6), _fmt(_share(figures, "nnocc_mise_plain"), 4),
            _fmt(figures.get("mise_plain_dense_agreement"), 6), _fmt(_get(dense, "command", "seconds"), 1),
            _fmt(nnunet.get("seconds"), 1), _fmt(nnunet.get("peak_rss_mb"), 0), _fmt(ratio, 2)]


def kits_inference_goals(data: Dict) -> List[Dict]:
    """MISE judged as the algorithm (no refinement pass, as dense has none) where that run exists."""
    rows = []
    for case, figures in data["cases"].items():
        plain = "nnocc_mise_plain" in figures
        share = _share(figures, "nnocc_mise_plain" if plain else "nnocc_mise") or 1.0
        agreement = figures.get("mise_plain_dense_agreement" if plain else "mise_dense_agreement")
        met = None if agreement is None and share <= QUERY_GOAL else \
            share <= QUERY_GOAL and (agreement or 0) >= AGREEMENT_GOAL   # None: no dense reference run
        rows.append({"goal": f"{case}: MISE{' alone' if plain else ''} at most 5 % of dense queries at 99.99 % "
                             "agreement", "value": f"{100 * share:.2f} %, agreement {_fmt(agreement, 6)}", "met": met})
        nnunet = _get(figures, "nnunet", "command", "peak_rss_mb")
        if nnunet:
            ratio = figures["nnocc_mise"]["command"]["peak_rss_mb"] / nnunet
            rows.append({"goal": f"{case}: inference peak memory at most half of nnU-Net's",
                         "value": f"{ratio:.2f} of nnU-Net's", "met": ratio <= 0.5})
    return rows


def kits_inference_section() -> List[str]:
    data = load_result(KITS_INFERENCE_FILE)
    if not data:
        return []
    header = ["case", "output voxels", "nnocc s", "nnocc peak RSS MB", "query share", "agreement with dense",
              "MISE alone: query share", "MISE alone: agreement", "dense s", "nnU-Net s", "nnU-Net peak RSS MB",
              "nnocc / nnU-Net memory"]
    commands = "` then `".join(data.get("commands") or [data["command"]])
    lines = ["", "## KiTS-sized inference: whole scans at their own resolution", "",
             f"`{commands}` on {data['date']} ({data['machine']['processor']}, {data['machine']['cores']} cores): "
             f"real KiTS23 label maps painted at their own 512 x 512 resolution, {_models(data)}, "
             "output at the input spacing, no mirroring, one process per case and tool (whole command: "
             f"reading, preprocessing, prediction, export); raw figures in `benchmarks/results/{KITS_INFERENCE_FILE}`. "
             "nnocc as shipped runs MISE and then a second, finer pass around each small predicted structure; "
             "'MISE alone' leaves that pass out, as dense evaluation does, and measures the algorithm.",
             "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_native_row(c, f)) + " |" for c, f in data["cases"].items()]
    if data.get("notes"):
        lines += ["", f"Conditions: {data['notes']}"]
    lines += ["", "| goal | measured | met |", "|---|---|---|"]
    lines += [f"| {g['goal']} | {g['value']} | {met_text(g['met'])} |" for g in kits_inference_goals(data)]
    return lines + sweep_section(data) + oracle_section(load_result(ORACLE_FILE)) + [""] + \
        memory_section(load_result(MEMORY_FILE)) + memory_section(load_result(MEMORY_SETTINGS_FILE))


def _sweep_row(case: str, setting: str, run: Dict, default_children: str) -> str:
    coarse, margin, children, hint = (setting.split(":") + ["plan", "1"])[:4]
    stats = next(iter(run["cases"].values()))
    dice = ", ".join(f"{label}: {value:.5f}" for label, value in sorted(run.get("dice_against_dense", {}).items()))
    missed = f"{run.get('components_missed', '–')} of {run.get('dense_components', '–')} " \
             f"({run.get('largest_missed_voxels', '–')})"
    return (f"| {case} | {coarse} | {margin} | {default_children if children == 'plan' else children} | "
            f"{'1' if hint == 'plan' else hint} | {_fmt(stats['query_fraction'], 4)} | {_fmt(run.get('agreement'), 6)} | "
            f"{dice} | {missed} | {_fmt(run['command']['seconds'], 1)} |")


def sweep_section(data: Dict) -> List[str]:
    """MISE alone with coarser lattices than the plan's, against dense: the speed a user can buy and
    what it costs (voxel agreement hides lost small structures, so they are counted)."""
    rows = []
    default_children = data.get("defaults", {}).get("mise_children", "all")    # "all" until it was recorded
    for case, figures in data["cases"].items():
        if "nnocc_mise_plain" in figures and "sweep" in figures:
            plain = figures["nnocc_mise_plain"] | {"agreement": figures.get("mise_plain_dense_agreement")}
            rows.append(_sweep_row(case, "plan:plan", plain, default_children))
            rows += [_sweep_row(case, setting, run, default_children) for setting, run in figures["sweep"].items()]
    if not rows:
        return []
    return ["", "MISE alone with other coarse lattices (`--coarse_spacing_mm`), uncertainty margins "
            "(`--uncertainty_margin`), children rules (`--mise_children`) and hint factors (`--aux_hint_factor`), "
            "against dense on the same scan ('plan': the plan's value):", "",
            "| case | coarse lattice mm | margin | children | hint factor | query share | voxel agreement | "
            "Dice against dense per label | dense components missed (largest, voxels) | s |",
            "|---|---|---|---|---|---|---|---|---|---|"] + rows
