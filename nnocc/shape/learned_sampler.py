"""Seed 004's learned patch sampler: a point network proposes the N cube centres of a shape from its
mask, trained through the frozen shape model's reconstruction.

* The mask becomes 2,048 points: Sobol points in the unit cube, each replaced by the nearest occupied
  voxel (the voxels min-max scaled to the unit cube), then centred on [-0.5, 0.5]^3.
* The generator (SampleNet-style): 1x1 convolutions 64-128-128-128-256-128 with batch norm and ReLU,
  a global max-pool, two linear layers of 256 with batch norm and ReLU, a linear layer to 3N values
  (212,109 / 215,193 / 218,277 parameters for N = 4 / 8 / 12 with the temperature, as the thesis).
* The soft projection: each proposed centre becomes the softmax(-d^2 / t^2)-weighted mean of its
  k = 32 nearest points, t learnt (from 1), kept at inference (centres between points, inside the shape's hull).
* Losses: reconstruction (BCE + 1 - soft Dice of the shape model's output, its code fitted to the cubes'
  voxels through T unrolled Adam steps: latent_fit.py), proximity (mean squared distance of each
  proposal to its nearest point) and repulsion (sum of inverse squared distances between the
  projected centres), weighted 1 / 1 / 0.001.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np
import torch
from scipy.spatial import cKDTree
from scipy.stats import qmc
from torch import nn

from nnocc.shape.crops import CropGrid
from nnocc.shape.latent_fit import LatentFit, fit_latents
from nnocc.shape.network import ShapeDecoder, occupancy_loss
from nnocc.shape.samplers import cube_offsets

SIMPLIFIED_POINTS = 2048
NEIGHBOURS = 32
CONV_WIDTHS = (64, 128, 128, 128, 256, 128)


@dataclass
class SimplifiedMask:
    points: torch.Tensor          # (2048, 3) in [-0.5, 0.5]^3
    low: np.ndarray               # the occupied voxels' smallest index per axis
    span: np.ndarray              # and their extent: voxel = low + (point + 0.5) * span


def simplify_mask(mask: np.ndarray, seed: int = 0, count: int = SIMPLIFIED_POINTS) -> SimplifiedMask:
    occupied = np.argwhere(mask).astype(np.float64)
    if len(occupied) == 0:
        raise ValueError("the learned sampler needs an occupied voxel")
    low = occupied.min(axis=0)
    span = np.maximum(occupied.max(axis=0) - low, 1.0)
    unit = (occupied - low) / span
    _, nearest = cKDTree(unit).query(qmc.Sobol(3, seed=seed).random(count))
    return SimplifiedMask(torch.from_numpy(unit[nearest] - 0.5).float(), low, span)


class PatchGenerator(nn.Module):
    def __init__(self, count: int):
        super().__init__()
        self.count = count
        layers, width = [], 3
        for out in CONV_WIDTHS:
            layers += [nn.Conv1d(width, out, 1), nn.BatchNorm1d(out), nn.ReLU()]
            width = out
        self.points = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(width, 256), nn.BatchNorm1d(256), nn.ReLU(),
                                  nn.Linear(256, 256), nn.BatchNorm1d(256), nn.ReLU(), nn.Linear(256, 3 * count))
        self.temperature = nn.Parameter(torch.tensor(1.0))

    def forward(self, points: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """points (B, 2048, 3) -> (proposals G, projected centres R), each (B, N, 3)."""
        features = self.points(points.transpose(1, 2)).amax(dim=2)
        proposals = self.head(features).view(-1, self.count, 3)
        return proposals, soft_project(proposals, points, self.temperature)


def soft_project(proposals: torch.Tensor, points: torch.Tensor, temperature: torch.Tensor) -> torch.Tensor:
    d2 = torch.cdist(proposals, points) ** 2                                     # (B, N, P)
    nearest_d2, index = d2.topk(min(NEIGHBOURS, points.shape[1]), dim=2, largest=False)
    weights = torch.softmax(-nearest_d2 / temperature ** 2, dim=2)
    neighbours = torch.gather(points[:, None].expand(-1, proposals.shape[1], -1, -1), 2,
                              index[..., None].expand(-1, -1, -1, 3))
    return (weights[..., None] * neighbours).sum(2)


def proximity_loss(proposals: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    return (torch.cdist(proposals, points) ** 2).min(dim=2).values.mean()


def repulsion_loss(centres: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    d2 = torch.cdist(centres, centres) ** 2
    pairs = torch.triu(torch.ones_like(d2[0], dtype=torch.bool), diagonal=1)
    return (1.0 / (d2[:, pairs] + eps)).sum(dim=1).mean()


def centres_to_voxels(centres: torch.Tensor, simplified: SimplifiedMask) -> torch.Tensor:
    """(N, 3) projected centres -> continuous crop voxel indices (differentiable)."""
    low, span = torch.from_numpy(simplified.low).float(), torch.from_numpy(simplified.span).float()
    return low + (centres + 0.5) * span


def cubes_from_centres(voxels: torch.Tensor, crop: np.ndarray, edge: int, grid: CropGrid):
    """The cubes around continuous centres: positions (M, 3) mm (differentiable in the centres) and the
    crop's occupancy at each voxel they cover (floor, as the thesis; outside the crop: background)."""
    offsets = torch.from_numpy(cube_offsets(edge)).float()
    index = (voxels[:, None, :] + offsets[None]).reshape(-1, 3)
    whole = np.floor(index.detach().numpy()).astype(int)
    inside = np.all((whole >= 0) & (whole < np.asarray(crop.shape)), axis=1)
    targets = np.zeros(len(whole), dtype=np.float32)
    targets[inside] = crop[tuple(whole[inside].T)]
    centre = torch.tensor((np.asarray(crop.shape) - 1) / 2.0, dtype=torch.float32)
    return (index - centre) * grid.spacing_mm, torch.from_numpy(targets)


def reconstruction_loss(decoder: ShapeDecoder, positions: torch.Tensor, targets: torch.Tensor,
                        check_positions: torch.Tensor, check_targets: torch.Tensor, fit: LatentFit) -> torch.Tensor:
    """The shape model fitted to the cubes through ``fit.steps`` differentiable steps, scored at the
    check positions (the crop's voxels, or a sample of them)."""
    code = fit_latents(decoder, positions[None], targets[None], fit=fit, differentiable=True)
    logits = decoder(code, check_positions[None])
    return occupancy_loss(logits, check_targets[None], torch.ones_like(check_targets[None]))[0]
