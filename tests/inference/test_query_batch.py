"""Decoder calls sized by what their tensors hold per point, traced on the meta device."""
import torch

from nnocc.architectures.registry import architecture_class
from nnocc.inference import query_batch
from nnocc.inference.mise import default_points_per_batch
from nnocc.inference.query_batch import POINTS_GRANULE, decoder_bytes_per_point, points_per_batch

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def _kwargs(architecture, preset):
    return architecture_class(architecture).build_kwargs(preset, 1, 4, [1.0, 1.0, 1.0])


def test_a_decoder_heavy_per_point_gets_fewer_points_per_call_within_the_budget():
    patch = [32, 48, 48]
    heavy, light = _kwargs("ossnet", "tiny"), _kwargs("convocc", "tiny")
    heavy_bytes, light_bytes = decoder_bytes_per_point("ossnet", heavy, patch), decoder_bytes_per_point("convocc", light, patch)
    assert heavy_bytes > 5 * light_bytes > 0          # two 7^3 neighbourhoods per point against a few features
    heavy_points = points_per_batch("ossnet", heavy, patch, CPU)
    assert heavy_points % POINTS_GRANULE == 0
    assert heavy_points * heavy_bytes <= query_batch.QUERY_WORKING_SET_BYTES["cpu"]
    assert heavy_points < points_per_batch("convocc", light, patch, CPU) == default_points_per_batch(CPU)
    assert points_per_batch("ossnet", heavy, patch, CUDA) > heavy_points


def test_the_count_never_falls_below_one_granule(monkeypatch):
    monkeypatch.setitem(query_batch.QUERY_WORKING_SET_BYTES, "cpu", 1)
    assert points_per_batch("convocc", _kwargs("convocc", "tiny"), [32, 48, 48], CPU) == POINTS_GRANULE


def test_a_decoder_that_cannot_run_on_meta_keeps_the_devices_count():
    # 3d_swipe's evaluation asks whether any point has a neighbour cell (a data-dependent branch)
    kwargs = _kwargs("swipe", "tiny")
    assert decoder_bytes_per_point("swipe", kwargs, [64, 64, 64]) is None
    assert points_per_batch("swipe", kwargs, [64, 64, 64], CPU) == default_points_per_batch(CPU)
