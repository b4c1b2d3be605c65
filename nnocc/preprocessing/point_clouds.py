"""Contour point clouds of every preprocessed case, for configurations whose encoder reads them.

They live beside the data folder (``<plans>_<configuration>_point_clouds/<case>.npy``), because
the data folder is shared by configurations (and by plans that keep its data identifier) and the
clouds belong to one.  ``key.json``
records what they were made from; when the images or the extraction settings change, the clouds
are redone.  Each file is written under a temporary name and renamed, so an interrupted run leaves
whole clouds and the next run makes only the missing ones.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import List, Tuple

import numpy as np

from nnocc.architectures.registry import architecture_facts
from nnocc.io.raw_dataset import load_cases_checked
from nnocc.planning.plans import DESCRIPTOR_CHANNELS, ConfigurationPlan, PointCloudPlan
from nnocc.preprocessing.contours import extract_point_cloud
from nnocc.preprocessing.storage import CaseProperties, list_cases, open_array
from nnocc.utils.errors import NnoccError
from nnocc.utils.json_io import load_json, save_json
from nnocc.utils.serialization import to_dict


def _make_cloud(job: Tuple[Path, Path, str, PointCloudPlan]) -> str:
    data_folder, cloud_folder, name, settings = job
    properties = CaseProperties.load(data_folder / f"{name}.json")
    image = open_array(data_folder / f"{name}.b2nd")[...]
    cloud = extract_point_cloud(image, properties.preprocessed_spacing, settings, name)
    tmp = cloud_folder / f".{name}.tmp.npy"
    np.save(tmp, cloud)
    os.replace(tmp, cloud_folder / f"{name}.npy")
    return name


def _reset_if_stale(cloud_folder: Path, config: ConfigurationPlan) -> None:
    """An empty folder unless it holds clouds of the same images and settings (a cloud file is
    whole or absent, so the ones there are good)."""
    key, key_file = config.point_cloud_key(), cloud_folder / "key.json"
    if key_file.is_file() and load_json(key_file).get("key") == key:
        return
    shutil.rmtree(cloud_folder, ignore_errors=True)
    cloud_folder.mkdir(parents=True)
    save_json({"key": key, "configuration": config.name, "settings": to_dict(config.point_cloud)}, key_file)


def run_point_clouds(data_folder: Path, cloud_folder: Path, config: ConfigurationPlan, num_processes: int = 1,
                     clean: bool = False) -> Path:
    """One cloud per case of ``data_folder`` that lacks an up-to-date one (every one with ``clean``);
    every failing case is reported (a flat image, a wrong intensity window), the others are finished."""
    if config.point_cloud is None:
        raise NnoccError(f"configuration {config.name}: its plan has no point_cloud settings")
    if clean:
        shutil.rmtree(cloud_folder, ignore_errors=True)
    _reset_if_stale(cloud_folder, config)
    cases = list_cases(data_folder)
    for stale in cloud_folder.glob("*.npy"):
        if stale.stem not in cases:
            stale.unlink()
    todo = [n for n in cases if not (cloud_folder / f"{n}.npy").is_file()]
    jobs = [(data_folder, cloud_folder, n, config.point_cloud) for n in todo]
    load_cases_checked(_make_cloud, jobs, todo, num_processes, desc=f"contour clouds {config.name}")
    return cloud_folder


def load_point_cloud(cloud_folder: Path, name: str) -> np.ndarray:
    """(N, 3 + F) rows of one case, memory-mapped (the loader reads a random subset)."""
    path = cloud_folder / f"{name}.npy"
    if not path.is_file():
        raise NnoccError(f"{path}: missing; run nnocc_preprocess for this configuration")
    return np.load(path, mmap_mode="r", allow_pickle=False)


def check_point_cloud_plan(config: ConfigurationPlan) -> None:
    """A point-cloud configuration's plan agrees with its architecture: settings present, the
    descriptor's width what the network reads, no mirroring (it neither trains nor predicts mirrored)."""
    facts = architecture_facts(config.architecture.name, config.architecture.kwargs, config.patch_size)
    if facts.cloud_size is None:
        return
    if config.point_cloud is None:
        raise NnoccError(f"configuration {config.name}: {config.architecture.name} reads point clouds, but the plan "
                         f"has no point_cloud settings")
    width = DESCRIPTOR_CHANNELS.get(config.point_cloud.descriptor)
    if width != config.architecture.kwargs.get("point_features"):
        raise NnoccError(f"configuration {config.name}: descriptor {config.point_cloud.descriptor!r} gives {width} "
                         f"values per point, the architecture reads {config.architecture.kwargs.get('point_features')}")
    if config.augmentation.mirror_axes:
        raise NnoccError(f"configuration {config.name}: a point-cloud encoder is not mirrored; set "
                         f"augmentation.mirror_axes to []")


def check_point_clouds(cloud_folder: Path, config: ConfigurationPlan, cases: List[str]) -> None:
    """Training needs an up-to-date cloud for every case."""
    key_file = cloud_folder / "key.json"
    if not key_file.is_file() or load_json(key_file).get("key") != config.point_cloud_key():
        raise NnoccError(f"{cloud_folder}: no contour clouds for this plan; run nnocc_preprocess -c {config.name}")
    missing = [n for n in cases if not (cloud_folder / f"{n}.npy").is_file()]
    if missing:
        raise NnoccError(f"{cloud_folder}: no contour cloud for {len(missing)} case(s) ({', '.join(missing[:3])}); "
                         f"run nnocc_preprocess -c {config.name}")
