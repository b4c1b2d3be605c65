"""Several configurations per dataset: all planned on one preprocessed copy, each trained, resumed,
predicted at exact geometry and compared by cross-validation."""
import dataclasses
import json
import shutil

import numpy as np
import pytest

from nnocc.cli import find_best_configuration, plan_and_preprocess, predict, train
from nnocc.cli.environment import dataset_paths
from nnocc.io.images import read_image
from nnocc.planning.plans import Plans
from tests.conftest import copy_dataset

SHORT = ["--epochs", "2", "--iterations_per_epoch", "2", "--validation_iterations", "1", "--quiet",
         "--val_disable_tta"]


def _run(main, args):
    with pytest.raises(SystemExit) as info:
        main(args)
    return info.value.code


@pytest.fixture(scope="module")
def two_configurations(ct_raw_root, tmp_path_factory):
    """Dataset501 planned for 2 GB, where OSS-Net's whole case, SCONet's and SwIPE's cubic crops fit beside
    ConvOccNet."""
    from tests.conftest import folders_at, use_folders

    folders = folders_at(tmp_path_factory.mktemp("two_configurations"))
    with pytest.MonkeyPatch.context() as monkeypatch:
        use_folders(monkeypatch, folders)
        copy_dataset(ct_raw_root, folders)
        assert _run(plan_and_preprocess.main, ["-d", "501", "-np", "1", "--gpu_memory_target", "2"]) == 0
        # Models trained for four steps answer noise, which the small-structure pass (tested in
        # tests/inference) refines sixteen times per case: half of this module's time.
        plans_file = dataset_paths(501).plans_file("nnoccPlans")
        plans = Plans.load(plans_file)
        for config in plans.configurations.values():
            config.mise.refine_labels = []
        plans.save(plans_file)
    return folders


@pytest.fixture
def configured(two_configurations, monkeypatch):
    from tests.conftest import use_folders

    use_folders(monkeypatch, two_configurations)
    return two_configurations


def test_all_configurations_share_one_preprocessed_copy(configured):
    paths = dataset_paths(501)
    plans = Plans.load(paths.plans_file("nnoccPlans"))
    assert set(plans.configurations) == {"3d_occ", "3d_ossnet", "3d_sconet", "3d_swipe"}
    assert plans.data_folders() == {"nnoccPlans_3d_fullres": ["3d_occ", "3d_ossnet", "3d_sconet", "3d_swipe"]}
    sco = plans.configurations["3d_sconet"]
    clouds = paths.preprocessed_data(sco.point_cloud_folder_name("nnoccPlans"))
    assert sorted(p.stem for p in clouds.glob("*.npy")) == sorted(p.stem for p in
                                                                  paths.preprocessed_data("nnoccPlans_3d_fullres").glob("*.b2nd")
                                                                  if "_seg" not in p.stem)
    assert plans.recommended_configuration in plans.configurations and plans.recommendation_reason
    oss = plans.configurations["3d_ossnet"]
    assert oss.sampling.case_share == 1.0 and oss.sampling.points_per_patch in (2 ** 12, 2 ** 13, 2 ** 14)
    assert oss.training.optimizer == "lookahead_radam" and oss.mise.seed_from_aux
    assert all(p >= m for p, m in zip(oss.patch_size, np.floor(oss.median_shape)))   # the whole case


def test_a_point_cloud_batch_moves_cloud_and_queries_together(configured, monkeypatch):
    """SCONet's loader: a draw of the stored cloud in patch coordinates; augmented, the cloud and the
    labelled query points move by the same affine (undoing it restores both)."""
    from nnocc.io.dataset_json import load_dataset_json
    from nnocc.preprocessing.point_clouds import load_point_cloud
    from nnocc.training import dataloader

    paths = dataset_paths(501)
    config = Plans.load(paths.plans_file("nnoccPlans")).configuration("3d_sconet")
    clouds = paths.preprocessed_data(config.point_cloud_folder_name("nnoccPlans"))
    drawn, real = [], dataloader.random_joint_affine

    def recording(*args):
        drawn.append(real(*args))
        return drawn[-1]
    monkeypatch.setattr(dataloader, "random_joint_affine", recording)
    loader = dataloader.OccupancyDataLoader(paths.preprocessed_data("nnoccPlans_3d_fullres"), ["case_0000"], config,
                                            load_dataset_json(paths.dataset_json),
                                            dataloader.BatchSettings(1, True, 0), clouds)
    sample = loader.make_sample()
    assert sample["data"].shape == (50000, 3 + 48) and sample["points"].shape == (config.sampling.points_per_patch, 3)
    (affine,) = drawn
    inverse = np.linalg.inv(affine[:, :3])

    def undo(p):
        return (p - affine[:, 3]) @ inverse.T
    assert np.abs(undo(sample["points"])).max() <= 0.5 + 1e-5                 # the queries came from the patch
    stored = load_point_cloud(clouds, "case_0000")
    start, size = sample["placement"][:3], sample["placement"][3:6]
    voxels = (undo(sample["data"][:, :3]) + 0.5) * size - 0.5 + start
    rows = {tuple(r) for r in np.round(stored[:, :3]).astype(int)}
    assert all(tuple(v) in rows for v in np.round(voxels[:200]).astype(int))  # the cloud came from the case
    assert np.abs(voxels - np.round(voxels)).max() < 1e-3

    augmented = dataclasses.replace(config, point_cloud=dataclasses.replace(config.point_cloud, augment_intensities=True))
    fresh = dataloader.OccupancyDataLoader(paths.preprocessed_data("nnoccPlans_3d_fullres"), ["case_0000"], augmented,
                                           load_dataset_json(paths.dataset_json),
                                           dataloader.BatchSettings(1, True, 1), clouds).make_sample()
    assert fresh["data"].shape == (50000, 3 + 48) and np.isfinite(fresh["data"]).all()    # extracted afresh


