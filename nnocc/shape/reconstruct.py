"""A structure rebuilt from a few labelled cubes: per connected component, the cubes a sampler
chooses in the component's crop, one shape code fitted to all their voxels, the shape model
evaluated at every voxel of the input image within the crop.  The result has the input's geometry."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from scipy.ndimage import binary_dilation

from nnocc.io.images import ImageGeometry
from nnocc.shape.crops import CropGrid, components, crop_component, crop_to_source
from nnocc.shape.latent_fit import LatentFit, fit_latents
from nnocc.shape.network import ShapeDecoder
from nnocc.shape.samplers import CubeSampler, cube_voxels
from nnocc.utils.errors import NnoccError

EVALUATION_CHUNK = 200_000


@dataclass
class CubeBudget:
    count: int          # N cubes per component
    edge: int           # K voxels per edge, at the crop's spacing


@dataclass
class Reconstruction:
    mask: np.ndarray                                   # the input's shape
    cubes: List[Dict] = field(default_factory=list)    # per component: centres in physical mm, edge in mm


def check_structure(mask: np.ndarray, budget: CubeBudget, where: str) -> None:
    voxels = int(mask.sum())
    if voxels == 0:
        raise NnoccError(f"{where}: the structure's mask is empty")
    if voxels < budget.edge ** 3:
        raise NnoccError(f"{where}: the structure has {voxels} voxels, fewer than one cube of {budget.edge}^3")


def labelled_cubes(crop: np.ndarray, grid: CropGrid, centres: np.ndarray, edge: int):
    """Positions (M, 3) mm from the crop's centre and occupancies (M,) of the cubes' voxels."""
    voxels = cube_voxels(centres, edge, crop.shape)
    positions = grid.index_to_mm(voxels)
    return positions, crop[tuple(voxels.T)].astype(np.float32)


def fit_to_cubes(decoder: ShapeDecoder, crop: np.ndarray, grid: CropGrid, centres: np.ndarray, edge: int,
                 fit: LatentFit, rng: np.random.Generator) -> Tuple[torch.Tensor, int]:
    """The shape code fitted to the labelled voxels of the cubes around ``centres``, and their count."""
    positions, targets = labelled_cubes(crop, grid, centres, edge)
    generator = torch.Generator().manual_seed(int(rng.integers(2 ** 31)))
    code = fit_latents(decoder, torch.from_numpy(positions).float()[None], torch.from_numpy(targets)[None],
                       fit=fit, generator=generator)[0]
    return code, len(targets)


@torch.no_grad()
def occupancy_logits(decoder: ShapeDecoder, code: torch.Tensor, positions_mm: np.ndarray) -> np.ndarray:
    """The shape model's logits at positions (..., 3) mm, in chunks."""
    flat = torch.from_numpy(np.ascontiguousarray(positions_mm.reshape(-1, 3))).float()
    logits = [decoder(code[None], flat[i:i + EVALUATION_CHUNK][None])[0] for i in range(0, len(flat), EVALUATION_CHUNK)]
    return torch.cat(logits).numpy().reshape(positions_mm.shape[:-1]) if logits else np.zeros(positions_mm.shape[:-1])


def occupancy_on_box(decoder: ShapeDecoder, code: torch.Tensor, positions_mm: np.ndarray) -> np.ndarray:
    """The shape model's mask on a box of voxels (X, Y, Z, 3): first at every second voxel, then at full
    resolution only where the coarse samples around a voxel disagree (MISE's idea, one level: the
    surface's voxels, widened by two, instead of all of them; a part thinner than two voxels between
    coarse samples can still be missed)."""
    coarse = occupancy_logits(decoder, code, positions_mm[::2, ::2, ::2]) > 0
    lower = [np.arange(n) // 2 for n in positions_mm.shape[:3]]
    upper = [np.minimum((np.arange(n) + 1) // 2, c - 1) for n, c in zip(positions_mm.shape[:3], coarse.shape)]
    corners = [coarse[np.ix_(a, b, c)] for a in (lower[0], upper[0]) for b in (lower[1], upper[1])
               for c in (lower[2], upper[2])]
    mask = corners[0].copy()
    unsure = np.zeros_like(mask)
    for corner in corners[1:]:
        unsure |= corner != mask
    # a surface grazing a cell between agreeing samples shows in a neighbouring cell
    unsure = binary_dilation(unsure, iterations=2)
    if unsure.any():
        mask[unsure] = occupancy_logits(decoder, code, positions_mm[unsure]) > 0
    return mask


def evaluate_crop(decoder: ShapeDecoder, code: torch.Tensor, grid: CropGrid) -> np.ndarray:
    """The shape model on the crop's own grid (where seed 004 scores its reconstructions)."""
    return occupancy_on_box(decoder, code, grid.positions_mm())


def evaluate_around(decoder: ShapeDecoder, code: torch.Tensor, shape: Sequence[int], spacing: Sequence[float],
                    centre: np.ndarray, grid: CropGrid) -> np.ndarray:
    """The shape model at every voxel of an image of ``shape`` within the crop around ``centre``."""
    half = (np.asarray(grid.shape) - 1) / 2.0 * grid.spacing_mm / np.asarray(spacing)
    lo = np.clip(np.floor(centre - half).astype(int), 0, np.asarray(shape))
    hi = np.clip(np.ceil(centre + half).astype(int) + 1, 0, np.asarray(shape))
    out = np.zeros(shape, dtype=bool)
    if np.any(hi <= lo):
        return out
    axes = [(np.arange(a, b) - c) * s for a, b, c, s in zip(lo, hi, centre, spacing)]
    positions = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
    out[tuple(slice(a, b) for a, b in zip(lo, hi))] = occupancy_on_box(decoder, code, positions)
    return out


def reconstruct_structure(mask: np.ndarray, geometry: ImageGeometry, decoder: ShapeDecoder, grid: CropGrid,
                          sampler: CubeSampler, budget: CubeBudget, fit: LatentFit, rng: np.random.Generator,
                          where: str, min_component_voxels: Optional[int] = None) -> Reconstruction:
    """Every component with at least one cube's voxels, rebuilt from ``budget`` cubes of its own."""
    check_structure(mask, budget, where)
    result = Reconstruction(np.zeros(mask.shape, dtype=bool))
    for component in components(mask, min_component_voxels or budget.edge ** 3):
        crop, centre = crop_component(component, geometry.spacing, grid)
        centres = sampler(crop, budget.count, rng)
        code, labelled = fit_to_cubes(decoder, crop, grid, centres, budget.edge, fit, rng)
        result.mask |= evaluate_around(decoder, code, mask.shape, geometry.spacing, centre, grid)
        source = crop_to_source(centres, crop.shape, centre, grid, geometry.spacing)
        result.cubes.append({"centres_mm": geometry.index_to_physical(source).round(3).tolist(),
                             "edge_mm": budget.edge * grid.spacing_mm, "edge_voxels": budget.edge,
                             "labelled_voxels": labelled})
    return result
