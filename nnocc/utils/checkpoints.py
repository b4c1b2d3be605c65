"""Checkpoints hold tensors and plain Python values only, and load with ``weights_only=True``.
Training writes them; inference, model sharing and training read them."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict

import torch

from nnocc.utils.errors import NnoccError


def save_checkpoint(path: Path, payload: Dict[str, Any]) -> None:
    """Written under a temporary name and renamed, so a kill never leaves half a checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, map_location: str = "cpu", mmap: bool = False) -> Dict[str, Any]:
    """``mmap``: tensors are read from the mapped file where used, so that a checkpoint's optimiser
    state, never touched at inference, costs no memory (an 82 MB base 3d_occ checkpoint: 48 MB less
    resident after loading, 80 MB less at the peak)."""
    if not path.is_file():
        raise NnoccError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as e:  # noqa: BLE001 - any failure to load is a user-facing problem with this file
        raise NnoccError(f"{path}: cannot be loaded safely ({str(e).splitlines()[0][:200]})") from None
