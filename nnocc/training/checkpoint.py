"""Training's side of checkpoints: RNG state, which checkpoint to resume, encoder weights to start from."""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
import torch

from nnocc.architectures.base import OccupancyArchitecture
from nnocc.utils.checkpoints import load_checkpoint
from nnocc.utils.errors import NnoccError

CHECKPOINT_NAMES = ("checkpoint_final.pth", "checkpoint_best.pth", "checkpoint_latest.pth")


def snapshot_name(minutes: float) -> str:
    """The checkpoint kept as the training clock passes ``minutes`` (a learning curve's point)."""
    return f"checkpoint_at_{minutes:g}min.pth"


def rng_state(numpy_rng: np.random.Generator) -> Dict[str, Any]:
    return {"torch": torch.get_rng_state(), "numpy": numpy_rng.bit_generator.state,
            "python": list(random.getstate()[1]), "python_version": random.getstate()[0]}


def restore_rng_state(state: Dict[str, Any], numpy_rng: np.random.Generator) -> None:
    torch.set_rng_state(state["torch"])
    numpy_rng.bit_generator.state = state["numpy"]
    random.setstate((state["python_version"], tuple(state["python"]), None))


def latest_resumable(folder: Path) -> Optional[Path]:
    """The checkpoint to continue from: latest, else best; final means the run already finished."""
    for name in ("checkpoint_latest.pth", "checkpoint_best.pth"):
        if (folder / name).is_file():
            return folder / name
    return None


def load_encoder_weights(model: OccupancyArchitecture, path: Path) -> str:
    """Load a local encoder checkpoint (nothing is downloaded); returns a one-line report.

    Accepts a plain state dict or one nested under 'state_dict' / 'network_weights' / 'model',
    with or without 'module.' and 'encoder.' prefixes; tensors whose name and shape match the
    encoder's are copied, the rest are listed as skipped.
    """
    state = load_checkpoint(path)
    for key in ("state_dict", "network_weights", "model"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    encoder = model.pretrained_module()
    own = encoder.state_dict()
    matched = {}
    for name, tensor in state.items():
        short = name
        for prefix in ("module.", "encoder."):
            short = short[len(prefix):] if short.startswith(prefix) else short
        if short in own and own[short].shape == tensor.shape:
            matched[short] = tensor
    if not matched:
        raise NnoccError(f"{path}: no tensor matches the encoder's names and shapes; is it an nnocc encoder checkpoint?")
    encoder.load_state_dict(matched, strict=False)
    return f"loaded {len(matched)} of {len(own)} encoder tensors from {path} ({len(state) - len(matched)} skipped)"
