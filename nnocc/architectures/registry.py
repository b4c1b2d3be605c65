"""Architectures by name.  Adding one: write its module, add one line to ARCHITECTURES.

Every architecture follows the same contract, so training, inference and export never look
inside: ``encode(patch) -> EncodedPatch(features, aux_logits)``, ``decode(points, features) ->
logits``, and ``build_kwargs(preset, in_channels, num_outputs, spacing)`` for the planner.
"""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any, Dict

from torch import nn

from nnocc.utils.errors import NnoccError

ARCHITECTURES: Dict[str, str] = {
    "convocc": "nnocc.architectures.convocc:ConvOccNet",
}


def _resolve(name: str):
    if name not in ARCHITECTURES:
        raise NnoccError(f"unknown architecture {name!r}; registered: {', '.join(sorted(ARCHITECTURES))}")
    module_name, class_name = ARCHITECTURES[name].split(":")
    module = importlib.import_module(module_name)
    return module, getattr(module, class_name)


def architecture_module(name: str) -> ModuleType:
    return _resolve(name)[0]


def build_model(name: str, kwargs: Dict[str, Any]) -> nn.Module:
    _, cls = _resolve(name)
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise NnoccError(f"architecture {name!r}: the plan's arguments do not fit ({e})") from None
