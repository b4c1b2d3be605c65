"""The shape model as a shape prior that repairs predicted structures (pipeline use (b)).

Per connected component of a predicted structure: the voxels farther than ``trusted_margin_mm`` from the
predicted surface are taken as right (inside or outside), the ones nearer as a weak hint, one shape code
is fitted to a sample of them, and the shape model decides where the surface goes.  ``band`` changes only the voxels within
the margin of the predicted surface (a ragged or notched boundary is smoothed into a plausible shape);
``replace`` puts the shape model's whole component in place of the prediction's.  Voxels the repair adds
take the structure's first label value; the ones it removes become background.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Sequence

import numpy as np
import torch
from scipy.ndimage import distance_transform_edt

from nnocc.shape.crops import CropGrid, components, crop_component
from nnocc.shape.dataset import MIN_COMPONENT_SHARE
from nnocc.shape.latent_fit import LatentFit, fit_latents
from nnocc.shape.network import ShapeDecoder
from nnocc.shape.reconstruct import evaluate_around
from nnocc.utils.serialization import JsonDataclass

REPAIR_MODES = ("band", "replace")


@dataclass
class RepairSettings(JsonDataclass):
    mode: str = "band"
    trusted_margin_mm: float = 3.0      # farther than this from the predicted surface: taken as right
    band_weight: float = 0.1            # the voxels nearer the predicted surface count this much
    points: int = 20_000                # voxels the code is fitted to, per component
    latent_steps: int = 100
    points_per_step: int = 4096
    min_component_share: float = MIN_COMPONENT_SHARE    # smaller components (specks) are left as predicted
    seed: int = 0


def signed_distance_mm(mask: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """Distance to the mask's surface, positive inside: a voxel centre's distance to the nearest voxel of
    the other side, less half a voxel (the surface runs between the two), so that on a 3 mm grid the
    voxels either side of the surface are 1.5 mm from it and fall within a 2 mm margin."""
    half = 0.5 * float(min(spacing))
    inside = distance_transform_edt(mask, sampling=spacing) - half
    outside = distance_transform_edt(~mask, sampling=spacing) - half
    return np.where(mask, inside, -outside)


def fitting_points(crop: np.ndarray, grid: CropGrid, settings: RepairSettings, rng: np.random.Generator):
    """Positions (M, 3) mm from the crop's centre, occupancies and weights: voxels far from the predicted
    surface (weight 1), as many inside as outside when both have enough, so that neither side outweighs
    the other; and voxels within the margin at ``band_weight`` (they place the surface where the shape
    model finds that plausible; a notch or bulge the model cannot represent is outvoted)."""
    distance = signed_distance_mm(crop, [grid.spacing_mm] * 3)
    margin = settings.trusted_margin_mm
    parts = [(distance > margin, 1.0, settings.points // 4), (distance < -margin, 1.0, settings.points // 4),
             (np.abs(distance) <= margin, settings.band_weight, settings.points // 2)]
    index, weights = [], []
    for region, weight, wanted in parts:
        where = np.argwhere(region)
        take = min(len(where), wanted) if weight > 0 else 0
        index.append(where[rng.choice(len(where), size=take, replace=False)] if take else where[:0])
        weights.append(np.full(take, weight, dtype=np.float32))
    chosen = np.concatenate(index)
    positions = grid.index_to_mm(chosen)
    return positions, crop[tuple(chosen.T)].astype(np.float32), np.concatenate(weights)


def repair_mask(mask: np.ndarray, spacing: Sequence[float], decoder: ShapeDecoder, grid: CropGrid,
                settings: RepairSettings) -> Dict:
    """{'mask': the repaired structure (the input's shape), 'components': per component, voxels added and removed}."""
    if settings.mode not in REPAIR_MODES:
        raise ValueError(f"repair mode {settings.mode!r} is not one of {', '.join(REPAIR_MODES)}")
    rng = np.random.default_rng(settings.seed)
    repaired = mask.copy()
    report = []
    for component in components(mask, min_share=settings.min_component_share):
        crop, centre = crop_component(component, spacing, grid)
        positions, targets, weights = fitting_points(crop, grid, settings, rng)
        if (targets * weights).sum() == 0:        # nothing inside to fit to
            continue
        generator = torch.Generator().manual_seed(int(rng.integers(2 ** 31)))
        fit = LatentFit(steps=settings.latent_steps, points_per_step=settings.points_per_step)
        code = fit_latents(decoder, torch.from_numpy(positions).float()[None], torch.from_numpy(targets)[None],
                           torch.from_numpy(weights)[None], fit=fit, generator=generator)[0]
        shape = evaluate_around(decoder, code, mask.shape, spacing, centre, grid)
        if settings.mode == "band":
            near = np.abs(signed_distance_mm(component, spacing)) <= settings.trusted_margin_mm
            new = np.where(near, shape, component)
        else:
            new = shape
        added, removed = new & ~repaired, component & ~new
        repaired = (repaired & ~removed) | added
        report.append({"voxels": int(component.sum()), "added": int(added.sum()), "removed": int(removed.sum())})
    return {"mask": repaired, "components": report}


def repair_labels(labels: np.ndarray, spacing: Sequence[float], values: Sequence[int], decoder: ShapeDecoder,
                  grid: CropGrid, settings: RepairSettings) -> Dict:
    """The label map with the structure (``values``) repaired: added voxels get ``values[0]``, removed ones 0."""
    structure = np.isin(labels, values)
    result = repair_mask(structure, spacing, decoder, grid, settings)
    out = labels.copy()
    out[structure & ~result["mask"]] = 0
    out[result["mask"] & ~structure] = values[0]
    return {"labels": out, "components": result["components"]}
