"""Architectures by name.  Adding one: write its module (a subclass of ``OccupancyArchitecture``,
see base.py), add one line to ARCHITECTURES.  The planner then writes its configuration, and
training, inference, export and the contract test serve it without further changes."""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Type

import torch

from nnocc.architectures.base import OccupancyArchitecture
from nnocc.utils.errors import NnoccError

ARCHITECTURES: Dict[str, str] = {
    "convocc": "nnocc.architectures.convocc:ConvOccNet",       # seed 000, configuration 3d_occ
    "ossnet": "nnocc.architectures.ossnet:OssNet",             # seed 001, configuration 3d_ossnet
    "sconet": "nnocc.architectures.sconet:SCONet",             # seed 002, configuration 3d_sconet
    "swipe": "nnocc.architectures.swipe:SwIPE",                # seed 003, configuration 3d_swipe
}


def architecture_class(name: str) -> Type[OccupancyArchitecture]:
    if name not in ARCHITECTURES:
        raise NnoccError(f"unknown architecture {name!r}; registered: {', '.join(sorted(ARCHITECTURES))}")
    module_name, class_name = ARCHITECTURES[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def registered() -> List[str]:
    return list(ARCHITECTURES)


@dataclass(frozen=True)
class ArchitectureFacts:
    """What the loader and the planner need to know of a planned architecture, without weights."""
    input_multiple: List[int]
    aux_grid_shape: Optional[List[int]]
    cloud_size: Optional[int]              # points per step of a point-cloud encoder, else None


def architecture_facts(name: str, kwargs: Dict[str, Any], patch: Sequence[int]) -> ArchitectureFacts:
    with torch.device("meta"):        # no memory, no initialisation cost
        model = build_model(name, kwargs)
    return ArchitectureFacts(model.input_multiple(), model.aux_grid_shape(patch), model.cloud_size())


def build_model(name: str, kwargs: Dict[str, Any]) -> OccupancyArchitecture:
    cls = architecture_class(name)
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise NnoccError(f"architecture {name!r}: the plan's arguments do not fit ({e})") from None
