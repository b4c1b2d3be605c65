"""Several configurations per dataset: both planned on one preprocessed copy, each trained, resumed,
predicted at exact geometry and compared by cross-validation."""
import json

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
    """Dataset501 planned for 2 GB, where OSS-Net's whole case fits beside ConvOccNet."""
    from tests.conftest import folders_at, use_folders

    folders = folders_at(tmp_path_factory.mktemp("two_configurations"))
    with pytest.MonkeyPatch.context() as monkeypatch:
        use_folders(monkeypatch, folders)
        copy_dataset(ct_raw_root, folders)
        assert _run(plan_and_preprocess.main, ["-d", "501", "-np", "1", "--gpu_memory_target", "2"]) == 0
    return folders


@pytest.fixture
def configured(two_configurations, monkeypatch):
    from tests.conftest import use_folders

    use_folders(monkeypatch, two_configurations)
    return two_configurations


def test_both_configurations_share_one_preprocessed_copy(configured):
    plans = Plans.load(dataset_paths(501).plans_file("nnoccPlans"))
    assert set(plans.configurations) == {"3d_occ", "3d_ossnet"}
    assert plans.data_folders() == {"nnoccPlans_3d_fullres": ["3d_occ", "3d_ossnet"]}
    assert plans.recommended_configuration in plans.configurations and plans.recommendation_reason
    oss = plans.configurations["3d_ossnet"]
    assert oss.sampling.case_share == 1.0 and oss.sampling.points_per_patch in (2 ** 12, 2 ** 13, 2 ** 14)
    assert oss.training.optimizer == "lookahead_radam" and oss.mise.seed_from_aux
    assert all(p >= m for p, m in zip(oss.patch_size, np.floor(oss.median_shape)))   # the whole case


def test_ossnet_trains_resumes_predicts_and_is_compared(configured, tmp_path, capsys):
    paths = dataset_paths(501)
    assert _run(train.main, ["501", "3d_ossnet", "0", *SHORT]) == 0
    folder = paths.model_folder("3d_ossnet") / "fold_0"
    assert (folder / "checkpoint_final.pth").is_file() and (folder / "validation" / "summary.json").is_file()
    assert _run(train.main, ["501", "3d_ossnet", "0", *SHORT, "--c"]) == 0
    assert "training already finished" in (folder / "training_log.txt").read_text()

    images = configured.raw / "Dataset501_SmallCT" / "imagesTs"
    assert _run(predict.main, ["-i", str(images), "-o", str(tmp_path / "out"), "-d", "501", "-f", "0",
                               "--disable_tta"]) == 1
    assert "holds several configurations (3d_occ, 3d_ossnet); choose one with -c" in capsys.readouterr().err
    assert _run(predict.main, ["-i", str(images), "-o", str(tmp_path / "out"), "-d", "501", "-c", "3d_ossnet",
                               "-f", "0", "--disable_tta", "-npp", "1"]) == 0
    for image in sorted(images.glob("*_0000.nii.gz")):
        labels, geometry = read_image(tmp_path / "out" / image.name.replace("_0000", ""))
        assert geometry.differences(read_image(image)[1], tolerance=1e-6) == []
    stats = json.loads((tmp_path / "out" / "inference_stats.json").read_text())
    assert stats["settings"]["seed_from_aux"] is None and len(stats["cases"]) == 2

    assert _run(train.main, ["501", "3d_occ", "0", *SHORT]) == 0
    assert _run(find_best_configuration.main, ["-d", "501", "-c", "3d_occ", "3d_ossnet", "-f", "0", "-np", "1",
                                               "--disable_ensembling"]) == 0
    information = json.loads((paths.results / "inference_information.json").read_text())
    assert set(information["results"]) == {"nnoccTrainer__nnoccPlans__3d_occ", "nnoccTrainer__nnoccPlans__3d_ossnet"}
    assert f"-c {information['best'].split('__')[-1]}" in information["commands"][0]
