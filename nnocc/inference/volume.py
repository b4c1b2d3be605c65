"""MISE over a whole case: box by box (one box per tile's ownership region), then seed 000's
second pass centred on small predicted structures."""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import partial
from typing import Callable, List, Optional, Sequence, Tuple

import cc3d
import numpy as np
import torch

from nnocc.inference.field import VolumeField
from nnocc.inference.mise import DEFAULT_CHILDREN, Decision, Mise, MiseResult, coarse_steps_for, lattice_size
from nnocc.inference.output_grid import OutputGrid
from nnocc.inference.tiling import ownership_runs


@dataclass
class VolumeSettings:
    coarse_spacing_mm: float
    decision: Decision
    max_points_per_batch: Optional[int] = None   # None: mise.default_points_per_batch(device)
    release_memory: bool = False              # hand freed memory back after each decoder call (mise.Mise)
    seed_from_aux: bool = False
    aux_hint: bool = True                     # refine where the auxiliary head sees a boundary, too
    hint_factor: float = 1.0                  # MISE starts this much coarser; the hint stays at coarse_spacing_mm
    children: str = DEFAULT_CHILDREN          # which children of an active cell go on (mise.Mise)
    keep_probabilities: bool = False
    refine_codes: Sequence[int] = ()          # decisions that get the centred second pass
    refine_spacing_factor: float = 0.5
    refine_max_structures: int = 16           # largest first; more is noise, not small anatomy


@dataclass
class VolumePrediction:
    codes: torch.Tensor                        # (N0, N1, N2) on the output grid
    probabilities: Optional[torch.Tensor]      # (K, N0, N1, N2) if kept
    queries: int = 0
    rounds: int = 0
    boxes: int = 0
    refined_structures: int = 0
    hint_lookups: int = 0                      # auxiliary-head lookups (a trilinear read, not a decoder query)

    @property
    def dense_queries(self) -> int:
        return int(self.codes.numel())


Box = Tuple[Tuple[int, int], ...]      # (first, end) per axis


def ownership_boxes(field: VolumeField, grid: OutputGrid) -> List[Tuple[Box, Tuple[int, ...]]]:
    """Boxes of output voxels (inside the crop), each with the one tile whose centre is nearest to
    all of its voxels."""
    scale, offset = grid.linear_map()
    per_axis = []
    for axis, (lo, hi) in enumerate(grid.crop_region()):
        index = np.arange(lo, hi)
        tiles = field.tiling.nearest_tile(axis, scale[axis] * index + offset[axis])
        per_axis.append([((lo + a, lo + b), tile) for tile, a, b in ownership_runs(tiles)])
    return [(tuple(run for run, _ in runs), tuple(tile for _, tile in runs)) for runs in itertools.product(*per_axis)]


def _empty(grid: OutputGrid, k: int, regions: bool, keep: bool, device) -> VolumePrediction:
    shape = tuple(grid.geometry.shape)
    # the decisions' own small integers (Decision.codes): at KiTS23's 512 x 512 resolution an int64 map
    # would be the largest array of the whole prediction
    codes = torch.zeros(shape, dtype=torch.int16 if k <= 15 else torch.int32, device=device)
    probs = None
    if keep:
        probs = torch.zeros((k, *shape), dtype=torch.float32, device=device)
        if not regions:
            probs[0] = 1.0
    return VolumePrediction(codes, probs)


def _run_box(query: Callable, box: Box, k: int, steps: Sequence[int], settings: VolumeSettings,
             initial: Optional[torch.Tensor], device, hint: Optional[torch.Tensor] = None,
             hint_steps: Optional[Sequence[int]] = None) -> MiseResult:
    shape = [b - a for a, b in box]
    mise = Mise(query, k, settings.decision, settings.max_points_per_batch, device, settings.children,
                settings.release_memory)
    return mise.run(shape, steps, initial, settings.keep_probabilities, hint, hint_steps)


