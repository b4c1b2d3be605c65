"""Calibrate and check the planner's memory model against measured peak training memory.

    python -m benchmarks.memory_model [--architecture convocc|ossnet|sconet|swipe] [--fit] [--device cpu|cuda]
        [--out benchmarks/results/memory_model_cpu.json]

Each configuration trains for a few iterations in a fresh process; on the CPU the peak is the
growth of the resident set (ru_maxrss) above the idle process, on CUDA
``torch.cuda.max_memory_allocated``.  ``--fit`` prints least-squares coefficients for
nnocc/planning/memory_model.py.
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from pathlib import Path
from typing import Dict, Optional

import numpy as np

# the strides planned for KiTS23's kidney regions at 3 x 2 x 2 mm (a whole case of 64 x 80 x 160 voxels)
KIDNEYS = {"strides": [[2, 2, 2], [2, 2, 2], [1, 2, 2], [1, 1, 2], [1, 1, 1]]}
# (preset, patch, batch, points[, what differs from the preset's isotropic kwargs])
CONFIGS = {
    "convocc": [("tiny", [32, 64, 64], 2, 2048), ("tiny", [48, 96, 96], 2, 4096), ("tiny", [64, 64, 64], 4, 2048),
                ("small", [32, 64, 64], 2, 2048), ("small", [48, 96, 96], 2, 4096), ("small", [64, 128, 128], 2, 4096),
                ("base", [32, 64, 64], 2, 2048), ("base", [64, 64, 64], 2, 2048)],
    # whole cases at batch 1 and the paper's 2^14 points, plus fewer points and larger cases; the last three
    # with anisotropic strides, which keep the deeper grids larger
    "ossnet": [("tiny", [32, 96, 96], 1, 16384), ("tiny", [64, 128, 128], 1, 16384), ("tiny", [64, 128, 128], 1, 4096),
               ("small", [32, 96, 96], 1, 16384), ("small", [64, 128, 128], 1, 8192), ("base", [64, 128, 128], 1, 16384),
               ("base", [64, 160, 160], 2, 8192), ("base", [64, 80, 160], 1, 8192, KIDNEYS),
               ("base", [64, 80, 160], 1, 4096, KIDNEYS), ("base", [32, 48, 80], 1, 2048, KIDNEYS)],
    # the case does not matter to a point-cloud encoder (50k cloud points): the grid and the query points do
    "sconet": [("grid32", [64, 128, 128], 1, 50000), ("grid32", [64, 128, 128], 1, 12500),
               ("grid32", [64, 128, 128], 2, 25000), ("grid64", [64, 128, 128], 1, 50000),
               ("grid64", [64, 128, 128], 1, 12500), ("grid64", [64, 128, 128], 2, 50000)],
    # cubic crops (the paper's 96^3), the planner's point counts (x2 with one overreach copy)
    "swipe": [("tiny", [64, 64, 64], 2, 2048), ("tiny", [96, 96, 96], 2, 4608), ("tiny", [128, 128, 128], 1, 8192),
              ("small", [64, 64, 64], 2, 2048), ("small", [96, 96, 96], 2, 4608), ("base", [64, 64, 64], 2, 2048),
              ("base", [96, 96, 96], 2, 4608)],
}

_CHILD = r"""
import json, resource, sys, torch
from nnocc.architectures.base import Placement
from nnocc.architectures.registry import build_model
architecture, kwargs, patch, batch, points, device = json.loads(sys.argv[1])
torch.set_num_threads(2)
def rss_mb():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS'):
                return int(line.split()[1]) / 1024
base = rss_mb()
model = build_model(architecture, kwargs).to(device)
opt = torch.optim.AdamW(model.parameters(), 1e-3)
shape = model.example_inputs(batch, patch, points, torch.device('meta'))[0].shape
x = torch.randn(shape, device=device)
if model.cloud_size() is not None:
    x[..., :3] = torch.rand(*shape[:-1], 3, device=device) - 0.5
