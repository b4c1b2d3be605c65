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

from nnocc.architectures.base import MemoryCalibration
from nnocc.architectures.registry import architecture_class, build_model

# for an architecture whose peaks were not measured yet: above every calibration measured so far
DEFAULT_CALIBRATION = MemoryCalibration(16.0, 300e6)


@dataclass
class TrainingFootprint:
    activation_elements: int
    parameters: int
    input_elements: int
    points: int = 0                    # query points of the whole batch
    calibration: MemoryCalibration = DEFAULT_CALIBRATION

    def estimated_bytes(self) -> float:
        c = self.calibration
        return (c.bytes_per_activation * self.activation_elements + c.bytes_per_parameter * self.parameters
                + 4.0 * self.input_elements + c.bytes_per_point * self.points + c.fixed_overhead_bytes)

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
        encoder_input, *rest = model.example_inputs(batch_size, patch_size, points_per_patch)
        model(encoder_input, *rest)
        for h in hooks:
            h.remove()
    return counted[0], sum(p.numel() for p in model.parameters()), encoder_input.numel()


@lru_cache(maxsize=64)
def _coefficients(architecture: str, kwargs_json: str):
    """A constant, activations per patch voxel and per query point, the parameter count, and the
    encoder input's elements (a constant and per voxel: an image grows with the patch, a cloud not).

    Encoder layers scale with the patch's voxels, decoder layers with the points, and a global
    encoder's latent grid is fixed, so three traces at small sizes give the exact linear model."""
    kwargs = json.loads(kwargs_json)
    with torch.device("meta"):
        unit = [2 * m for m in build_model(architecture, kwargs).input_multiple()]
    larger = [2 * u for u in unit]
    base, parameters, unit_input = _trace(architecture, kwargs, unit, 1, 256)
    more_points, _, _ = _trace(architecture, kwargs, unit, 1, 512)
    more_voxels, _, larger_input = _trace(architecture, kwargs, larger, 1, 256)
    added_voxels = float(np.prod(larger)) - float(np.prod(unit))
    per_point = (more_points - base) / 256.0
    per_voxel = (more_voxels - base) / added_voxels
    constant = base - per_point * 256 - per_voxel * float(np.prod(unit))
    input_per_voxel = (larger_input - unit_input) / added_voxels
    return constant, per_voxel, per_point, parameters, (unit_input - input_per_voxel * float(np.prod(unit)), input_per_voxel)


def training_footprint(architecture: str, kwargs: Dict[str, Any], patch_size: Sequence[int], batch_size: int,
                       points_per_patch: int) -> TrainingFootprint:
    constant, per_voxel, per_point, parameters, (input_constant, input_per_voxel) = \
        _coefficients(architecture, json.dumps(kwargs, sort_keys=True))
    voxels = float(np.prod(patch_size))
    activations = batch_size * (constant + per_voxel * voxels + per_point * points_per_patch)
    inputs = batch_size * (input_constant + input_per_voxel * voxels + points_per_patch * 4)
    calibration = architecture_class(architecture).memory_calibration or DEFAULT_CALIBRATION
    return TrainingFootprint(int(activations), parameters, int(inputs), batch_size * points_per_patch, calibration)
