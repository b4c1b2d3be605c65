"""Parameters and floating-point operations of one patch (SwIPE's table 1 unit), by torch's flop counter.

An occupancy network's patch costs its encoding plus one query per voxel of the patch (the dense
output a voxel network gives; MISE asks fewer, see the per-case inference cost); queries are
measured in evaluation mode (SwIPE then averages a point over its cell's neighbours) on a few
thousand points and scaled.  nnU-Net's counterpart (one forward pass of its patch) is the ``patch``
stage of nnunet_inference_cost.py.
"""
from __future__ import annotations

from typing import Any, Dict, Sequence

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from nnocc.architectures.base import OccupancyArchitecture, Placement
from nnocc.architectures.registry import build_model

MEASURED_POINTS = 4096


def _flops(function) -> float:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        function()
    return float(counter.get_total_flops())


def model_patch_cost(model: OccupancyArchitecture, patch: Sequence[int]) -> Dict[str, Any]:
    """GFLOPs of encoding one patch, MFLOPs per query, GFLOPs of a dense patch, parameters."""
    model.eval()
    torch.manual_seed(0)
    shape = model.example_inputs(1, patch, 1, torch.device("meta"))[0].shape
    encoder_input = torch.rand(shape) - 0.5
    placement = Placement.centred(1, patch)
    encode = _flops(lambda: model.encode(encoder_input, placement))
    with torch.no_grad():
        encoding = model.encode(encoder_input, placement)
    points = torch.rand(1, MEASURED_POINTS, 3) - 0.5
    per_point = _flops(lambda: model.decode(points, encoding)) / MEASURED_POINTS
    voxels = float(np.prod(patch))
    return {"patch_size": list(patch), "parameters": sum(p.numel() for p in model.parameters()),
            "gflops_encode": encode / 1e9, "mflops_per_query": per_point / 1e6,
            "gflops_per_patch": (encode + per_point * voxels) / 1e9, "queries_per_patch": int(voxels)}


def planned_patch_cost(architecture: str, kwargs: Dict[str, Any], patch: Sequence[int]) -> Dict[str, Any]:
    return model_patch_cost(build_model(architecture, kwargs), patch)
