"""The benchmark readme's sections on seed 004: the thesis's kidney table on KiTS23 kidneys
(``python -m benchmarks.shape_reconstruction``) and its two uses in the pipeline on a generated CT
(``python -m benchmarks.shape_pipeline``)."""
from __future__ import annotations

from typing import Dict, List

from benchmarks.report import _fmt
from benchmarks.report_configurations import _latest_run

SAMPLERS = (("learned", "learned"), ("farthest_point", "FPS"), ("random", "random"))


def reconstruction_section() -> List[str]:
    latest = _latest_run("[0-9]*_shape_reconstruction_*.json")
    if latest is None:
        return []
    path, data = latest
    model, steps = data["shape_model"], data.get("latent_steps", [100])
    commands = "` then `".join(data.get("commands", [data["command"]]))
    lines = ["", "## Seed 004 on KiTS23 kidneys: which cubes to label, and the kidney rebuilt from them", "",
             f"`{commands}` on {data['date']}: fold {data['fold']} of seed 004's 70/10/20 split of "
             f"case_00000-case_00299 ({data['cases']['train']} / {data['cases']['val']} / {data['cases']['test']} "
             f"cases, {data['shapes']['train']} training and {data['shapes']['test']} test kidneys with their masses, "
             f"each kidney apart, crops of {' x '.join(map(str, data['grid']['shape']))} at "
             f"{data['grid']['spacing_mm']:g} mm); raw figures in `benchmarks/results/{path.name}`.", "",
             f"Reduced protocol (a CPU): the shape model trained {_fmt(model['seconds'] / 60, 1)} minutes "
             f"({model['steps_run']} steps of {model['batch_size']} shapes x {model['points_per_shape']} points, the codes "
             f"at {model['latent_learning_rate']:g}; the public code: 40,000 epochs of 8 x 4096, codes at 1e-3"
             f"{'; by ' + model['trained_by'] if 'trained_by' in model else ''}); each sampler {_reduced(data)}; "
             "reconstructions fit the code with "
             f"{_fit_points(data)} and are scored on every crop voxel; random and FPS averaged over "
             f"{data['random_repeats']} draws (the thesis: 30).", ""]
    for t in steps:
        lines += [f"T = {t}: ours / the thesis's (its TotalSegmentator kidneys; ASD and HD95 are ours, DeepMind's "
                  "surface distances, against its voxel-surface ones)", "",
                  "| N x K | " + " | ".join(f"Dice {label}" for _, label in SAMPLERS) + " | "
                  + " | ".join(f"ASD {label} (mm)" for _, label in SAMPLERS) + " | "
                  + " | ".join(f"HD95 {label} (mm)" for _, label in SAMPLERS) + " |",
                  "|---|" + "---|" * 9]
        for config, figures in data["configs"].items():
            ours, thesis = figures.get(f"T{t}", {}), figures.get("thesis_T100", {}) if t == 100 else {}
            cells = [_pair(ours, thesis, name, metric) for metric in ("dice", "asd", "hd95") for name, _ in SAMPLERS]
            lines.append(f"| {config.replace('x', ' x ')} | " + " | ".join(cells) + " |")
        lines += ["", _verdict(data, t), ""] + _largest_table(data, t)
    return lines


def _largest_table(data: Dict, t: int) -> List[str]:
    """The same reconstructions with only their largest component kept (each crop holds one kidney)."""
    rows = [(c, f[f"T{t}"]) for c, f in data["configs"].items() if "dice_largest" in f.get(f"T{t}", {}).get("learned", {})]
    if not rows:
        return []
    if all(abs(r[name][f"{m}_largest"] - r[name][m]) < 1e-9 for _, r in rows for name, _ in SAMPLERS
           for m in ("dice", "asd", "hd95")):
        return [f"T = {t}: keeping only each reconstruction's largest component changes no figure: every "
                "reconstruction is one piece, so the distances above come from its shape, not from stray blobs.", ""]
    lines = [f"T = {t}, the same reconstructions with their largest component alone (anything else is a piece "
             "the shape model put apart from the kidney):", "",
             "| N x K | " + " | ".join(f"{m} {label}{unit}" for m, unit in (("Dice", ""), ("ASD", " (mm)"), ("HD95", " (mm)"))
                                      for _, label in SAMPLERS) + " |", "|---|" + "---|" * 9]
    for config, figures in rows:
        cells = [_fmt(figures[name][f"{metric}_largest"], 3 if metric == "dice" else 2)
                 for metric in ("dice", "asd", "hd95") for name, _ in SAMPLERS]
        lines.append(f"| {config.replace('x', ' x ')} | " + " | ".join(cells) + " |")
    return lines + [""]