def test_each_configuration_trains_resumes_predicts_and_is_compared(configured, tmp_path, capsys):
    paths = dataset_paths(501)
    one_epoch = ["--epochs", "1", *SHORT[2:]]       # OSS-Net's steps and cases are the slowest here
    assert _run(train.main, ["501", "3d_ossnet", "0", *one_epoch]) == 0
    folder = paths.model_folder("3d_ossnet") / "fold_0"
    assert (folder / "checkpoint_final.pth").is_file() and (folder / "validation" / "summary.json").is_file()
    assert _run(train.main, ["501", "3d_ossnet", "0", *one_epoch, "--c"]) == 0
    assert "training already finished" in (folder / "training_log.txt").read_text()

    images = configured.raw / "Dataset501_SmallCT" / "imagesTs"
    assert _run(predict.main, ["-i", str(images), "-o", str(tmp_path / "out"), "-d", "501", "-f", "0",
                               "--disable_tta"]) == 1
    assert "holds several configurations (3d_occ, 3d_ossnet, 3d_sconet, 3d_swipe); choose one with -c" in capsys.readouterr().err
    one_image = tmp_path / "one_image"
    one_image.mkdir()
    shutil.copy(sorted(images.glob("*_0000.nii.gz"))[0], one_image)
    _predicts_at_exact_geometry(one_image, tmp_path / "out", ["-d", "501", "-c", "3d_ossnet", "-f", "0"])
    stats = json.loads((tmp_path / "out" / "inference_stats.json").read_text())
    assert stats["settings"]["seed_from_aux"] is None and len(stats["cases"]) == 1

    assert _run(train.main, ["501", "3d_sconet", "0", *SHORT]) == 0
    _predicts_at_exact_geometry(images, tmp_path / "sconet", ["-d", "501", "-c", "3d_sconet", "-f", "0"])
    stats = json.loads((tmp_path / "sconet" / "inference_stats.json").read_text())["cases"]
    assert all(s["encoded_tiles"] == 1 and s["seconds_point_cloud"] > 0 for s in stats.values())   # one cloud, one tile

    assert _run(train.main, ["501", "3d_swipe", "0", *SHORT]) == 0      # predicted by the two-channel test below
    log = (paths.model_folder("3d_swipe") / "fold_0" / "training_log.txt").read_text()
    assert "final validation Dice" in log

    assert _run(train.main, ["501", "3d_occ", "0", *SHORT]) == 0
    everything = ("3d_occ", "3d_ossnet", "3d_sconet", "3d_swipe")
    assert _run(find_best_configuration.main, ["-d", "501", "-c", *everything, "-f", "0",
                                               "-np", "1", "--disable_ensembling"]) == 0
    information = json.loads((paths.results / "inference_information.json").read_text())
    assert set(information["results"]) == {f"nnoccTrainer__nnoccPlans__{c}" for c in everything}
    assert f"-c {information['best'].split('__')[-1]}" in information["commands"][0]


def _predicts_at_exact_geometry(images, out, args):
    assert _run(predict.main, ["-i", str(images), "-o", str(out), *args, "--disable_tta", "-npp", "1"]) == 0
    for image in sorted(images.glob("*_0000.nii.gz")):
        labels, geometry = read_image(out / image.name.replace("_0000", ""))
        assert geometry.differences(read_image(image)[1], tolerance=1e-6) == []


@pytest.mark.parametrize("configuration", ["3d_sconet", "3d_swipe"])
def test_the_whole_chain_on_a_two_channel_mri(configuration, mri_raw_root, tmp_path, monkeypatch):
    """The whole chain with -c 3d_sconet (contours from the first channel, z-scored thresholds) and with
    -c 3d_swipe (two channels into its encoder) on MRI."""
    from tests.conftest import copy_dataset, folders_at, use_folders

    folders = folders_at(tmp_path / "mri")
    use_folders(monkeypatch, folders)
    copy_dataset(mri_raw_root, folders)
    assert _run(plan_and_preprocess.main, ["-d", "502", "-np", "1", "--gpu_memory_target", "2",
                                           "-c", configuration]) == 0
    config = Plans.load(dataset_paths(502).plans_file("nnoccPlans")).configuration(configuration)
    if configuration == "3d_sconet":
        assert config.point_cloud is not None and "zscore" in config.point_cloud.thresholds_note
    else:
        assert config.architecture.kwargs["in_channels"] == 2 and len(set(config.patch_size)) == 1
    assert _run(train.main, ["502", configuration, "0", *SHORT]) == 0
    images = folders.raw / "Dataset502_SmallMRI" / "imagesTs"
    _predicts_at_exact_geometry(images, tmp_path / "out", ["-d", "502", "-c", configuration, "-f", "0"])
    assert _run(find_best_configuration.main, ["-d", "502", "-c", configuration, "-f", "0", "-np", "1",
                                               "--disable_ensembling"]) == 0
    information = json.loads((dataset_paths(502).results / "inference_information.json").read_text())
    assert information["best"] == f"nnoccTrainer__nnoccPlans__{configuration}"
