"""Where training patches are centred: random, label-centred, in a shell around small structures,
on the case's centre, or at the centres a learned patch sampler proposed (seed 004, nnocc/shape).

The mix follows the plan (seed 000: 2 random / 4 label / 4 donut per case and epoch).  The
label sampler first picks a class uniformly among those present in the case, as nnU-Net's
oversampling does, so small classes are not starved by large ones.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from nnocc.planning.plans import SamplingPlan
from nnocc.utils.errors import NnoccError
from nnocc.utils.json_io import load_json

KINDS = ("random", "label", "donut", "case", "proposed")


@dataclass
class SamplingInfo:
    """What the samplers need of one preprocessed case."""
    shape: Sequence[int]
    locations: Dict[str, np.ndarray]


@dataclass
class PatchChoice:
    case: str
    kind: str
    centre: np.ndarray            # preprocessed voxel index (z, y, x)


class PatchSampler:
    def __init__(self, cases: Dict[str, SamplingInfo], plan: SamplingPlan, rng: np.random.Generator,
                 patch_size: Sequence[int] = (0, 0, 0)):
        if not cases:
            raise ValueError("no cases to sample from")
        self.cases = cases
        self.names = sorted(cases)
        self.plan = plan
        self.rng = rng
        self.patch_size = np.asarray(patch_size, dtype=np.float64)
        shares = np.array([plan.random_share, plan.label_share, plan.donut_share, plan.case_share,
                           plan.proposed_share], dtype=np.float64)
        self.kind_probabilities = shares / shares.sum()

    def sample(self) -> PatchChoice:
        name = self.names[self.rng.integers(len(self.names))]
        kind = KINDS[self.rng.choice(len(KINDS), p=self.kind_probabilities)]
        info = self.cases[name]
        centre = None
        if kind == "proposed":
            centre = self._from(info.locations.get("proposed"))
            if centre is None:  # nothing proposed in this case (no structure): its labels instead
                kind = "label"
        if kind == "donut":
            centre = self._from(info.locations.get("donut"))
            if centre is None:  # no small structure in this case: fall back to its labels
                kind = "label"
        if kind == "label":
            centre = self._label_centre(info)
            if centre is None:
                kind = "random"
        if kind == "random":
            centre = self.rng.uniform(0, 1, size=3) * (np.asarray(info.shape) - 1)
        if kind == "case":
            centre = self._case_centre(info)
        return PatchChoice(name, kind, np.asarray(centre, dtype=np.float64))

    def _case_centre(self, info: SamplingInfo) -> np.ndarray:
        """The case's centre, moved at random within the slack of a case larger than the patch (a
        whole-case patch then still sees every part of such a case over the epochs)."""
        shape = np.asarray(info.shape, dtype=np.float64)
        slack = np.maximum(shape - self.patch_size, 0.0) / 2
        return (shape - 1) / 2 + self.rng.uniform(-1, 1, size=3) * slack

    def _from(self, locations) -> Optional[np.ndarray]:
        if locations is None or len(locations) == 0:
            return None
        return locations[self.rng.integers(len(locations))].astype(np.float64)

    def _label_centre(self, info: SamplingInfo):
        present: List[str] = [k for k, v in info.locations.items() if k.startswith("label_") and len(v)]
        if not present:
            return None
        return self._from(info.locations[present[self.rng.integers(len(present))]])


def load_proposed_centres(data_folder: Path, file_name: str, cases: Sequence[str]) -> Dict[str, np.ndarray]:
    """The proposed centres of ``cases`` (none for a case the file lacks), from beside the data folder."""
    path = data_folder.parent / file_name
    if not path.is_file():
        raise NnoccError(f"{path}: no proposed patch centres; run nnocc_propose_patch_centres")
    stored = load_json(path).get("cases", {})
    return {name: np.asarray(stored.get(name, []), dtype=np.int64).reshape(-1, 3) for name in cases}