def _pair(ours: Dict, thesis: Dict, sampler: str, metric: str) -> str:
    digits = 3 if metric == "dice" else 2
    mine = _fmt(ours[sampler][metric], digits) if sampler in ours else "–"
    return f"{mine} / {_fmt(thesis[sampler][metric], digits)}" if sampler in thesis else mine


def _reduced(data: Dict) -> str:
    settings = [f["sampler_training"] for f in data["configs"].values()]
    minutes = sorted(s["seconds"] / 60 for s in settings)
    epochs = sorted(s["epochs_run"] for s in settings)
    first = settings[0]
    fit = f"{first['fit_points']} of the cubes' voxels per step" if first.get("fit_points") else "every cube voxel"
    return (f"{_fmt(minutes[0], 0)}-{_fmt(minutes[-1], 0)} minutes ({epochs[0]}-{epochs[-1]} epochs begun; the "
            f"thesis: 400) through T = {first['latent_steps']} unrolled steps (the thesis: 100) with {fit}, scored on "
            f"{first['check_points']} voxels per shape (the thesis: all)")


def _fit_points(data: Dict) -> str:
    points = data.get("fit_points")
    return f"{points} of the cubes' voxels per Adam step (all, when fewer)" if points else "all of the cubes' voxels"


def _verdict(data: Dict, t: int) -> str:
    rows = {c: f[f"T{t}"] for c, f in data["configs"].items() if f"T{t}" in f}
    beats = [c for c, r in rows.items() if r["learned"]["dice"] >= r["random"]["dice"]]
    text = f"The learned sampler is at least as good as random in Dice on {len(beats)} of {len(rows)} rows"
    if t == 100:
        compared = [f for f in data["configs"].values() if "thesis_T100" in f and "T100" in f]
        close = {s: sum(abs(f["T100"][s]["dice"] - f["thesis_T100"][s]["dice"]) <= 0.03 for f in compared)
                 for s, _ in SAMPLERS}
        every = sum(all(abs(f["T100"][s]["dice"] - f["thesis_T100"][s]["dice"]) <= 0.03 for s, _ in SAMPLERS)
                    for f in compared)
        text += (f"; {every} of {len(compared)} rows are within 0.03 Dice of the thesis for all three samplers ("
                 + ", ".join(f"{label} {close[s]} of {len(compared)}" for s, label in SAMPLERS) + ")")
    return text + "."


def pipeline_section() -> List[str]:
    latest = _latest_run("[0-9]*_shape_pipeline_*.json")
    if latest is None:
        return []
    path, data = latest
    runs, repair = data["patch_sampling"], data["shape_repair"]
    lines = ["", "## Seed 004 in the pipeline: proposed patch centres, shape-prior repair", "",
             f"`{data['command']}` on {data['date']} ({data['machine'].get('cores')} cores, {data['device']}), "
             f"{data['dataset']} (generated, {' x '.join(map(str, data['shape']))} voxels), structure "
             f"`{data['structure']}` ({data['cubes']} cubes of {data['edge']} voxels); raw figures in "
             f"`benchmarks/results/{path.name}`.", "",
             f"(a) 3d_occ, fold 0, {data['iterations']} iterations each, predicting the held-back cases without "
             "mirroring:", "",
             "| patch centres | structure Dice | ASD (mm) | HD95 (mm) | Dice kidney | Dice tumor | Dice cyst "
             "| seconds training |",
             "|---|---|---|---|---|---|---|---|"]
    for label, figures in runs.items():
        s, e = figures["structure"], figures["evaluation"]
        lines.append(f"| {label.replace('_', ' ')} | {_fmt(s['dice'], 3)} | {_fmt(s['assd'], 2)} | {_fmt(s['hd95'], 2)} | "
                     + " | ".join(_fmt(e.get(c, {}).get("dice"), 3) for c in ("kidney", "tumor", "cyst"))
                     + f" | {_fmt(figures['train'].get('training_seconds'), 0)} |")
    lines += ["", f"(b) The as-planned model's predictions repaired (chosen on fold 0's validation predictions: "
              f"`{repair['chosen_on_validation']}`):", "",
              "| repair | validation Dice | test structure Dice | test ASD (mm) | test HD95 (mm) | test Dice kidney "
              "| seconds per case |",
              "|---|---|---|---|---|---|---|"]
    for key, figures in repair["test"].items():
        kidney = figures["per_label"].get("kidney", {}).get("dice")
        lines.append(f"| {key.replace('_', ', ')} | {_fmt(repair['validation'][key]['dice'], 3)} | "
                     f"{_fmt(figures['dice'], 3)} | {_fmt(figures['assd'], 2)} | {_fmt(figures['hd95'], 2)} | "
                     f"{_fmt(kidney, 3)} | {_fmt(figures.get('seconds_per_case'), 1)} |")
    return lines
