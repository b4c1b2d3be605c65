"""Which planned configuration to recommend, and why: the planner's last rule, kept apart because it
names configurations (a new architecture is planned and compared by find_best_configuration, but
recommended only once this rule knows it)."""
from __future__ import annotations

from typing import Dict, Tuple

import numpy as np

from nnocc.architectures.sconet import GRID_PADDING
from nnocc.planning.plans import ConfigurationPlan

OSSNET_NEIGHBOURHOOD = 7          # voxels: the raw image OSS-Net's decoder sees around a point
SCONET_MIN_CELLS = 2              # a structure should span this many grid cells for 3d_sconet to see it


def recommend_configuration(configurations: Dict[str, ConfigurationPlan], smallest: float, budget_gb: float
                            ) -> Tuple[str, str]:
    """The configuration the plans recommend, and why (the planner's rule 9).  ``smallest``: the smallest
    structure's diameter in mm."""
    occ = configurations.get("3d_occ")
    if occ is None:
        first = next(iter(configurations))
        return first, f"3d_occ does not fit {budget_gb:g} GB; {first} does"
    coverage = float(np.prod(np.minimum(np.asarray(occ.patch_size) / np.maximum(occ.median_shape, 1), 1.0)))
    if occ.mise.refine_labels:
        return "3d_occ", (f"small structures (labels {occ.mise.refine_labels}, the smallest {smallest:.1f} mm): "
                          f"3d_occ samples patches around them and refines them at inference (seed 000)")
    if coverage >= 0.25:
        return "3d_occ", (f"the 3d_occ patch covers {coverage:.0%} of the median case at full resolution; a "
                          f"whole-case configuration would add little context (the rule: coverage under 25 %)")
    oss, sco = configurations.get("3d_ossnet"), configurations.get("3d_sconet")
    if oss is not None and max(oss.architecture.kwargs.get("global_downsampling", [1])) <= 2 \
            and smallest >= 2 * OSSNET_NEIGHBOURHOOD * max(oss.spacing):
        return "3d_ossnet", (f"no small structures (the smallest {smallest:.1f} mm), the 3d_occ patch covers "
                             f"{coverage:.0%} of the median case, and 3d_ossnet sees the whole case at half "
                             f"resolution within {budget_gb:g} GB")
    if sco is not None and smallest >= SCONET_MIN_CELLS * sconet_cell_mm(sco):
        return "3d_sconet", (f"no small structures (the smallest {smallest:.1f} mm), the 3d_occ patch covers "
                             f"{coverage:.0%} of the median case, 3d_ossnet "
                             f"{'does not see the whole case at half resolution' if oss else 'does not fit'}; "
                             f"3d_sconet sees it whole through its contours, with {sconet_cell_mm(sco):.1f} mm "
                             f"cells, at a fraction of the memory (seed 002)")
    return "3d_occ", (f"the 3d_occ patch covers {coverage:.0%} of the median case, but no whole-case "
                      f"configuration both fits {budget_gb:g} GB and resolves the smallest structure "
                      f"({smallest:.1f} mm)")


def sconet_cell_mm(config: ConfigurationPlan) -> float:
    """The largest cell of a point-cloud grid, in millimetres."""
    kwargs = config.architecture.kwargs
    return max(kwargs["grid_extent_mm"]) * (1 + 2 * GRID_PADDING) / kwargs["grid_size"]
