"""MISE as an algorithm on real anatomy at KiTS23's own resolution, apart from any trained model.

    python -m benchmarks.mise_oracle --kits23 PATH [--cases case_00017] [--coarse-mm 2.84 6.4]
        [--margins 0.4 0.1 0] [--children changing all] [--hint-factors 1 4] [--sigma-mm 1.0] [--out FILE]

The field MISE refines is an "oracle": the case's real KiTS23 label map, one channel per label,
blurred with a Gaussian of ``--sigma-mm`` and read by trilinear interpolation, so its decisions
are the real structures with boundaries as smooth as a well-trained network's.  Dense is the
decision at every voxel.  Per lattice and margin: the share of dense queries, voxel agreement,
Dice per label and the components MISE loses.  A trained model adds its own unsure regions and
specks to refine (``benchmarks.kits_inference`` measures those); this measures what MISE costs when
the model is right.  A hint factor above one starts MISE that many times coarser than the given
lattice, guarded by the oracle read on the given lattice, as nnocc_predict's ``--aux_hint_factor``
guards it with the auxiliary voxel head (here a perfect one); those reads are counted apart, as
they are in prediction: a trilinear lookup, not a decoder query.
"""
from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import SimpleITK as sitk
import torch
from scipy.ndimage import gaussian_filter
from torch.nn import functional as F

from benchmarks.kits_inference import compare_structures
from benchmarks.run import machine
from nnocc.dataset_conversion.real_anatomy import KITS_SEGMENTATION, read_oriented_labels
from nnocc.inference.mise import CHILDREN, DEFAULT_CHILDREN, Decision, Mise, coarse_steps_for, lattice_size
from nnocc.utils.json_io import save_json

HERE = Path(__file__).resolve().parent
NUM_LABELS = 4
QUERY_GOAL, AGREEMENT_GOAL = 0.05, 0.9999       # issue 17's MISE goal, for the oracle and the trained model alike


def oracle_probabilities(labels: np.ndarray, spacing_zyx, sigma_mm: float) -> torch.Tensor:
    """(K, z, y, x) float32: each label's mask blurred, normalised to sum to one per voxel."""
    sigma = [sigma_mm / s for s in spacing_zyx]
    probs = torch.empty((NUM_LABELS, *labels.shape), dtype=torch.float32)
    for value in range(NUM_LABELS):
        probs[value] = torch.from_numpy(gaussian_filter((labels == value).astype(np.float32), sigma, mode="nearest"))
    probs /= probs.sum(0, keepdim=True).clamp_min(1e-6)
    return probs


def trilinear_query(probs: torch.Tensor):
    """Probabilities (M, K) at continuous voxel indices (M, 3), as a decoder would answer."""
    volume = probs[None]
    extent = torch.tensor(probs.shape[1:], dtype=torch.float32) - 1

    def query(points: torch.Tensor) -> torch.Tensor:
        normalised = (2 * points / extent.clamp_min(1) - 1).flip(-1)       # (z, y, x) -> grid_sample's (x, y, z)
        # "border": a lattice point past the last voxel is answered, as a network answers any point
        out = F.grid_sample(volume, normalised.view(1, -1, 1, 1, 3), mode="bilinear", padding_mode="border",
                            align_corners=True)
        return out.view(NUM_LABELS, -1).T
    return query


def on_lattice(query, shape: Sequence[int], steps: Sequence[int]) -> torch.Tensor:
    """(K, *lattice) answers at the lattice points (index times step), as MISE's hint wants them."""
    sizes = [lattice_size(n, step) for n, step in zip(shape, steps)]
    axes = [torch.arange(m, dtype=torch.float32) * step for m, step in zip(sizes, steps)]
    points = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    return query(points).T.reshape(-1, *sizes)


def one_setting(probs: torch.Tensor, dense: np.ndarray, spacing_zyx, coarse_mm: float, margin: float,
                children: str = DEFAULT_CHILDREN, hint_factor: float = 1.0) -> Dict:
    query, hint_steps = trilinear_query(probs), coarse_steps_for(spacing_zyx, coarse_mm)
    steps, hint = hint_steps, None
    if hint_factor > 1:
        steps = coarse_steps_for(spacing_zyx, coarse_mm * hint_factor)
        hint = on_lattice(query, dense.shape, hint_steps)
    mise = Mise(query, NUM_LABELS, Decision(regions=False, margin=margin), 262144, children=children)
    began = time.perf_counter()
    result = mise.run(list(dense.shape), steps, hint=hint, hint_steps=hint_steps if hint is not None else None)
    codes = result.codes.numpy()
    return {"coarse_mm": coarse_mm, "margin": margin, "children": children, "hint_factor": hint_factor,
            "steps": steps, "seconds": time.perf_counter() - began,
            "query_share": result.queries / dense.size, "lattice_share": 1 / float(np.prod(steps)),
            "hint_share": 0.0 if hint is None else hint[0].numel() / dense.size,
            "agreement": float((codes == dense).mean())} | compare_structures(codes, dense)


def one_case(path: Path, coarse: List[float], margins: List[float], sigma_mm: float,
             children: Sequence[str] = (DEFAULT_CHILDREN,), hint_factors: Sequence[float] = (1.0,)) -> Dict:
    case = read_oriented_labels(path)
    labels = sitk.GetArrayFromImage(case.image).astype(np.uint8)
    spacing = list(case.image.GetSpacing())[::-1]
    probs = oracle_probabilities(labels, spacing, sigma_mm)
    dense = probs.argmax(0).numpy().astype(np.uint8)
    runs = [one_setting(probs, dense, spacing, mm, margin, rule, factor)
            for factor in hint_factors for rule in children for mm in coarse for margin in margins]
    return {"shape": list(labels.shape), "spacing_mm": spacing, "runs": runs}


