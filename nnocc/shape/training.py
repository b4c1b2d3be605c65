"""Training the shape model of one structure: an auto-decoder over the training shapes' crops (one
code per shape, learnt with the network, then discarded: test shapes get theirs by fitting).

Each step takes ``batch_size`` shapes and ``points_per_shape`` positions in each: half at jittered
voxel centres anywhere in the crop, half within two voxels of the surface (where shapes differ);
the loss is BCE + (1 - soft Dice) per shape plus the codes' L2 prior (the public code's 1e-4).
Adam, the network at 1e-4 x batch and the codes at 1e-3 (the public code's rates).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np
import torch
from scipy.ndimage import binary_dilation, binary_erosion
from tqdm import tqdm

from nnocc.shape.crops import CropGrid
from nnocc.shape.network import LATENT_DIM, ShapeDecoder, occupancy_loss
from nnocc.utils.serialization import JsonDataclass


@dataclass
class ShapeTraining(JsonDataclass):
    steps: int = 2000
    minutes: Optional[float] = None          # a wall-clock budget instead of (before) the steps
    batch_size: int = 8
    points_per_shape: int = 4096
    network_learning_rate: float = 8e-4      # 1e-4 x batch
    latent_learning_rate: float = 1e-3
    latent_prior: float = 1e-4
    seed: int = 12345


@dataclass
class ShapeHistory(JsonDataclass):
    loss: List[float] = field(default_factory=list)          # per 50 steps
    steps: int = 0
    seconds: float = 0.0


def surface_voxels(mask: np.ndarray) -> np.ndarray:
    """Voxels within two voxels of the mask's surface (inside or outside)."""
    return binary_dilation(mask, iterations=2) & ~binary_erosion(mask, iterations=2)


def training_points(crop: np.ndarray, near: np.ndarray, grid: CropGrid, count: int, rng: np.random.Generator):
    """(count, 3) positions in mm from the crop's centre and their occupancies."""
    shape = np.asarray(crop.shape)
    anywhere = rng.uniform(0, 1, size=(count // 2, 3)) * shape - 0.5
    candidates = near if len(near) else np.argwhere(np.ones_like(crop))
    band = candidates[rng.integers(len(candidates), size=count - count // 2)] + rng.uniform(-0.5, 0.5, (count - count // 2, 3))
    index = np.concatenate([anywhere, band])
    nearest = np.clip(np.round(index).astype(int), 0, shape - 1)
    return grid.index_to_mm(index), crop[tuple(nearest.T)].astype(np.float32)


def train_shape_decoder(crops: np.ndarray, grid: CropGrid, settings: ShapeTraining, show_progress: bool = True):
    """crops (S, *grid) bool -> (decoder, the training codes, history)."""
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    decoder = ShapeDecoder()
    codes = torch.nn.Parameter(torch.randn(len(crops), LATENT_DIM) * 1e-4)
    optimizer = torch.optim.Adam([{"params": decoder.parameters(), "lr": settings.network_learning_rate},
                                  {"params": [codes], "lr": settings.latent_learning_rate}])
    near = [np.argwhere(surface_voxels(c)) for c in crops]
    history, started, running = ShapeHistory(), time.time(), []
    bar = tqdm(range(settings.steps), desc="shape model", disable=not show_progress)
    for _ in bar:
        chosen = rng.choice(len(crops), size=min(settings.batch_size, len(crops)), replace=False)
        drawn = [training_points(crops[i], near[i], grid, settings.points_per_shape, rng) for i in chosen]
        positions = torch.from_numpy(np.stack([p for p, _ in drawn])).float()
        targets = torch.from_numpy(np.stack([t for _, t in drawn]))
        z = codes[torch.from_numpy(chosen)]
        loss = occupancy_loss(decoder(z, positions), targets, torch.ones_like(targets)).mean() \
            + settings.latent_prior * (z * z).sum(1).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        running.append(float(loss.detach()))
        history.steps += 1
        if len(running) == 50:
            history.loss.append(float(np.mean(running)))
            bar.set_postfix(loss=f"{history.loss[-1]:.4f}")
            running = []
        if settings.minutes and time.time() - started > 60 * settings.minutes:
            break
    history.seconds = time.time() - started
    return decoder.eval(), codes.detach(), history