p = torch.rand(batch, points, 3, device=device) - 0.5
placement = Placement.centred(batch, patch, torch.device(device))
for _ in range(3):
    logits, aux, terms = model(x, p, placement)
    loss = logits.logsumexp(-1).mean() + (aux.mean() if aux is not None else 0) + sum(t.mean() for t in terms.values())
    opt.zero_grad(); loss.backward(); opt.step()
if device == 'cuda':
    peak = torch.cuda.max_memory_allocated() / 2**20
else:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base
print(json.dumps({'peak_mb': peak}))
"""


def model_kwargs(architecture: str, preset: str, overrides: Optional[Dict] = None) -> Dict:
    """The model a row measures: the preset as built for isotropic spacing, with the row's overrides."""
    from nnocc.architectures.registry import architecture_class

    return architecture_class(architecture).build_kwargs(preset, 1, 4, [1.0, 1.0, 1.0]) | (overrides or {})


def measure(architecture: str, kwargs: Dict, patch, batch: int, points: int, device: str) -> float:
    out = subprocess.run([sys.executable, "-c", _CHILD, json.dumps([architecture, kwargs, patch, batch, points, device])],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_mb"]


def fit_calibration(rows) -> dict:
    """Least squares for measured = a * activations + p * points + c, with parameters and inputs at
    their fixed costs (22 and 4 bytes); p is zero where points cost only their traced outputs."""
    a = np.array([[r["activations"], r["points"] * r["batch"], 1.0] for r in rows])
    b = np.array([r["measured_mb"] * 2**20 - 22 * r["parameters"] - 4 * r["inputs"] for r in rows])
    (per_activation, per_point, constant), *_ = np.linalg.lstsq(a, b, rcond=None)
    estimated = (a @ np.array([per_activation, per_point, constant]) + (np.array([r["measured_mb"] for r in rows])
                                                                         * 2**20 - b)) / 2**20
    errors = estimated / np.array([r["measured_mb"] for r in rows]) - 1
    return {"bytes_per_activation": float(per_activation), "bytes_per_point": float(per_point),
            "fixed_overhead_bytes": float(constant), "largest_relative_error": float(np.abs(errors).max())}


def main() -> None:
    from nnocc.planning.memory_model import training_footprint

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--architecture", default="convocc", choices=sorted(CONFIGS))
    parser.add_argument("--fit", action="store_true")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rows = []
    for preset, patch, batch, points, *rest in CONFIGS[args.architecture]:
        overrides = rest[0] if rest else {}
        kwargs = model_kwargs(args.architecture, preset, overrides)
        fp = training_footprint(args.architecture, kwargs, patch, batch, points)
        measured = measure(args.architecture, kwargs, patch, batch, points, args.device)
        rows.append(dict(preset=preset, patch=patch, batch=batch, points=points, kwargs=overrides,
                         activations=fp.activation_elements, parameters=fp.parameters, inputs=fp.input_elements,
                         estimated_mb=fp.estimated_bytes() / 2**20,
                         measured_mb=measured))
        print(f"{preset:5s} patch {patch} batch {batch} points {points}: estimated "
              f"{rows[-1]['estimated_mb']:8.1f} MB, measured {measured:8.1f} MB", flush=True)
    fit = fit_calibration(rows) if args.fit else None
    if fit:
        print(f"fitted: bytes_per_activation {fit['bytes_per_activation']:.2f}, bytes_per_point "
              f"{fit['bytes_per_point']:.0f}, fixed_overhead_bytes {fit['fixed_overhead_bytes'] / 1e6:.0f}e6; "
              f"largest error {100 * fit['largest_relative_error']:.0f} %")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"machine": platform.processor() or platform.machine(), "device": args.device,
                                        "architecture": args.architecture, "rows": rows, "fit": fit}, indent=2) + "\n")


if __name__ == "__main__":
    main()