def oracle_section(data: Optional[Dict]) -> List[str]:
    if not data:
        return []
    lines = ["", "### MISE as an algorithm: an oracle field on real anatomy", "",
             f"`{data['command']}` on {data['date']} ({data['machine']['processor']}): the field is the KiTS23 label "
             f"map itself, one channel per label blurred with a {data['sigma_mm']:g} mm Gaussian and read by trilinear "
             "interpolation, at the scan's own resolution; dense is its decision at every voxel. This is MISE when "
             "the model is right; a trained model's own unsure regions and specks come on top (table above).", "",
             "| case | coarse lattice mm | hint factor | steps (z y x) | margin | children | lattice share | query share | "
             "hint lookups | voxel agreement | Dice per label | components missed (largest, voxels) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for case, figures in data["cases"].items():
        for run in figures["runs"]:
            dice = ", ".join(f"{label}: {value:.5f}" for label, value in sorted(run["dice_against_dense"].items()))
            lines.append(f"| {case} {figures['shape']} | {run['coarse_mm']:g} | {run.get('hint_factor', 1):g} | "
                         f"{run['steps']} | {run['margin']:g} | {run.get('children', 'all')} | "
                         f"{run['lattice_share']:.4f} | {run['query_share']:.4f} | {run.get('hint_share', 0):.4f} | "
                         f"{run['agreement']:.6f} | {dice} | "
                         f"{run['components_missed']} of {run['dense_components']} ({run['largest_missed_voxels']}) |")
    lines += ["", "| goal | measured | met |", "|---|---|---|"]
    lines += [f"| {g['goal']} | {g['value']} | {'yes' if g['met'] else 'no'} |" for g in oracle_goals(data)]
    for case, figures in data["cases"].items():
        cheapest = min(_safe(figures["runs"]), key=lambda r: r["query_share"], default=None)
        if cheapest:
            lines.append(f"\n{case}: the cheapest setting that lost nothing here was {cheapest['coarse_mm']:g} mm, hint "
                         f"factor {cheapest.get('hint_factor', 1):g}, margin {cheapest['margin']:g}, children "
                         f"{cheapest.get('children', 'all')}: "
                         f"{100 * cheapest['query_share']:.2f} % of dense queries. That says what "
                         "one scan allows, not what is safe: whether a lattice coarser than a structure finds it "
                         "depends on where the lattice points fall.")
    return lines + [""]


def _safe(runs: List[Dict]) -> List[Dict]:
    return [r for r in runs if r["agreement"] >= AGREEMENT_GOAL and r["components_missed"] == 0]


def oracle_goals(data: Dict) -> List[Dict]:
    """Per case, every hint factor at the first lattice, margin and children rule given (by convention the
    plan's, the default), so that the unguarded MISE's figure stands beside the guarded ones."""
    rows = []
    for case, figures in data["cases"].items():
        plan = _lattice_setting(figures["runs"][0])
        rows += [_goal_row(case, run) for run in figures["runs"] if _lattice_setting(run) == plan]
    return rows


def _lattice_setting(run: Dict) -> tuple:
    return run["coarse_mm"], run["margin"], run.get("children", "all")


def _goal_row(case: str, run: Dict) -> Dict:
    hint = run.get("hint_factor", 1)
    guard = f", hint factor {hint:g} (a perfect auxiliary head)" if hint != 1 else ""
    lookups = f", {100 * run['hint_share']:.2f} % hint lookups" if run.get("hint_share") else ""
    return {"goal": f"{case}, oracle field, the plan's lattice ({run['coarse_mm']:g} mm), margin ({run['margin']:g}) "
                    f"and children rule ({run.get('children', 'all')}){guard}: at most 5 % of dense queries at "
                    "99.99 % agreement, no structure lost",
            "value": f"{100 * run['query_share']:.2f} %{lookups}, agreement {run['agreement']:.6f}",
            "met": run["query_share"] <= QUERY_GOAL and bool(_safe([run]))}


def main(argv=None) -> Path:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kits23", type=Path, required=True, help="KiTS23 checkout (its dataset/ folder is read)")
    p.add_argument("--cases", nargs="+", default=["case_00017"])
    p.add_argument("--coarse-mm", type=float, nargs="+", default=[2.84, 6.4])
    p.add_argument("--margins", type=float, nargs="+", default=[0.4, 0.1, 0.0])
    p.add_argument("--children", nargs="+", default=[DEFAULT_CHILDREN], choices=CHILDREN,
                   help="MISE's rule for the children of an active cell (the first: the goal's)")
    p.add_argument("--hint-factors", type=float, nargs="+", default=[1.0],
                   help="MISE starts this many times coarser than each lattice, guarded by the oracle read on it "
                        "(the first: the goal's)")
    p.add_argument("--sigma-mm", type=float, default=1.0)
    p.add_argument("--out", type=Path, default=HERE / "results" / "mise_oracle_cpu.json")
    args = p.parse_args(argv)
    results = {"date": datetime.date.today().isoformat(), "machine": machine(), "sigma_mm": args.sigma_mm,
               "command": f"python -m benchmarks.mise_oracle {' '.join(sys.argv[1:] or argv or [])}", "cases": {}}
    for name in args.cases:
        results["cases"][name] = one_case(args.kits23 / "dataset" / name / KITS_SEGMENTATION, args.coarse_mm,
                                          args.margins, args.sigma_mm, args.children, args.hint_factors)
        save_json(results, args.out)       # each case as soon as it is done
    return args.out


if __name__ == "__main__":
    print(main())
