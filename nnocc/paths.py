"""Where nnocc's three data folders live, and how a dataset id becomes a folder.

The library never reads the environment: a command resolves the variables ``nnocc_raw``,
``nnocc_preprocessed`` and ``nnocc_results`` once when it starts (``nnocc.cli.environment``) and
passes a ``DataFolders`` down, so that embedding programs and tests choose folders explicitly.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Union

from nnocc.utils.errors import NnoccError

FOLDER_NAMES = ("nnocc_raw", "nnocc_preprocessed", "nnocc_results")
_DATASET_FOLDER = re.compile(r"^Dataset(\d{3})_(.+)$")


def _default_root() -> Path:
    """The checkout's top level when nnocc runs from a source tree, else the working directory."""
    package_parent = Path(__file__).resolve().parent.parent
    if (package_parent / "setup.py").is_file():
        return package_parent
    return Path.cwd()


def data_folder(kind: str, variables: Mapping[str, str]) -> Path:
    """The folder for ``kind`` (one of FOLDER_NAMES): ``variables[kind]`` when set, else the default."""
    if kind not in FOLDER_NAMES:
        raise ValueError(f"unknown data folder kind {kind!r}; expected one of {FOLDER_NAMES}")
    value = variables.get(kind)
    return Path(value).expanduser().resolve() if value else _default_root() / kind


@dataclass(frozen=True)
class DataFolders:
    raw: Path
    preprocessed: Path
    results: Path

    @classmethod
    def from_variables(cls, variables: Mapping[str, str]) -> "DataFolders":
        """The folders named by a mapping of variable names to paths (the command line passes its environment)."""
        return cls(*(data_folder(kind, variables) for kind in FOLDER_NAMES))


def dataset_name_from_folder(name: str) -> tuple[int, str]:
    """'Dataset023_KiTS' -> (23, 'KiTS'); raises for names that do not follow the convention."""
    match = _DATASET_FOLDER.match(name)
    if not match:
        raise NnoccError(f"{name}: not a dataset folder name (expected DatasetXXX_Name)")
    return int(match.group(1)), match.group(2)


def _candidates(folder: Path, dataset_id: int) -> list:
    if not folder.is_dir():
        return []
    prefix = f"Dataset{dataset_id:03d}_"
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name.startswith(prefix))


def find_dataset_name(dataset: Union[int, str], folders: DataFolders) -> str:
    """Resolve ``-d 23``, ``-d 023``, or ``-d Dataset023_KiTS`` to the dataset's folder name.

    Looks in the raw folder first, then preprocessed and results (a user may have only a trained
    model).  Exactly one match is required.
    """
    text = str(dataset)
    if text.startswith("Dataset"):
        dataset_name_from_folder(text)
        return text
    if not text.isdigit():
        raise NnoccError(f"dataset {text!r}: expected a number such as 23 or a name such as Dataset023_KiTS")
    dataset_id = int(text)
    if not 0 <= dataset_id <= 999:
        raise NnoccError(f"dataset id {dataset_id}: must be between 0 and 999")
    for folder in (folders.raw, folders.preprocessed, folders.results):
        names = _candidates(folder, dataset_id)
        if len(names) > 1:
            raise NnoccError(f"{folder}: several datasets have id {dataset_id:03d} ({', '.join(names)}); "
                             f"keep one or pass the full name")
        if names:
            return names[0]
    raise NnoccError(f"no dataset with id {dataset_id:03d} (Dataset{dataset_id:03d}_*) in {folders.raw}, "
                     f"{folders.preprocessed} or {folders.results}; set the nnocc_raw environment variable "
                     f"or create the dataset there")


@dataclass(frozen=True)
class DatasetPaths:
    """Every file and folder name of one dataset across the three data folders."""

    folders: DataFolders
    name: str

    @property
    def raw(self) -> Path:
        return self.folders.raw / self.name

    @property
    def preprocessed(self) -> Path:
        return self.folders.preprocessed / self.name

    @property
    def results(self) -> Path:
        return self.folders.results / self.name

    @property
    def fingerprint_file(self) -> Path:
        return self.preprocessed / "dataset_fingerprint.json"

    @property
    def dataset_json(self) -> Path:
        return self.preprocessed / "dataset.json"

    @property
    def splits_file(self) -> Path:
        return self.preprocessed / "splits_final.json"

    def plans_file(self, plans_name: str) -> Path:
        return self.preprocessed / f"{plans_name}.json"

    def preprocessed_data(self, folder_name: str) -> Path:
        """A configuration's preprocessed cases (``ConfigurationPlan.data_folder_name``)."""
        return self.preprocessed / folder_name

    def model_folder(self, configuration: str, plans_name: str = "nnoccPlans", trainer: str = "nnoccTrainer") -> Path:
        return self.results / f"{trainer}__{plans_name}__{configuration}"


def dataset_paths(dataset: Union[int, str], folders: DataFolders) -> DatasetPaths:
    return DatasetPaths(folders, find_dataset_name(dataset, folders))