def _store(prediction: VolumePrediction, box: Box, result) -> None:
    where = tuple(slice(a, b) for a, b in box)
    prediction.codes[where] = result.codes
    if prediction.probabilities is not None:
        prediction.probabilities[(slice(None), *where)] = result.probabilities
    prediction.queries += result.queries
    prediction.rounds += result.rounds


def _query_box(field: VolumeField, lower: torch.Tensor, scale: torch.Tensor, offset: torch.Tensor,
               points: torch.Tensor, tile: Optional[Tuple[int, ...]] = None, aux: bool = False) -> torch.Tensor:
    """The field at box-local output indices: shifted to the whole output grid, then mapped to voxels;
    from ``tile`` alone when the box has one (nearest stitching)."""
    where = (points + lower) * scale + offset
    return field.query(where, aux) if tile is None else field.query_tile(tile, where, aux)


def _aux_lattice(field: VolumeField, box: Box, steps: Sequence[int], k: int, query: Callable) -> torch.Tensor:
    """The auxiliary head's opinion on the box's coarse lattice, (K, *lattice)."""
    sizes = [lattice_size(b - a, s) for (a, b), s in zip(box, steps)]
    device = field.data.device
    lattice = torch.stack(torch.meshgrid(*[torch.arange(n, device=device) * s for n, s in zip(sizes, steps)],
                                         indexing="ij"), -1).reshape(-1, 3).float()
    return query(lattice, aux=True).T.reshape(k, *sizes)


def lattice_steps(field: VolumeField, grid: OutputGrid, settings: VolumeSettings) -> Tuple[List[int], Optional[List[int]]]:
    """MISE's first lattice and the auxiliary head's (None: no hint).  The hint stays on the
    coarse_spacing_mm lattice; MISE starts ``hint_factor`` times coarser only when the hint is there
    to guard what lies between its points."""
    spacing = grid.geometry.spacing
    hint_steps = coarse_steps_for(spacing, settings.coarse_spacing_mm)
    if not (settings.aux_hint and field.has_aux and max(hint_steps) > 1) or settings.seed_from_aux:
        return hint_steps, None
    return coarse_steps_for(spacing, settings.coarse_spacing_mm * max(settings.hint_factor, 1.0)), hint_steps


def predict_volume(field: VolumeField, grid: OutputGrid, k: int, settings: VolumeSettings) -> VolumePrediction:
    device = field.data.device
    prediction = _empty(grid, k, field.regions, settings.keep_probabilities, device)
    scale, offset = (torch.tensor(v, dtype=torch.float32, device=device) for v in grid.linear_map())
    steps, hint_steps = lattice_steps(field, grid, settings)
    own_tile = field.stitching == "nearest"
    for box, tile in ownership_boxes(field, grid):
        lower = torch.tensor([a for a, _ in box], dtype=torch.float32, device=device)
        query = partial(_query_box, field, lower, scale, offset, tile=tile if own_tile else None)
        initial = hint = None
        if settings.seed_from_aux and field.has_aux and max(steps) > 1:
            initial = _aux_lattice(field, box, steps, k, query)
        elif hint_steps is not None:
            hint = _aux_lattice(field, box, hint_steps, k, query)
            prediction.hint_lookups += hint[0].numel()
        _store(prediction, box, _run_box(query, box, k, steps, settings, initial, device, hint, hint_steps))
        prediction.boxes += 1
        if own_tile:
            field.forget_tile(tile)     # no other ownership box asks for it
    if settings.refine_codes:
        refine_small_structures(field, grid, k, settings, prediction, scale, offset)
    return prediction


def fuse(first: torch.Tensor, second: torch.Tensor, decision: Decision) -> torch.Tensor:
    """Per point, keep the more confident of two predictions (seed 000's second pass):
    per region the one farther from the threshold, or the one with the higher top probability."""
    if decision.regions:
        keep_second = (second - decision.threshold).abs() > (first - decision.threshold).abs()
        return torch.where(keep_second, second, first)
    keep_second = second.max(dim=1, keepdim=True).values > first.max(dim=1, keepdim=True).values
    return torch.where(keep_second, second, first)


