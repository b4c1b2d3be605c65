"""A trained shape model on disk: ``nnocc_results/DatasetXXX/shape_models/<structure>/fold_<k>/``
holds ``shape_model.json`` (what it is, how it was trained, its split) and ``checkpoint.pth``
(weights only: the decoder and the training shapes' codes), loaded with ``weights_only=True``."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List

import torch

from nnocc.shape.crops import CropGrid
from nnocc.shape.learned_sampler import PatchGenerator
from nnocc.shape.network import ShapeDecoder
from nnocc.shape.training import ShapeHistory, ShapeTraining
from nnocc.utils.checkpoints import load_checkpoint, save_checkpoint
from nnocc.utils.errors import NnoccError
from nnocc.utils.json_io import save_json
from nnocc.utils.serialization import JsonDataclass

MODEL_FILE, WEIGHTS_FILE = "shape_model.json", "checkpoint.pth"


@dataclass
class ShapeModelInfo(JsonDataclass):
    structure: str
    label_values: List[int]
    fold: int
    grid: CropGrid
    training: ShapeTraining
    history: ShapeHistory
    split: Dict[str, List[str]] = field(default_factory=dict)       # cases: train / val / test
    shapes: List[str] = field(default_factory=list)                 # the training shapes, as case:component
    parameters: int = 0


def shape_model_folder(results: Path, structure: str, fold: int) -> Path:
    return results / "shape_models" / structure / f"fold_{fold}"


def save_shape_model(folder: Path, info: ShapeModelInfo, decoder: ShapeDecoder, codes: torch.Tensor) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    save_checkpoint(folder / WEIGHTS_FILE, {"decoder": decoder.state_dict(), "codes": codes})
    info.save(folder / MODEL_FILE)


def load_shape_model(folder: Path):
    """(info, decoder in eval mode)."""
    if not (folder / MODEL_FILE).is_file() or not (folder / WEIGHTS_FILE).is_file():
        raise NnoccError(f"{folder}: no trained shape model; run nnocc_train_shape_model first")
    info = ShapeModelInfo.load(folder / MODEL_FILE)
    decoder = ShapeDecoder()
    decoder.load_state_dict(load_checkpoint(folder / WEIGHTS_FILE)["decoder"])
    return info, decoder.eval()


SAMPLER_FILE, SAMPLER_WEIGHTS = "sampler.json", "sampler.pth"


def sampler_folder(model_folder: Path, count: int, edge: int) -> Path:
    return model_folder / "samplers" / f"N{count}_K{edge}"


def save_sampler(folder: Path, settings, history, generator: torch.nn.Module) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    save_checkpoint(folder / SAMPLER_WEIGHTS, {"generator": generator.state_dict()})
    save_json({"training": settings.to_dict(), "history": history.to_dict(),
               "parameters": sum(p.numel() for p in generator.parameters())}, folder / SAMPLER_FILE)


def load_sampler(folder: Path, count: int) -> PatchGenerator:
    if not (folder / SAMPLER_WEIGHTS).is_file():
        raise NnoccError(f"{folder}: no trained patch sampler for these cubes; run nnocc_train_patch_sampler first")
    generator = PatchGenerator(count)
    generator.load_state_dict(load_checkpoint(folder / SAMPLER_WEIGHTS)["generator"])
    return generator.eval()
