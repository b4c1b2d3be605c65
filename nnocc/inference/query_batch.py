"""How many query points one decoder call takes: as many as keep its working set within a budget.

A decoder's tensors per point differ forty-fold between architectures (traced: 3d_sconet 0.65 kB,
3d_occ 1.4-5 kB, 3d_ossnet 14 kB with its two 7^3 neighbourhoods per point), so one count for all either
starves the light ones or lets the heavy one hold hundreds of MB per call.  On a CPU small calls are
also faster, their tensors staying near the cache (a 3d_ossnet case, 2 cores: 16384 points per call
133 s and 1112 MB peak; 2048, with freed memory handed back after each call, 112 s and 688 MB).
"""
from __future__ import annotations

import json
import logging
from functools import lru_cache
from typing import Any, Dict, Optional, Sequence

import torch

from nnocc.architectures.registry import build_model
from nnocc.inference.mise import default_points_per_batch
from nnocc.utils.live_memory import LiveTensorBytes

logger = logging.getLogger(__name__)

QUERY_WORKING_SET_BYTES = {"cpu": 32 * 2 ** 20, "cuda": 1024 * 2 ** 20, "mps": 1024 * 2 ** 20}
POINTS_GRANULE = 1024          # batches in whole granules, never fewer than one
TRACE_POINTS = (4096, 8192)


def _decode_peak(model, patch: Sequence[int], points: int) -> int:
    encoder_input, query, placement = model.example_inputs(1, patch, points, torch.device("meta"))
    with torch.no_grad():
        encoding = model.encode(encoder_input, placement)
        with LiveTensorBytes() as counter:
            model.decode(query, encoding)
    return counter.peak


@lru_cache(maxsize=16)
def _bytes_per_point(architecture: str, kwargs_json: str, patch: tuple) -> Optional[float]:
    with torch.device("meta"):
        model = build_model(architecture, json.loads(kwargs_json)).eval()
    try:
        fewer, more = (_decode_peak(model, patch, n) for n in TRACE_POINTS)
    except Exception as e:  # noqa: BLE001 - a decoder that branches on its data cannot run on meta, however it fails
        logger.debug("%s: decoder not traceable on the meta device (%s); the device's points per call", architecture, e)
        return None
    return (more - fewer) / (TRACE_POINTS[1] - TRACE_POINTS[0])


def decoder_bytes_per_point(architecture: str, kwargs: Dict[str, Any], patch: Sequence[int]) -> Optional[float]:
    """Tensor bytes an evaluation-mode decoder call holds per query point, traced on the meta device;
    None where the decoder cannot be traced there."""
    return _bytes_per_point(architecture, json.dumps(kwargs, sort_keys=True), tuple(int(p) for p in patch))


def points_per_batch(architecture: str, kwargs: Dict[str, Any], patch: Sequence[int], device: torch.device) -> int:
    """The device's count (``mise.POINTS_PER_BATCH``), or fewer where a call would outgrow the device's
    working set (``QUERY_WORKING_SET_BYTES``)."""
    ceiling = default_points_per_batch(device)
    per_point = decoder_bytes_per_point(architecture, kwargs, patch)
    budget = QUERY_WORKING_SET_BYTES.get(device.type, QUERY_WORKING_SET_BYTES["cpu"])
    if not per_point or per_point <= 0:
        return ceiling
    fitting = int(budget // per_point) // POINTS_GRANULE * POINTS_GRANULE
    return max(POINTS_GRANULE, min(ceiling, fitting))


def release_memory_between_calls(points: int, device: torch.device) -> bool:
    """Whether to hand freed memory back after each decoder call: on a CPU, where calls were cut below the
    device's count (a heavy decoder, whose freed blocks glibc's heap would keep: a 3d_ossnet case peaked
    at 1670 MB without, 822 MB with, at 4096 points).  A light decoder's calls would only pay the page
    faults (3d_occ, dense on a test case: some 15 % slower)."""
    return device.type == "cpu" and points < default_points_per_batch(device)
