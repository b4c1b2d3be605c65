"""The shapes of one structure in a set of label maps, and seed 004's five folds (70/10/20 by case)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from tqdm import tqdm

from nnocc.io.images import read_image
from nnocc.shape.crops import CropGrid, bounding_box, components, crop_component, extent_mm
from nnocc.training.splits import make_splits
from nnocc.utils.errors import NnoccError

MIN_COMPONENT_SHARE = 0.1        # a component under a tenth of its case's largest is a fragment, not a shape
MAX_EXTENT_TO_MEDIAN = 1.6


@dataclass
class Shape:
    name: str                    # case:component
    mask: np.ndarray             # the component, cut to its bounding box
    spacing: List[float]


def shape_splits(cases: Sequence[str], fold: int, seed: int = 12345) -> Dict[str, List[str]]:
    """Test: the fold's fifth of the cases (the training splits' rule); validation: an eighth of the rest
    (a tenth of all); training: the others.  Both shapes of a case stay on one side."""
    split = make_splits(cases)[fold]
    rest = np.random.default_rng(seed + fold).permutation(sorted(split["train"]))
    count = max(1, round(len(rest) / 8)) if len(rest) > 1 else 0
    return {"train": sorted(rest[count:].tolist()), "val": sorted(rest[:count].tolist()), "test": split["val"]}


def case_shapes(name: str, labels: np.ndarray, spacing: Sequence[float], values: Tuple[int, ...],
                whole_only: bool = True) -> List[Shape]:
    mask = np.isin(labels, values)
    if not mask.any():
        return []
    shapes = []
    for k, component in enumerate(components(mask, min_share=MIN_COMPONENT_SHARE)):
        lo, hi = bounding_box(component)
        if whole_only and (np.any(lo == 0) or np.any(hi == np.asarray(mask.shape) - 1)):
            continue                 # cut by the scan's edge: not a whole shape (seed 004 leaves these out)
        cut = component[tuple(slice(a, b + 1) for a, b in zip(lo, hi))].copy()   # not a view: it would keep the scan
        shapes.append(Shape(f"{name}:{k}", cut, [float(s) for s in spacing]))
    return shapes


def collect_shapes(label_files: Mapping[str, Path], values: Tuple[int, ...], show_progress: bool = True,
                   whole_only: bool = True) -> List[Shape]:
    shapes: List[Shape] = []
    for name, path in tqdm(sorted(label_files.items()), desc="shapes", disable=not show_progress):
        labels, geometry = read_image(path)
        shapes += case_shapes(name, labels, geometry.spacing, values, whole_only)
    return shapes


def typical_shapes(shapes: Sequence[Shape], largest_to_median: float = MAX_EXTENT_TO_MEDIAN) -> List[Shape]:
    """The shapes whose extent is at most ``largest_to_median`` times the median's on every axis: two
    kidneys fused by a tumour into one component are not a kidney, and would size every crop."""
    if not shapes:
        return []
    extents = np.stack([extent_mm(s.mask, s.spacing) for s in shapes])
    limit = largest_to_median * np.median(extents, axis=0)
    return [s for s, e in zip(shapes, extents) if np.all(e <= limit)]


def fitting_shapes(shapes: Sequence[Shape], grid: CropGrid) -> List[Shape]:
    """The shapes that fit in the grid whole (a test shape larger than the training ones would be cut)."""
    room = np.asarray(grid.shape) * grid.spacing_mm
    return [s for s in shapes if np.all(extent_mm(s.mask, s.spacing) <= room)]


def crops_of(shapes: Sequence[Shape], spacing_mm: float, grid: Optional[CropGrid] = None) -> Tuple[np.ndarray, CropGrid]:
    """(S, *grid) bool crops, on ``grid`` or on one sized for these shapes."""
    if not shapes:
        raise NnoccError("no shapes of the structure in these label maps")
    if grid is None:
        grid = CropGrid.around(np.stack([extent_mm(s.mask, s.spacing) for s in shapes]), spacing_mm)
    return np.stack([crop_component(s.mask, s.spacing, grid)[0] for s in shapes]), grid
