"""3D convolutions through oneDNN on the CPU, whatever the batch size.

PyTorch picks its CPU convolution per call.  For a batch of one whose ``channels x depth x height``
is at most 20,480 it takes the native ``slow_conv3d``, which unfolds the input into a column buffer
of ``C_in x k^3`` rows per output voxel: 160 MB for one 16-channel 3 x 3 x 3 convolution over a
32 x 40 x 72 grid, where oneDNN needs 6 MB and a third of the time.  Training (batches of two or
more) always gets oneDNN; inference encodes one tile at a time and mostly did not.  Inside
``onednn_convolutions()`` every such call goes to oneDNN instead.
"""
from __future__ import annotations

import contextlib
from typing import Any, Dict, List, Sequence, Tuple, Union

import torch
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode

IntTriple = Union[int, Sequence[int]]
_CONV3D = {F.conv3d, torch.conv3d}


def _triple(value: IntTriple) -> List[int]:
    return [int(value)] * 3 if isinstance(value, int) else [int(v) for v in value]


def _conv3d_arguments(args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Tuple[Any, ...]:
    """F.conv3d's (input, weight, bias, stride, padding, dilation, groups), defaults filled in."""
    names = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
    defaults: Dict[str, Any] = {"bias": None, "stride": 1, "padding": 0, "dilation": 1, "groups": 1}
    values = dict(zip(names, args)) | kwargs
    return tuple(values.get(n, defaults.get(n)) for n in names)


def _onednn_can_take(x: torch.Tensor, weight: torch.Tensor, padding: Any) -> bool:
    return (x.device.type == "cpu" and x.dim() == 5 and x.dtype == torch.float32 and weight.dtype == torch.float32
            and not isinstance(padding, str) and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)))


class OneDnnConvolutions(TorchFunctionMode):
    """Sends CPU float32 3D convolutions without gradients to oneDNN; everything else runs as called."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _CONV3D:
            x, weight, bias, stride, padding, dilation, groups = _conv3d_arguments(args, kwargs)
            if _onednn_can_take(x, weight, padding):
                return torch.ops.aten.mkldnn_convolution(x, weight, bias, _triple(padding), _triple(stride),
                                                         _triple(dilation), int(groups))
        return func(*args, **kwargs)


def onednn_convolutions(device: torch.device) -> contextlib.AbstractContextManager:
    """The mode on a CPU whose torch has oneDNN enabled; elsewhere nothing changes."""
    usable = (device.type == "cpu" and torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled
              and hasattr(torch.ops.aten, "mkldnn_convolution"))
    return OneDnnConvolutions() if usable else contextlib.nullcontext()
