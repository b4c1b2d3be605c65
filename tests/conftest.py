"""Shared fixtures: isolated data folders and small generated datasets (built once per session)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nnocc.dataset_conversion.synthetic import generate_dataset
from nnocc.paths import DataFolders
from nnocc.planning.planner import OccupancyPlanner

torch.set_num_threads(2)
SMALL_SHAPE = (24, 64, 64)


@pytest.fixture(scope="session", autouse=True)
def batches_in_the_main_process():
    """Trainings here take a few steps; spawning augmentation workers (each importing torch) would take
    longer than the steps. test_train_fold_writes_everything_and_validates trains with workers."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("nnocc_n_proc_DA", "0")
        yield


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


class ConvOccPlanner(OccupancyPlanner):
    """Plans 3d_occ alone: the shared fixture's tests run one configuration (test_configurations.py
    covers several)."""
    architectures = ("convocc",)


@pytest.fixture(scope="session")
def ct_preprocessed(ct_raw_root, tmp_path_factory) -> DataFolders:
    """Dataset501 planned for a 1 GB budget (3d_occ, the 'tiny' network) and preprocessed, shared read-only."""
    from nnocc.fingerprint.run import run_fingerprint_extraction
    from nnocc.paths import DatasetPaths
    from nnocc.planning.run import run_planning
    from nnocc.preprocessing.run import run_preprocessing_for_plans

    folders = folders_at(tmp_path_factory.mktemp("ct_pre"))
    for path in (folders.raw, folders.preprocessed, folders.results):
        path.mkdir(parents=True)
    copy_dataset(ct_raw_root, folders)
    paths = DatasetPaths(folders, "Dataset501_SmallCT")
    run_fingerprint_extraction(paths)
    run_planning(paths, "tests.conftest:ConvOccPlanner", gpu_memory_target_gb=1.0)
    run_preprocessing_for_plans(paths)
    return folders


@pytest.fixture
def trained_folders(ct_preprocessed, tmp_path, monkeypatch) -> DataFolders:
    """The shared preprocessed dataset with a fresh results folder for this test."""
    folders = DataFolders(ct_preprocessed.raw, ct_preprocessed.preprocessed, tmp_path / "results")
    use_folders(monkeypatch, folders)
    return folders


def make_untrained_model_folder(folders: DataFolders, dataset: str = "Dataset501_SmallCT", folds=(0,)) -> Path:
    """A model folder with randomly initialised networks: enough to test geometry and plumbing."""
    from nnocc.architectures.registry import build_model
    from nnocc.paths import DatasetPaths
    from nnocc.planning.plans import Plans
    from nnocc.utils.checkpoints import save_checkpoint

    paths = DatasetPaths(folders, dataset)
    plans = Plans.load(paths.plans_file("nnoccPlans"))
    arch = plans.configurations["3d_occ"].architecture
    model_folder = paths.model_folder("3d_occ")
    for fold in folds:
        torch.manual_seed(fold)
        network = build_model(arch.name, arch.kwargs)
        save_checkpoint(model_folder / f"fold_{fold}" / "checkpoint_final.pth",
                        {"network_weights": network.state_dict(), "epoch": 0})
    plans.save(model_folder / "plans.json")
    (model_folder / "dataset.json").write_bytes(paths.dataset_json.read_bytes())
    return model_folder


def pytest_configure(config):
    # the reference implementation the surface metrics are checked against uses deprecated scipy names
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning:surface_distance")
    config.addinivalue_line("filterwarnings", "ignore:Detected pickle protocol:UserWarning")
