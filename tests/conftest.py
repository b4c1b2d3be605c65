"""Shared fixtures: isolated data folders and small generated datasets (built once per session)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from nnocc.dataset_conversion.synthetic import generate_dataset
from nnocc.paths import DataFolders

torch.set_num_threads(2)
SMALL_SHAPE = (24, 64, 64)


def folders_at(root: Path) -> DataFolders:
    return DataFolders(root / "raw", root / "preprocessed", root / "results")


def use_folders(monkeypatch, folders: DataFolders) -> None:
    for name, path in zip(("nnocc_raw", "nnocc_preprocessed", "nnocc_results"),
                          (folders.raw, folders.preprocessed, folders.results)):
        path.mkdir(parents=True, exist_ok=True)
        monkeypatch.setenv(name, str(path))


@pytest.fixture
def data_folders(tmp_path, monkeypatch) -> DataFolders:
    """Empty raw / preprocessed / results folders, pointed to by the environment variables."""
    folders = folders_at(tmp_path)
    use_folders(monkeypatch, folders)
    return folders


@pytest.fixture(scope="session")
def ct_raw_root(tmp_path_factory) -> Path:
    """A raw folder holding Dataset501_SmallCT: 6 training and 2 test cases of 24x64x64."""
    root = tmp_path_factory.mktemp("ct_raw")
    generate_dataset(root, 501, "SmallCT", num_training=6, num_test=2, shape=SMALL_SHAPE, modality="ct", seed=5)
    return root


@pytest.fixture(scope="session")
def mri_raw_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mri_raw")
    generate_dataset(root, 502, "SmallMRI", num_training=5, num_test=1, shape=SMALL_SHAPE, modality="mri", seed=6)
    return root


def copy_dataset(raw_root: Path, folders: DataFolders) -> None:
    import shutil
    for d in raw_root.iterdir():
        shutil.copytree(d, folders.raw / d.name)
