"""Training seed 004's learned sampler against a frozen shape model, and using it.

The thesis's protocol: Adam at 0.01 (a tenth after half the epochs), batch 8, 400 epochs, the
reconstruction scored at every voxel of the crop through T = 100 unrolled steps.  Backpropagating
through 100 steps over every voxel needs a GPU; ``SamplerTraining`` says what a run used (fewer
steps during training, ``fit_points`` of the cubes' voxels per unrolled step, ``check_points`` voxels
per shape scoring it, half of them near the surface), and the sampler is always evaluated with the
full T."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import numpy as np
import torch
from tqdm import tqdm

from nnocc.shape.crops import CropGrid
from nnocc.shape.latent_fit import LatentFit
from nnocc.shape.learned_sampler import (
    PatchGenerator,
    centres_to_voxels,
    cubes_from_centres,
    proximity_loss,
    reconstruction_loss,
    repulsion_loss,
    simplify_mask,
)
from nnocc.shape.network import ShapeDecoder
from nnocc.shape.training import surface_voxels, training_points
from nnocc.utils.serialization import JsonDataclass

LOSS_WEIGHTS = {"reconstruction": 1.0, "proximity": 1.0, "repulsion": 0.001}


@dataclass
class SamplerTraining(JsonDataclass):
    count: int = 8                   # N cubes
    edge: int = 11                   # K voxels per edge
    latent_steps: int = 100          # T during training (the thesis: as at inference)
    epochs: int = 400
    minutes: Optional[float] = None
    batch_size: int = 8
    learning_rate: float = 0.01
    check_points: Optional[int] = None     # None: every voxel of the crop
    fit_points: Optional[int] = None       # cube voxels per unrolled step (None: all of them)
    seed: int = 12345


@dataclass
class SamplerHistory(JsonDataclass):
    loss: List[float] = field(default_factory=list)          # per epoch
    epochs: int = 0                                           # begun (the last may be cut by the budget)
    batches: int = 0
    seconds: float = 0.0


def check_set(crop: np.ndarray, near: np.ndarray, grid: CropGrid, count: Optional[int],
              rng: np.random.Generator) -> Tuple[torch.Tensor, torch.Tensor]:
    """Where the reconstruction is scored: every voxel of the crop, or ``count`` of them (half near the surface)."""
    if count is None:
        index = np.argwhere(np.ones_like(crop, dtype=bool))
        positions = grid.index_to_mm(index)
        return torch.from_numpy(positions).float(), torch.from_numpy(crop.reshape(-1).astype(np.float32))
    positions, targets = training_points(crop, near, grid, count, rng)
    return torch.from_numpy(positions).float(), torch.from_numpy(targets)


def train_sampler(decoder: ShapeDecoder, crops: np.ndarray, grid: CropGrid, settings: SamplerTraining,
                  show_progress: bool = True):
    """-> (generator in eval mode, history).  The shape model stays frozen."""
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    decoder.eval().requires_grad_(False)
    generator = PatchGenerator(settings.count)
    optimizer = torch.optim.Adam(generator.parameters(), lr=settings.learning_rate)
    simplified = [simplify_mask(c, seed=i) for i, c in enumerate(crops)]
    near = [np.argwhere(surface_voxels(c)) for c in crops]
    fit = LatentFit(steps=settings.latent_steps, points_per_step=settings.fit_points)
    history, started = SamplerHistory(), time.time()
    for epoch in tqdm(range(settings.epochs), desc="patch sampler", disable=not show_progress):
        if epoch == settings.epochs // 2:
            for group in optimizer.param_groups:
                group["lr"] = settings.learning_rate / 10
        losses = []
        for batch in np.array_split(rng.permutation(len(crops)), max(1, len(crops) // settings.batch_size)):
            if len(batch) < 2:          # batch norm needs two shapes
                continue
            losses.append(sampler_step(generator, optimizer, decoder, [simplified[i] for i in batch],
                                       [crops[i] for i in batch], [near[i] for i in batch], grid, settings, fit, rng))
            history.batches += 1
            if settings.minutes and time.time() - started > 60 * settings.minutes:
                break               # within an epoch: on a CPU one epoch of a large dataset is many minutes
        history.loss.append(float(np.mean(losses)) if losses else float("nan"))
        history.epochs += 1
        if settings.minutes and time.time() - started > 60 * settings.minutes:
            break
    history.seconds = time.time() - started
    return generator.eval(), history


def sampler_step(generator: PatchGenerator, optimizer: torch.optim.Optimizer, decoder: ShapeDecoder,
                 simplified: List, crops: List[np.ndarray], near: List[np.ndarray], grid: CropGrid,
                 settings: SamplerTraining, fit: LatentFit, rng: np.random.Generator) -> float:
    """One batch: the proximity and repulsion losses, then each shape's reconstruction loss through the
    unrolled fit (one shape at a time, its graph is large), accumulated; one optimiser step."""
    optimizer.zero_grad(set_to_none=True)
    points = torch.stack([s.points for s in simplified])
    proposals, centres = generator(points)
    shaping = LOSS_WEIGHTS["proximity"] * proximity_loss(proposals, points) \
        + LOSS_WEIGHTS["repulsion"] * repulsion_loss(centres)
    shaping.backward(retain_graph=True)
    total = float(shaping.detach())
    for b, (mask, shape_points, surface) in enumerate(zip(crops, simplified, near)):
        positions, targets = cubes_from_centres(centres_to_voxels(centres[b], shape_points), mask, settings.edge, grid)
        check_positions, check_targets = check_set(mask, surface, grid, settings.check_points, rng)
        loss = LOSS_WEIGHTS["reconstruction"] * reconstruction_loss(decoder, positions, targets, check_positions,
                                                                    check_targets, fit)
        (loss / len(crops)).backward(retain_graph=b < len(crops) - 1)
        total += float(loss.detach()) / len(crops)
    optimizer.step()
    return total


class LearnedCentres:
    """A trained generator as a cube sampler: its projected centres, rounded to the nearest voxel (cubes an
    annotator can label; the thesis reads labels at floor(x) of continuous centres)."""

    def __init__(self, generator: PatchGenerator):
        self.generator = generator.eval()

    @torch.no_grad()
    def __call__(self, mask: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
        if count != self.generator.count:
            raise ValueError(f"this sampler was trained for {self.generator.count} cubes, not {count}")
        simplified = simplify_mask(mask, seed=int(rng.integers(2 ** 31)))
        _, centres = self.generator(simplified.points[None])
        voxels = centres_to_voxels(centres[0], simplified).numpy()
        return np.clip(np.round(voxels).astype(int), 0, np.asarray(mask.shape) - 1)
