"""``dataset.json`` in nnU-Net v2's format, read into a typed description.

Two kinds of label set-ups exist:
* exclusive labels: ``{"background": 0, "kidney": 1, "tumor": 2}``; the network predicts one
  class per point (softmax);
* regions: some labels are lists (``"kidney_and_masses": [1, 2, 3]``) and ``regions_class_order``
  says which integer each region writes into the final label map, later regions overwriting
  earlier ones; the network predicts one sigmoid per region.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from nnocc.io.images import SUPPORTED_ENDINGS
from nnocc.utils.errors import NnoccError
from nnocc.utils.json_io import load_json

REQUIRED_KEYS = ("channel_names", "labels", "numTraining", "file_ending")


@dataclass
class DatasetDescription:
    channel_names: Dict[str, str]
    labels: Dict[str, Union[int, List[int]]]
    num_training: int
    file_ending: str
    regions_class_order: Optional[List[int]] = None
    extra: Dict[str, Any] = field(default_factory=dict)

    # ---- what the network predicts -------------------------------------------------------
    @property
    def has_regions(self) -> bool:
        return any(isinstance(v, list) for v in self.labels.values())

    @property
    def num_channels(self) -> int:
        return len(self.channel_names)

    @property
    def channel_list(self) -> List[str]:
        return [self.channel_names[k] for k in sorted(self.channel_names, key=int)]

    @property
    def label_values(self) -> List[int]:
        """All integer values a label file may contain, background included."""
        values = {0}
        for v in self.labels.values():
            values.update(v if isinstance(v, list) else [v])
        return sorted(values)

    @property
    def label_value_names(self) -> Dict[int, str]:
        """Names of the label values declared as plain integers (regions name sets, not values)."""
        return {v: n for n, v in self.labels.items() if not isinstance(v, list)}

    @property
    def foreground_labels(self) -> List[int]:
        return [v for v in self.label_values if v != 0]

    @property
    def regions(self) -> List[Tuple[str, Tuple[int, ...]]]:
        """Region mode: (name, label values) of each predicted region, in dataset.json order."""
        out = []
        for name, value in self.labels.items():
            values = tuple(value) if isinstance(value, list) else (value,)
            if values != (0,):
                out.append((name, values))
        return out

    @property
    def output_names(self) -> List[str]:
        """One name per network output: the regions, or background + each label."""
        if self.has_regions:
            return [name for name, _ in self.regions]
        by_value = {v: k for k, v in self.labels.items()}
        return [by_value[v] for v in self.label_values]

    @property
    def num_outputs(self) -> int:
        return len(self.output_names)

    def evaluation_classes(self) -> List[Tuple[str, Tuple[int, ...]]]:
        """What is evaluated: the regions in region mode, else each foreground label alone."""
        if self.has_regions:
            return self.regions
        by_value = {v: k for k, v in self.labels.items()}
        return [(by_value[v], (v,)) for v in self.foreground_labels]

    # ---- conversions between label maps and network targets ------------------------------
    def label_map_to_targets(self, labels: np.ndarray) -> np.ndarray:
        """Label values -> class indices (exclusive) or region masks (regions, last axis)."""
        if self.has_regions:
            return np.stack([np.isin(labels, values) for _, values in self.regions], axis=-1)
        lookup = np.zeros(max(self.label_values) + 1, dtype=np.int64)
        for index, value in enumerate(self.label_values):
            lookup[value] = index
        return lookup[labels]

    def class_indices_to_labels(self, indices: np.ndarray) -> np.ndarray:
        return np.asarray(self.label_values, dtype=np.uint8)[indices]

    def regions_to_labels(self, region_masks: np.ndarray) -> np.ndarray:
        """(R, ...) boolean masks -> label map, writing regions_class_order in order."""
        order = self.regions_class_order or [values[-1] for _, values in self.regions]
        out = np.zeros(region_masks.shape[1:], dtype=np.uint8)
        for mask, value in zip(region_masks, order):
            out[mask.astype(bool)] = value
        return out

    def to_json(self) -> Dict[str, Any]:
        data = dict(self.extra)
        data.update({"channel_names": self.channel_names, "labels": self.labels,
                     "numTraining": self.num_training, "file_ending": self.file_ending})
        if self.regions_class_order is not None:
            data["regions_class_order"] = self.regions_class_order
        return data


def _check_labels(labels: Any, where: str) -> List[str]:
    problems = []
    if not isinstance(labels, dict) or not labels:
        return [f"{where}: 'labels' must be a non-empty object mapping names to integers"]
    for name, value in labels.items():
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 65536 for v in values):
            problems.append(f"{where}: label {name!r} must be a non-negative integer or a list of them, got {value!r}")
    if problems:
        return problems
    if 0 not in [v for v in labels.values() if not isinstance(v, list)]:
        problems.append(f"{where}: 'labels' must declare background as 0")
    if not any(isinstance(v, list) for v in labels.values()):
        values = sorted(labels.values())
        if len(set(values)) != len(values):
            problems.append(f"{where}: two labels share the value {[v for v in values if values.count(v) > 1][0]}")
        elif values != list(range(len(values))):
            problems.append(f"{where}: label values must be consecutive integers 0..{len(values) - 1}, got {values}")
    return problems


def parse_dataset_json(data: Any, where: str) -> DatasetDescription:
    if not isinstance(data, dict):
        raise NnoccError(f"{where}: must hold a JSON object")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise NnoccError(f"{where}: missing key(s) {', '.join(missing)}")
    problems = []
    channels = data["channel_names"]
    if not isinstance(channels, dict) or not channels or \
            sorted(channels, key=lambda k: int(k) if str(k).isdigit() else -1) != [str(i) for i in range(len(channels))]:
        problems.append(f"{where}: 'channel_names' must map '0', '1', ... to names, got {channels!r}")
    problems += _check_labels(data["labels"], where)
    num_training = data["numTraining"]
    if not isinstance(num_training, int) or isinstance(num_training, bool) or num_training < 0:
        problems.append(f"{where}: 'numTraining' must be a non-negative integer, got {num_training!r}")
    ending = data["file_ending"]
    if ending not in SUPPORTED_ENDINGS:
        problems.append(f"{where}: 'file_ending' {ending!r} is not one of {', '.join(SUPPORTED_ENDINGS)}")
    order = data.get("regions_class_order")
    has_regions = isinstance(data["labels"], dict) and any(isinstance(v, list) for v in data["labels"].values())
    if has_regions and order is not None:
        n_regions = sum(1 for v in data["labels"].values() if v != 0)
        if not isinstance(order, list) or len(order) != n_regions:
            problems.append(f"{where}: 'regions_class_order' must list one label per region ({n_regions})")
    if problems:
        raise NnoccError("\n".join(problems))
    extra = {k: v for k, v in data.items() if k not in REQUIRED_KEYS + ("regions_class_order",)}
    return DatasetDescription(channel_names={str(k): str(v) for k, v in channels.items()}, labels=data["labels"],
                              num_training=num_training, file_ending=ending,
                              regions_class_order=order if has_regions else None, extra=extra)


def load_dataset_json(path: Union[str, Path]) -> DatasetDescription:
    path = Path(path)
    if not path.is_file():
        raise NnoccError(f"{path}: missing (every dataset needs a dataset.json)")
    return parse_dataset_json(load_json(path), str(path))
