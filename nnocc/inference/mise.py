"""Multi-class Multiresolution IsoSurface Extraction (MISE, Occupancy Networks; seeds 000 and 001).

The output grid is covered by a coarse lattice (per-axis power-of-two steps).  A *cell* is active
when its corners disagree (argmax class, or any region's side of its threshold) or a corner's
decision lies within a margin of changing.  At every level, active cells have their unknown
corners evaluated; newly evaluated corners can activate neighbouring cells, so the front follows a
boundary as far as it goes (a thin tube attached to a large blob is traced, not dropped) until no
active cell has an unknown corner.  Active cells are then halved and the next level starts, until
the steps reach one output voxel: the children's corners are evaluated and only the children that
change go on (``children="changing"``, Occupancy Networks' rule and the default), or every child of
an active cell is active in turn (``"all"``: the whole cell is evaluated to the voxel).
Points never evaluated take the trilinear interpolation of their enclosing cell's corners, which
all carry the same decision, so their label is the cell's.

Everything is dense per level and vectorised with torch (float32, no Python loop over cells).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

import torch
from torch.nn import functional as F

from nnocc.utils.memory import release_freed_memory

QueryFunction = Callable[[torch.Tensor], torch.Tensor]   # (M, 3) output-grid coordinates -> (M, K) probabilities


@dataclass
class Decision:
    """How probabilities become a decision and when a decision counts as uncertain."""
    regions: bool
    threshold: float = 0.5
    margin: float = 0.4

    def codes(self, probs: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """probs (K, ...) -> (code (...), uncertain (...) bool); codes are small integers (int16
        for up to 15 outputs, so that full-resolution lattices stay light)."""
        dtype = torch.int16 if probs.shape[0] <= 15 else torch.int32
        if self.regions:
            above = probs > self.threshold
            weights = (2 ** torch.arange(probs.shape[0], device=probs.device)).view(-1, *[1] * (probs.dim() - 1))
            code = (above.to(torch.int32) * weights).sum(0).to(dtype)
            uncertain = ((probs - self.threshold).abs() < self.margin).any(0)
            return code, uncertain
        top = probs.topk(2, dim=0).values if probs.shape[0] > 1 else torch.cat([probs, torch.zeros_like(probs)])
        return probs.argmax(0).to(dtype), (top[0] - top[1]) < self.margin


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


_CORNERS = torch.tensor([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)])


def _corner_views(grid: torch.Tensor) -> List[torch.Tensor]:
    """The 8 corner values of every cell: views of shape (n0-1, n1-1, n2-1)."""
    n = grid.shape[-3:]
    return [grid[..., a:n[0] - 1 + a, b:n[1] - 1 + b, c:n[2] - 1 + c] for a, b, c in _CORNERS.tolist()]


def _active_cells(code: torch.Tensor, uncertain: torch.Tensor) -> torch.Tensor:
    """Dense: cells whose corners disagree or are uncertain (used once, on the coarse lattice)."""
    views = _corner_views(code)
    low, high = views[0].clone(), views[0].clone()
    doubtful = torch.zeros_like(views[0], dtype=torch.bool)
    for view, unsure in zip(views, _corner_views(uncertain)):
        torch.minimum(low, view, out=low)
        torch.maximum(high, view, out=high)
        doubtful |= unsure
    return (low != high) | doubtful


class _Level:
    """One level's lattice: per-axis step and size, probabilities, decisions, what is known."""

    def __init__(self, steps: Sequence[int], sizes: Sequence[int], probs: torch.Tensor, known: torch.Tensor,
                 decision: Decision):
        self.steps, self.sizes, self.probs, self.known = list(steps), list(sizes), probs, known
        self.code, self.uncertain = decision.codes(probs)
        self.cell_sizes = [max(n - 1, 0) for n in self.sizes]

    def coordinates(self, index: torch.Tensor) -> torch.Tensor:
        return (index * torch.tensor(self.steps, device=index.device)).to(torch.float32)

    def store(self, index: torch.Tensor, probs: torch.Tensor, decision: Decision) -> None:
        where = tuple(index.T)
        self.probs[(slice(None), *where)] = probs.T
        self.known[where] = True
        code, uncertain = decision.codes(probs.T)
        self.code[where], self.uncertain[where] = code, uncertain

    def active(self, cells: torch.Tensor) -> torch.Tensor:
        """Sparse: which of these cells (C, 3) have disagreeing or uncertain corners."""
        corners = tuple((cells[:, None, :] + _CORNERS.to(cells.device)).permute(2, 0, 1))   # 3 x (C, 8)
        codes = self.code[corners]
        return (codes.amin(1) != codes.amax(1)) | self.uncertain[corners].any(1)


