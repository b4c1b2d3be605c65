"""Training memory of nnocc against patch size: a few real training iterations per patch size
(fresh process each), beside the planner's estimate for the same configuration."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Dict, List, Optional, Sequence

_CHILD = r"""
import json, resource, sys, torch
from nnocc.architectures.registry import build_model
from nnocc.planning.plans import Plans
plans_file, configuration, patch, device = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
config = Plans.load(plans_file).configurations[configuration]
points = int(sys.argv[5]) if len(sys.argv) > 5 else config.sampling.points_per_patch
torch.set_num_threads(2)
def rss():
    return int(open('/proc/self/status').read().split('VmRSS:')[1].split()[0]) / 1024
base = rss()
model = build_model(config.architecture.name, config.architecture.kwargs).to(device)
opt = torch.optim.AdamW(model.parameters(), 1e-3)
x = torch.randn(config.batch_size, config.architecture.kwargs['in_channels'], *patch, device=device)
p = torch.rand(config.batch_size, points, 3, device=device) - 0.5
for _ in range(3):
    logits, aux, terms = model(x, p)
    loss = logits.logsumexp(-1).mean() + (aux.mean() if aux is not None else 0) + sum(t.mean() for t in terms.values())
    opt.zero_grad(); loss.backward(); opt.step()
peak = torch.cuda.max_memory_allocated() / 2**20 if device == 'cuda' else \
    resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base
print(json.dumps({'peak_mb': peak}))
"""


def measure_training_memory(plans_file, configuration: str, patch, device: str, env: Dict,
                            points: Optional[int] = None) -> float:
    """Peak training memory of a few steps of a planned configuration in a fresh process (MB; CPU:
    above the idle process)."""
    extra = [] if points is None else [str(points)]
    out = subprocess.run([sys.executable, "-c", _CHILD, str(plans_file), configuration, json.dumps(list(patch)), device,
                          *extra], capture_output=True, text=True, check=True, env={**os.environ, **env})
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_mb"]


def patch_size_study(nnocc, ws, scales: Sequence[float]) -> List[Dict]:
    from nnocc.architectures.registry import architecture_facts
    from nnocc.planning.memory_model import training_footprint
    from nnocc.planning.plans import Plans

    plans_file = nnocc.results.parent / "preprocessed" / ws.dataset_name / "nnoccPlans.json"
    config = Plans.load(plans_file).configurations[nnocc.configuration]
    stride = architecture_facts(config.architecture.name, config.architecture.kwargs, config.patch_size).input_multiple
    rows = []
    for scale in scales:
        patch = [max(st, int(round(p * scale / st)) * st) for p, st in zip(config.patch_size, stride)]
        measured = measure_training_memory(plans_file, nnocc.configuration, patch, ws.device, nnocc.env)
        estimate = training_footprint(config.architecture.name, config.architecture.kwargs, patch, config.batch_size,
                                      config.sampling.points_per_patch).estimated_bytes() / 2 ** 20
        rows.append({"patch_size": patch, "voxels": int(patch[0] * patch[1] * patch[2]), "measured_mb": measured,
                     "estimated_mb": estimate, "batch_size": config.batch_size})
    return rows
