"""Multi-class Multiresolution IsoSurface Extraction (MISE, Occupancy Networks; seeds 000 and 001).

The output grid is covered by a coarse lattice (per-axis power-of-two steps).  A *cell* is active
when its corners disagree (argmax class, or any region's side of its threshold) or a corner's
decision lies within a margin of changing.  At every level, active cells have their unknown
corners evaluated; newly evaluated corners can activate neighbouring cells, so the front follows a
boundary as far as it goes (a thin tube attached to a large blob is traced, not dropped) until no
active cell has an unknown corner.  Active cells are then halved and the next level starts, until
the steps reach one output voxel.  Points never evaluated take the trilinear interpolation of their
enclosing cell's corners, which all carry the same decision, so their label is the cell's.

Everything is dense per level and vectorised with torch (float32, no Python loop over cells).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

import torch
from torch.nn import functional as F

QueryFunction = Callable[[torch.Tensor], torch.Tensor]   # (M, 3) output-grid coordinates -> (M, K) probabilities


@dataclass
class Decision:
    """How probabilities become a decision and when a decision counts as uncertain."""
    regions: bool
    threshold: float = 0.5
    margin: float = 0.4

    def codes(self, probs: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """probs (K, ...) -> (code (...) int64, uncertain (...) bool)."""
        if self.regions:
            above = probs > self.threshold
            weights = (2 ** torch.arange(probs.shape[0], device=probs.device)).view(-1, *[1] * (probs.dim() - 1))
            code = (above.long() * weights).sum(0)
            uncertain = ((probs - self.threshold).abs() < self.margin).any(0)
            return code, uncertain
        top = probs.topk(2, dim=0).values if probs.shape[0] > 1 else torch.cat([probs, torch.zeros_like(probs)])
        return probs.argmax(0), (top[0] - top[1]) < self.margin


@dataclass
class MiseResult:
    codes: torch.Tensor                     # (N0, N1, N2) decision per output voxel
    probabilities: Optional[torch.Tensor]   # (K, N0, N1, N2) if requested
    queries: int
    rounds: int
    levels: int

    @property
    def dense_queries(self) -> int:
        return int(self.codes.numel())


def _corner_views(grid: torch.Tensor) -> List[torch.Tensor]:
    """The 8 corner values of every cell: views of shape (n0-1, n1-1, n2-1)."""
    n = grid.shape[-3:]
    return [grid[..., a:n[0] - 1 + a, b:n[1] - 1 + b, c:n[2] - 1 + c] for a in (0, 1) for b in (0, 1) for c in (0, 1)]


def _active_cells(code: torch.Tensor, uncertain: torch.Tensor) -> torch.Tensor:
    corners = _corner_views(code)
    low = torch.stack(corners).amin(0)
    high = torch.stack(corners).amax(0)
    doubtful = torch.stack(_corner_views(uncertain)).any(0)
    return (low != high) | doubtful


def _cells_to_corners(cells: torch.Tensor, lattice_shape: Sequence[int]) -> torch.Tensor:
    points = torch.zeros(tuple(lattice_shape), dtype=torch.bool, device=cells.device)
    n = cells.shape
    for a in (0, 1):
        for b in (0, 1):
            for c in (0, 1):
                points[a:a + n[0], b:b + n[1], c:c + n[2]] |= cells
    return points


class _Level:
    """The lattice of one level: per-axis step and size, probabilities and what is known."""

    def __init__(self, steps: Sequence[int], sizes: Sequence[int], probs: torch.Tensor, known: torch.Tensor):
        self.steps, self.sizes, self.probs, self.known = list(steps), list(sizes), probs, known

    def coordinates(self, mask: torch.Tensor) -> torch.Tensor:
        index = mask.nonzero()
        return (index * torch.tensor(self.steps, device=index.device)).to(torch.float32)


def lattice_size(n: int, step: int) -> int:
    return (max(n, 1) - 1 + step - 1) // step + 1


class Mise:
    def __init__(self, query: QueryFunction, num_outputs: int, decision: Decision, max_points_per_batch: int = 65536,
                 device: torch.device = torch.device("cpu")):
        self.query_fn, self.k, self.decision = query, num_outputs, decision
        self.batch, self.device = max_points_per_batch, device
        self.queries = 0
        self.rounds = 0

    def _query(self, coordinates: torch.Tensor) -> torch.Tensor:
        out = [self.query_fn(coordinates[i:i + self.batch]).to(self.device, torch.float32)
               for i in range(0, len(coordinates), self.batch)]
        self.queries += len(coordinates)
        return torch.cat(out) if out else torch.zeros(0, self.k, device=self.device)

    def _close(self, level: _Level, forced: Optional[torch.Tensor]) -> torch.Tensor:
        """Evaluate unknown corners of active cells until no active cell has one."""
        while True:
            code, uncertain = self.decision.codes(level.probs)
            active = _active_cells(code, uncertain)
            if forced is not None:
                active |= forced
            need = _cells_to_corners(active, level.sizes) & ~level.known
            if not need.any():
                return active
            level.probs[:, need] = self._query(level.coordinates(need)).T
            level.known |= need
            self.rounds += 1

    def run(self, shape: Sequence[int], coarse_steps: Sequence[int], initial: Optional[torch.Tensor] = None,
            keep_probabilities: bool = False, hint: Optional[torch.Tensor] = None) -> MiseResult:
        """``initial``: (K, *coarse lattice) probabilities that seed level 0 without evaluating it
        (OSS-Net's encoder-seeded MISE); otherwise the coarse lattice is evaluated.  ``hint``: a
        second opinion on the coarse lattice (the auxiliary voxel head): its boundary cells are
        refined too, so a structure that slips between coarse points but shows in the hint is kept."""
        steps = [int(s) for s in coarse_steps]
        if any(s < 1 or s & (s - 1) for s in steps):
            raise ValueError(f"coarse steps must be powers of two, got {steps}")
        sizes = [lattice_size(n, s) for n, s in zip(shape, steps)]
        level = self._first_level(steps, sizes, initial)
        forced, levels = None, 0
        if hint is not None:
            forced = _active_cells(*self.decision.codes(hint.to(self.device, torch.float32)))
        while True:
            active = self._close(level, forced)
            if all(s == 1 for s in level.steps):
                break
            level, forced = self._refine(level, active)
            levels += 1
        n0, n1, n2 = shape
        probs = level.probs[:, :n0, :n1, :n2]
        codes, _ = self.decision.codes(probs)
        return MiseResult(codes, probs.clone() if keep_probabilities else None, self.queries, self.rounds, levels)

    def _first_level(self, steps, sizes, initial: Optional[torch.Tensor]) -> _Level:
        known = torch.zeros(sizes, dtype=torch.bool, device=self.device)
        if initial is not None:
            if list(initial.shape[1:]) != sizes:
                raise ValueError(f"initial lattice {list(initial.shape[1:])} does not match {sizes}")
            return _Level(steps, sizes, initial.to(self.device, torch.float32).clone(), known)
        level = _Level(steps, sizes, torch.zeros(self.k, *sizes, device=self.device), known)
        level.probs[:] = self._query(level.coordinates(torch.ones_like(known))).T.reshape(self.k, *sizes)
        level.known[:] = True
        return level

    def _refine(self, level: _Level, active: torch.Tensor) -> Tuple[_Level, torch.Tensor]:
        refined = [s > 1 for s in level.steps]
        steps = [s // 2 if r else s for s, r in zip(level.steps, refined)]
        sizes = [2 * n - 1 if r else n for n, r in zip(level.sizes, refined)]
        probs = F.interpolate(level.probs[None], size=sizes, mode="trilinear", align_corners=True)[0]
        known = torch.zeros(sizes, dtype=torch.bool, device=self.device)
        known[tuple(slice(None, None, 2) if r else slice(None) for r in refined)] = level.known
        forced = active
        for axis, r in enumerate(refined):
            if r:
                forced = forced.repeat_interleave(2, dim=axis)
        return _Level(steps, sizes, probs, known), forced


def coarse_steps_for(output_spacing: Sequence[float], coarse_spacing_mm: float, max_step: int = 64) -> List[int]:
    """Per axis, the largest power of two whose step in mm stays within the coarse spacing."""
    steps = []
    for spacing in output_spacing:
        step = 1
        while step * 2 * spacing <= coarse_spacing_mm + 1e-9 and step * 2 <= max_step:
            step *= 2
        steps.append(step)
    return steps
