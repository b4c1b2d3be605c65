"""Peak training memory of a configuration, without running it.

The model is built on PyTorch's ``meta`` device (no memory, no compute) and training forward
passes are traced: every leaf module's output size is summed, giving activations per patch voxel
and per query point.  That count, the parameter count and
the batch's own tensors go into a linear model whose coefficients were fitted to measured peaks
(``python -m benchmarks.memory_model``; figures in benchmarks/readme.md).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Dict, Sequence

import numpy as np
import torch

from nnocc.architectures.registry import build_model

# Fitted by benchmarks/memory_model.py on CPU (peak RSS above the idle process), float32 training.
BYTES_PER_ACTIVATION = 5.95
FIXED_OVERHEAD_BYTES = 202e6
BYTES_PER_PARAMETER = 22.0          # weights, gradients, two Adam moments, allocator slack


@dataclass
class TrainingFootprint:
    activation_elements: int
    parameters: int
    input_elements: int

    def estimated_bytes(self) -> float:
        return (BYTES_PER_ACTIVATION * self.activation_elements + BYTES_PER_PARAMETER * self.parameters
                + 4.0 * self.input_elements + FIXED_OVERHEAD_BYTES)

    def estimated_gb(self) -> float:
        return self.estimated_bytes() / 1024 ** 3


def _trace(architecture: str, kwargs: Dict[str, Any], patch_size: Sequence[int], batch_size: int,
           points_per_patch: int):
    """(activation elements, parameters) of one traced training forward pass on the meta device."""
    counted = [0]

    def count(_module, _inputs, output):
        outputs = output if isinstance(output, (tuple, list)) else [output]
        counted[0] += sum(o.numel() for o in outputs if isinstance(o, torch.Tensor))

    with torch.device("meta"):
        model = build_model(architecture, kwargs)
        hooks = [m.register_forward_hook(count) for m in model.modules() if not list(m.children())]
        model(torch.empty(batch_size, kwargs["in_channels"], *patch_size), torch.empty(batch_size, points_per_patch, 3))
        for h in hooks:
            h.remove()
    return counted[0], sum(p.numel() for p in model.parameters())


@lru_cache(maxsize=64)
def _coefficients(architecture: str, kwargs_json: str):
    """Activations per patch voxel and per query point, and the parameter count.

    Every layer's output scales with the patch's voxels (encoder) or the number of points
    (decoder), so two traces at a patch of one stride unit give the exact linear model.
    """
    kwargs = json.loads(kwargs_json)
    unit = [int(np.prod([s[a] for s in kwargs["strides"]])) * 2 for a in range(3)]
    voxels = float(np.prod(unit))
    base, parameters = _trace(architecture, kwargs, unit, 1, 256)
    more_points, _ = _trace(architecture, kwargs, unit, 1, 512)
    per_point = (more_points - base) / 256.0
    return (base - 256 * per_point) / voxels, per_point, parameters


def training_footprint(architecture: str, kwargs: Dict[str, Any], patch_size: Sequence[int], batch_size: int,
                       points_per_patch: int) -> TrainingFootprint:
    per_voxel, per_point, parameters = _coefficients(architecture, json.dumps(kwargs, sort_keys=True))
    voxels = float(np.prod(patch_size))
    activations = batch_size * (per_voxel * voxels + per_point * points_per_patch)
    inputs = batch_size * (kwargs["in_channels"] * voxels + points_per_patch * 4)
    return TrainingFootprint(int(activations), parameters, int(inputs))
