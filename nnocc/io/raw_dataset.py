"""A raw dataset in nnU-Net v2's layout, and the integrity checks every stage relies on.

All problems are collected, one line each naming the file, so that a user fixes a dataset in one
round rather than one error at a time.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from nnocc.io.dataset_json import DatasetDescription, load_dataset_json
from nnocc.io.images import ImageGeometry, count_nonfinite, read_image
from nnocc.utils.errors import DatasetProblems, NnoccError


@dataclass
class RawCase:
    name: str
    image_files: List[Path]
    label_file: Optional[Path] = None


@dataclass
class LoadedCase:
    name: str
    image: np.ndarray          # (C, z, y, x) float32
    label: Optional[np.ndarray]  # (z, y, x) integer, or None for unlabelled cases
    geometry: ImageGeometry


def _channel_pattern(ending: str) -> "re.Pattern":
    return re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})" + re.escape(ending) + "$")


def group_channel_files(folder: Path, ending: str, num_channels: int) -> Tuple[Dict[str, List[Path]], List[str]]:
    """``<case>_<XXXX><ending>`` files of a folder grouped by case (complete cases only), and the
    problems found: misnamed files, missing or undeclared channels."""
    pattern = _channel_pattern(ending)
    found: Dict[str, Dict[int, Path]] = {}
    problems = []
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if path.name.startswith(".") or path.is_dir():
            continue
        match = pattern.match(path.name)
        if not match:
            problems.append(f"{path}: not named <case>_<XXXX>{ending}")
            continue
        found.setdefault(match["case"], {})[int(match["channel"])] = path
    cases = {}
    for case, channels in found.items():
        missing = [c for c in range(num_channels) if c not in channels]
        extra = [c for c in channels if c >= num_channels]
        for c in missing:
            problems.append(f"{folder / f'{case}_{c:04d}{ending}'}: missing (dataset.json declares "
                            f"{num_channels} channel(s))")
        for c in extra:
            problems.append(f"{channels[c]}: channel {c} is not declared in dataset.json")
        if not missing:
            cases[case] = [channels[c] for c in range(num_channels)]
    return cases, problems


class RawDataset:
    """``DatasetXXX_Name/`` with ``dataset.json``, ``imagesTr``, ``labelsTr`` and optional ``imagesTs``."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise NnoccError(f"{self.folder}: dataset folder not found")
        self.description: DatasetDescription = load_dataset_json(self.folder / "dataset.json")

    @property
    def name(self) -> str:
        return self.folder.name

    def training_cases(self) -> List[RawCase]:
        """The labelled cases; raises DatasetProblems listing every layout problem found."""
        d = self.description
        images, problems = group_channel_files(self.folder / "imagesTr", d.file_ending, d.num_channels)
        labels_folder = self.folder / "labelsTr"
        labels = {}
        for path in sorted(labels_folder.iterdir()) if labels_folder.is_dir() else []:
            if path.name.startswith("."):
                continue
            if not path.name.endswith(d.file_ending):
                problems.append(f"{path}: label file does not end with the dataset's file_ending {d.file_ending}")
                continue
            labels[path.name[:-len(d.file_ending)]] = path
        for case in sorted(set(images) - set(labels)):
            problems.append(f"{labels_folder / (case + d.file_ending)}: missing label file for case {case}")
        incomplete = {p.split(": ")[0] for p in problems}
        for case in sorted(set(labels) - set(images)):
            if not any(f"/{case}_" in path for path in incomplete):
                problems.append(f"{labels[case]}: label without image file(s) {case}_0000{d.file_ending} in imagesTr")
        complete = sorted(set(images) & set(labels))
        if not (self.folder / "imagesTr").is_dir():
            problems.append(f"{self.folder / 'imagesTr'}: folder missing")
        elif not images and not problems:
            problems.append(f"{self.folder}: dataset has no cases")
        if d.num_training != len(labels) and labels_folder.is_dir():
            problems.append(f"{self.folder / 'dataset.json'}: numTraining is {d.num_training} but labelsTr holds "
                            f"{len(labels)} label file(s)")
        if problems:
            raise DatasetProblems(problems)
        return [RawCase(c, images[c], labels[c]) for c in complete]

    def test_cases(self) -> List[RawCase]:
        d = self.description
        images, problems = group_channel_files(self.folder / "imagesTs", d.file_ending, d.num_channels)
        if problems:
            raise DatasetProblems(problems)
        return [RawCase(c, images[c]) for c in sorted(images)]


def load_case(case: RawCase, description: DatasetDescription) -> LoadedCase:
    """Read a case and check it; raises DatasetProblems with every problem of the case."""
    problems: List[str] = []
    arrays, reference = [], None
    for path in case.image_files:
        try:
            array, geometry = read_image(path)
        except NnoccError as e:
            problems.append(str(e))
            continue
        if reference is None:
            reference = geometry
        else:
            diff = reference.differences(geometry)
            if diff:
                problems.append(f"{path}: differs from {case.image_files[0].name} in {'; '.join(diff)}")
                continue
        nonfinite = count_nonfinite(path, array)
        if nonfinite:
            problems.append(f"{path}: contains {nonfinite} non-finite value(s) (NaN or inf)")
        array = array.astype(np.float32, copy=False)
        arrays.append(array)
    label = None
    if case.label_file is not None:
        label, problems = _load_label(case, description, reference, problems)
    if problems or reference is None:
        raise DatasetProblems(problems or [f"case {case.name}: no image file"])
    image = arrays[0][None] if len(arrays) == 1 else np.stack(arrays)    # one CT channel: no copy of 400 MB
    return LoadedCase(case.name, image, label, reference)


def _load_label(case: RawCase, description: DatasetDescription, reference: Optional[ImageGeometry],
                problems: List[str]) -> Tuple[Optional[np.ndarray], List[str]]:
    assert case.label_file is not None
    try:
        label, geometry = read_image(case.label_file)
    except NnoccError as e:
        return None, problems + [str(e)]
    if reference is not None:
        diff = reference.differences(geometry)
        if diff:
            return None, problems + [f"{case.label_file}: differs from {case.image_files[0].name} in {'; '.join(diff)}"]
    if np.issubdtype(label.dtype, np.floating):
        if not np.isfinite(label).all() or not np.all(label == np.round(label)):
            return None, problems + [f"{case.label_file}: label values must be integers"]
    values = np.unique(label)
    undeclared = sorted(set(values.astype(np.int64).tolist()) - set(description.label_values))
    if undeclared:
        return None, problems + [f"{case.label_file}: label value(s) {undeclared} not declared in dataset.json "
                                 f"(declared: {description.label_values})"]
    dtype = np.uint8 if max(description.label_values) < 256 else np.uint16
    return label.astype(dtype), problems


def load_cases_checked(worker, jobs: Sequence, names: Sequence[str], num_processes: int, desc: str) -> list:
    """Run ``worker(job)`` (which calls load_case) over all jobs; gather every case's problems.

    Raises DatasetProblems listing the problems of all cases, so one pass finds everything.
    """
    from nnocc.utils.parallel import map_cases

    results, failures = map_cases(worker, jobs, num_processes, desc=desc, names=names)
    problems: List[str] = []
    for name, error in failures:
        lines = error.problems if isinstance(error, DatasetProblems) else [str(error)]
        # an error that does not say which file it concerns at least says which case
        problems.extend(line if name in line or "/" in line else f"case {name}: {line}" for line in lines)
    if problems:
        raise DatasetProblems(problems)
    return results