def _unique_rows(index: torch.Tensor, sizes: Sequence[int]) -> torch.Tensor:
    if len(index) == 0:
        return index
    n1, n2 = sizes[1] + 1, sizes[2] + 1
    linear = torch.unique((index[:, 0] * n1 + index[:, 1]) * n2 + index[:, 2])
    return torch.stack([linear // (n1 * n2), linear // n2 % n1, linear % n2], dim=1)


def _cells_touching(points: torch.Tensor, cell_sizes: Sequence[int]) -> torch.Tensor:
    """The cells (up to 8 each) that have one of these lattice points as a corner."""
    cells = (points[:, None, :] - _CORNERS.to(points.device)).reshape(-1, 3)
    limit = torch.tensor(cell_sizes, device=points.device)
    cells = cells[((cells >= 0) & (cells < limit)).all(1)]
    return _unique_rows(cells, cell_sizes)


def _corners_of(cells: torch.Tensor, sizes: Sequence[int]) -> torch.Tensor:
    return _unique_rows((cells[:, None, :] + _CORNERS.to(cells.device)).reshape(-1, 3), sizes)


def _power_of_two_steps(steps: Sequence[int]) -> List[int]:
    steps = [int(s) for s in steps]
    if any(s < 1 or s & (s - 1) for s in steps):
        raise ValueError(f"lattice steps must be powers of two, got {steps}")
    return steps


class Guard:
    """The hint's boundary and unsure cells, found on the hint's own lattice, handed to MISE once: at the
    finest level that is still as coarse as the hint on every axis, as that level's cells that hold
    them.  Coarser levels are left alone, so the guard costs the decoder no more than it would cost
    on the hint's lattice."""

    def __init__(self, hint: torch.Tensor, hint_steps: Sequence[int], coarse_steps: Sequence[int], decision: Decision,
                 device: Optional[torch.device] = None):
        self.steps = _power_of_two_steps(hint_steps)
        if any(c % h for c, h in zip(coarse_steps, self.steps)):
            raise ValueError(f"the hint's lattice {self.steps} must divide the coarse lattice {list(coarse_steps)}")
        self.active = _active_cells(*decision.codes(hint.to(device or hint.device, torch.float32)))

    def applies_to(self, steps: Sequence[int]) -> bool:
        halved = [max(s // 2, 1) for s in steps]
        return all(s >= h for s, h in zip(steps, self.steps)) and (
            all(s == 1 for s in steps) or any(n < h for n, h in zip(halved, self.steps)))

    def cells(self, level: _Level) -> torch.Tensor:
        """(C, 3) indices of the level's cells that hold an active hint cell, at the one level it applies to."""
        if not self.applies_to(level.steps) or not self.active.numel():
            return torch.zeros((0, 3), dtype=torch.long, device=level.code.device)
        ratio = [s // h for s, h in zip(level.steps, self.steps)]
        padded = F.pad(self.active[None, None].float(),
                       [p for r, n in zip(ratio[::-1], self.active.shape[::-1]) for p in (0, -n % r)])
        held = F.max_pool3d(padded, kernel_size=ratio, stride=ratio)[0, 0] > 0
        n0, n1, n2 = level.cell_sizes
        return held[:n0, :n1, :n2].nonzero().to(level.code.device)


def lattice_size(n: int, step: int) -> int:
    return (max(n, 1) - 1 + step - 1) // step + 1


CHILDREN = ("changing", "all")
DEFAULT_CHILDREN = "changing"
# Points per decoder call.  On a CPU a smaller batch is both faster and lighter: the decoder's
# per-layer activations stay near the cache and are given back between calls (nnocc_predict, ten
# cropped KiTS23 cases, 2 cores: 16384 took 28.0 s and 681 MB peak, 65536 took 39.3 s and 876 MB,
# labels identical).  A GPU wants large calls to fill its cores.
POINTS_PER_BATCH = {"cpu": 16384, "cuda": 65536, "mps": 65536}


def default_points_per_batch(device: torch.device) -> int:
    return POINTS_PER_BATCH.get(device.type, POINTS_PER_BATCH["cpu"])


class Mise:
    """``children``: which children of an active cell the next level refines.  "changing" (the
    default, Occupancy Networks' rule): every child's corners are evaluated, and those children
    whose own corners disagree or are unsure go on.  "all": every one, so the whole volume of a cell
    once active is evaluated down to the voxel (dense inside every active coarse cell; on a trained
    model's KiTS-sized scan it asked 1.4x the points for the same agreement with dense)."""

    def __init__(self, query: QueryFunction, num_outputs: int, decision: Decision, max_points_per_batch: Optional[int] = None,
                 device: Optional[torch.device] = None, children: str = DEFAULT_CHILDREN, release_memory: bool = False):
        if children not in CHILDREN:
            raise ValueError(f"children must be one of {CHILDREN}, got {children!r}")
        self.query_fn, self.k, self.decision = query, num_outputs, decision
        self.device = device or torch.device("cpu")
        self.batch = max_points_per_batch or default_points_per_batch(self.device)
        self.all_children = children == "all"
        self.release_memory = release_memory       # after each decoder call (query_batch says when it pays)
        self.queries = 0
        self.rounds = 0

    def _query(self, coordinates: torch.Tensor) -> torch.Tensor:
        out = []
        for first in range(0, len(coordinates), self.batch):
            out.append(self.query_fn(coordinates[first:first + self.batch]).to(self.device, torch.float32))
            if self.release_memory:
                release_freed_memory()
        self.queries += len(coordinates)
        return torch.cat(out) if out else torch.zeros(0, self.k, device=self.device)

    def _close(self, level: _Level, candidates: torch.Tensor, forced: torch.Tensor) -> torch.Tensor:
        """Evaluate unknown corners of active cells until no active cell has one.

        Sparse: only cells next to newly evaluated points can change, so each round looks at those
        alone, and the cost follows the boundary rather than the lattice.  ``forced`` cells (the
        children of the previous level's active cells, or the hint's) count as active.
        """
        is_active = torch.zeros(level.cell_sizes, dtype=torch.bool, device=self.device)
        if len(forced):
            is_active[tuple(forced.T)] = True
            candidates = torch.cat([candidates, forced])
        while len(candidates):
            fresh = candidates[level.active(candidates) & ~is_active[tuple(candidates.T)]]
            is_active[tuple(fresh.T)] = True
            need = self._evaluate_corners(level, torch.cat([fresh, forced]))
            forced = forced[:0]
            if not len(need):
                break
            candidates = _cells_touching(need, level.cell_sizes)
        return is_active

    def run(self, shape: Sequence[int], coarse_steps: Sequence[int], initial: Optional[torch.Tensor] = None,
            keep_probabilities: bool = False, hint: Optional[torch.Tensor] = None,
            hint_steps: Optional[Sequence[int]] = None) -> MiseResult:
        """``initial``: (K, *coarse lattice) probabilities that seed level 0 without evaluating it
        (OSS-Net's encoder-seeded MISE); otherwise the coarse lattice is evaluated.  ``hint``: a
        second opinion (the auxiliary voxel head) on a lattice of ``hint_steps`` (default: the coarse
        one; else finer, each step dividing the coarse step): every level as coarse as the hint or
        coarser refines the cells that hold one of the hint's boundary or unsure cells, so a structure
        that slips between the decoder's points but shows in the hint is kept."""
        steps = _power_of_two_steps(coarse_steps)
        sizes = [lattice_size(n, s) for n, s in zip(shape, steps)]
        level = self._first_level(steps, sizes, initial)
        guard = Guard(hint, hint_steps or steps, steps, self.decision, self.device) if hint is not None else None
        empty = torch.zeros((0, 3), dtype=torch.long, device=self.device)
        forced = guard.cells(level) if guard else empty
        candidates = _active_cells(level.code, level.uncertain).nonzero()
        levels = 0
        while True:
            active = self._close(level, candidates, forced)
            if all(s == 1 for s in level.steps):
                break
            level, children = self._refine(level, active)
            forced, candidates = (children, empty) if self.all_children else (empty, self._evaluate(level, children))
            if guard:
                forced = torch.cat([forced, guard.cells(level)])
            levels += 1
        n0, n1, n2 = shape
        probs = level.probs[:, :n0, :n1, :n2]
        return MiseResult(level.code[:n0, :n1, :n2].clone(), probs.clone() if keep_probabilities else None,
                          self.queries, self.rounds, levels)

    def _evaluate_corners(self, level: _Level, cells: torch.Tensor) -> torch.Tensor:
        """Query the unknown corners of these cells (one round); returns those corners."""
        corners = _corners_of(cells, level.sizes)
        need = corners[~level.known[tuple(corners.T)]]
        if len(need):
            level.store(need, self._query(level.coordinates(need)), self.decision)
            self.rounds += 1
        return need

    def _evaluate(self, level: _Level, cells: torch.Tensor) -> torch.Tensor:
        """Evaluate the unknown corners of these cells; returns the cells whose activity that can
        change (these and their neighbours across the new points)."""
        need = self._evaluate_corners(level, cells)
        return torch.cat([cells, _cells_touching(need, level.cell_sizes)]) if len(need) else cells

    def _first_level(self, steps, sizes, initial: Optional[torch.Tensor]) -> _Level:
        known = torch.zeros(sizes, dtype=torch.bool, device=self.device)
        if initial is not None:
            if list(initial.shape[1:]) != sizes:
                raise ValueError(f"initial lattice {list(initial.shape[1:])} does not match {sizes}")
            return _Level(steps, sizes, initial.to(self.device, torch.float32).clone(), known, self.decision)
        index = torch.ones(sizes, dtype=torch.bool, device=self.device).nonzero()
        probs = self._query(index.to(torch.float32) * torch.tensor(steps, device=self.device)).T.reshape(self.k, *sizes)
        return _Level(steps, sizes, probs.contiguous(), ~known, self.decision)

    def _refine(self, level: _Level, active: torch.Tensor) -> Tuple[_Level, torch.Tensor]:
        """Halve the steps still above one; the children of active cells are forced active."""
        refined = [s > 1 for s in level.steps]
        steps = [s // 2 if r else s for s, r in zip(level.steps, refined)]
        sizes = [2 * n - 1 if r else n for n, r in zip(level.sizes, refined)]
        probs = F.interpolate(level.probs[None], size=sizes, mode="trilinear", align_corners=True)[0]
        known = torch.zeros(sizes, dtype=torch.bool, device=self.device)
        known[tuple(slice(None, None, 2) if r else slice(None) for r in refined)] = level.known
        scale = torch.tensor([2 if r else 1 for r in refined], device=self.device)
        parents = active.nonzero()
        offsets = torch.tensor([[a, b, c] for a in range(int(scale[0])) for b in range(int(scale[1]))
                                for c in range(int(scale[2]))], device=self.device)
        children = (parents[:, None, :] * scale + offsets).reshape(-1, 3)
        return _Level(steps, sizes, probs, known, self.decision), children


def coarse_steps_for(output_spacing: Sequence[float], coarse_spacing_mm: float, max_step: int = 64) -> List[int]:
    """Per axis, the largest power of two whose step in mm stays within the coarse spacing."""
    steps = []
    for spacing in output_spacing:
        step = 1
        while step * 2 * spacing <= coarse_spacing_mm + 1e-9 and step * 2 <= max_step:
            step *= 2
        steps.append(step)
    return steps
