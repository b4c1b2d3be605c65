"""PNG overlays: axial, coronal and sagittal slices through each structure's centre, with label
outlines over the image in fixed colours (reference dashed, prediction solid).  The views follow the
image's direction matrix (orientation.py), whatever order the file stores its axes in."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import cc3d
import numpy as np

from nnocc.io.images import ImageGeometry
from nnocc.visualization.orientation import VIEWS, view

COLOURS = ["#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6", "#bcf60c"]


def colour(label: int) -> str:
    return COLOURS[(int(label) - 1) % len(COLOURS)]


def display_window(image: np.ndarray) -> Tuple[float, float]:
    """A soft-tissue CT window when the values look like Hounsfield units, else robust percentiles."""
    low, high = np.percentile(image, [0.5, 99.5])
    if low < -500 and high > 100:
        return -160.0, 240.0
    return float(low), float(high)


def structure_centre(mask: np.ndarray) -> Tuple[int, ...]:
    """The voxel of the largest component nearest that component's centroid.  The centroid of a
    whole label misses it when the label has parts apart (two kidneys: the spine between them)."""
    largest = np.argwhere(cc3d.largest_k(mask, k=1, connectivity=26))
    nearest = np.abs(largest - largest.mean(axis=0)).sum(axis=1).argmin()
    return tuple(int(c) for c in largest[nearest])


def slice_positions(labels: Sequence[Optional[np.ndarray]]) -> List[Tuple[int, ...]]:
    """One (z, y, x) position per structure, inside it: each label present, else the volume centre."""
    positions = []
    values = sorted({int(v) for lab in labels if lab is not None for v in np.unique(lab) if v != 0})
    for value in values:
        mask = next(lab == value for lab in labels if lab is not None and (lab == value).any())
        positions.append(structure_centre(mask))
    if not positions:
        shape = next(lab.shape for lab in labels if lab is not None)
        positions.append(tuple(s // 2 for s in shape))
    return positions


def overlay_png(image: np.ndarray, geometry: ImageGeometry, prediction: Optional[np.ndarray], reference: Optional[np.ndarray],
                path: Path, title: str = "", names: Optional[Dict[int, str]] = None) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    positions = slice_positions([prediction, reference])[:3]
    views = [view(name, geometry) for name in VIEWS]
    low, high = display_window(image)
    fig, axes = plt.subplots(len(positions), 3, figsize=(12, 4 * len(positions)), squeeze=False)
    for row, position in enumerate(positions):
        for col, v in enumerate(views):
            ax = axes[row, col]
            ax.imshow(v.cut(image, position), cmap="gray", vmin=low, vmax=high,
                      aspect=v.aspect(geometry.spacing), interpolation="nearest")
            for labels, style in ((reference, "--"), (prediction, "-")):
                if labels is None:
                    continue
                cut = v.cut(labels, position)
                for value in np.unique(cut):
                    if value != 0:
                        ax.contour(cut == value, levels=[0.5], colors=[colour(value)], linestyles=style, linewidths=1.2)
            ax.set_title(f"{v.name} (voxel axis {v.slice_axis} = {position[v.slice_axis]})", fontsize=9)
            ax.axis("off")
    values = sorted({int(v) for lab in (prediction, reference) if lab is not None for v in np.unique(lab) if v})
    handles = [Line2D([], [], color=colour(v), label=(names or {}).get(v, str(v))) for v in values]
    handles += [Line2D([], [], color="white", linestyle="-", label="prediction"),
                Line2D([], [], color="white", linestyle="--", label="reference")] if reference is not None else []
    if handles:
        fig.legend(handles=handles, loc="lower center", ncol=len(handles), facecolor="0.3", labelcolor="white")
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.05, 1, 0.97))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=80, facecolor="0.15")
    plt.close(fig)
    tmp.replace(path)
    return path