def _refinement_query(field: VolumeField, centre: np.ndarray, box: Box, scale: torch.Tensor, offset: torch.Tensor,
                      decision: Decision) -> Callable:
    """The fused query of a tile centred on the structure and the regular tiles.  When a centred tile
    adds nothing (the structure already sits in the central half of its own tile, or the encoder
    sees the whole case), nothing is encoded again and only the finer MISE pass runs."""
    lower = torch.tensor([a for a, _ in box], dtype=torch.float32, device=field.data.device)
    found = field.centred_tile(centre)
    if found is None:
        return partial(_query_box, field, lower, scale, offset)
    centred, start = found

    def query(pts):
        pre = (pts + lower) * scale + offset
        return fuse(field.query(pre), field.members_probabilities(centred, start, pre), decision)
    return query


def _refinement_box(lo: np.ndarray, hi: np.ndarray, patch_out: np.ndarray, shape: Sequence[int]) -> Box:
    """The component's box grown by half its size (at least a tenth of a patch), kept inside the
    centred patch and the volume."""
    centre = (lo + hi - 1) / 2.0
    margin = np.maximum((hi - lo) * 0.5, patch_out * 0.1)
    first = np.maximum.reduce([np.zeros(3), np.floor(lo - margin), np.ceil(centre - patch_out / 2 + 1)])
    end = np.minimum.reduce([np.asarray(shape, dtype=np.float64), np.ceil(hi + margin), np.floor(centre + patch_out / 2)])
    return tuple((int(a), int(max(a, b))) for a, b in zip(first, end))


def largest_structures(mask: np.ndarray, count: int) -> List[Tuple[np.ndarray, np.ndarray]]:
    """Bounding boxes (first, end) of the ``count`` largest 26-connected components.  Labelled within
    the mask's own bounding box: a whole 512 x 512 x 400 scan's component map would take 400 MB."""
    occupied = [np.nonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))[0] for axis in range(3)]
    if any(len(o) == 0 for o in occupied):
        return []
    first = np.array([o[0] for o in occupied], dtype=np.float64)
    region = tuple(slice(o[0], o[-1] + 1) for o in occupied)
    statistics = cc3d.statistics(cc3d.connected_components(mask[region].view(np.uint8), connectivity=26))
    largest = np.argsort(statistics["voxel_counts"][1:])[::-1][:count] + 1
    boxes = [statistics["bounding_boxes"][i] for i in largest]
    return [(first + [s.start for s in box], first + [s.stop for s in box]) for box in boxes]


def refine_small_structures(field: VolumeField, grid: OutputGrid, k: int, settings: VolumeSettings,
                            prediction: VolumePrediction, scale: torch.Tensor, offset: torch.Tensor) -> None:
    """A second MISE pass at a finer spacing around each small predicted structure, with a tile
    centred on it, keeping per point the more confident of the two tiles' answers."""
    codes = prediction.codes.cpu().numpy()
    patch = np.asarray(field.tiling.patch, dtype=np.float64)
    patch_out = patch / np.abs(scale.cpu().numpy())          # the patch's extent in output voxels
    steps = coarse_steps_for(grid.geometry.spacing, settings.coarse_spacing_mm * settings.refine_spacing_factor)
    device = field.data.device
    for code in settings.refine_codes:
        for lo, hi in largest_structures(codes == code, settings.refine_max_structures):
            box = _refinement_box(lo, hi, patch_out, codes.shape)
            centre = (torch.tensor((lo + hi - 1) / 2.0, dtype=torch.float32, device=device) * scale + offset).cpu().numpy()
            query = _refinement_query(field, centre, box, scale, offset, settings.decision)
            _store(prediction, box, _run_box(query, box, k, steps, settings, None, device))
            prediction.refined_structures += 1
