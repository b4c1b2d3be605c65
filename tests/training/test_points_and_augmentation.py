"""Query points, their labels and augmentation stay consistent with the image."""

import numpy as np
import pytest
import torch

from nnocc.architectures.base import Placement
from nnocc.coordinates import patch_to_index
from nnocc.io.images import ImageGeometry, write_image, write_segmentation
from nnocc.paths import DataFolders, DatasetPaths
from nnocc.planning.plans import AugmentationPlan
from nnocc.training.augmentation import apply_affine, random_joint_affine, random_spatial_transform, sample_volume
from nnocc.training.dataloader import patch_placement
from nnocc.training.points import boundary_band, label_points, sample_query_points, soft_label_points
from nnocc.utils.json_io import save_json


def test_boundary_share_and_band():
    labels = np.zeros((20, 20, 20), np.uint8)
    labels[5:15, 5:15, 5:15] = 1
    band = boundary_band(labels, 1.0, (1.0, 1.0, 1.0))
    assert band[4:6, 10, 10].all() and not band[10, 10, 10] and not band[0, 0, 0]
    points = sample_query_points(4000, 0.5, band, np.random.default_rng(0))
    assert points.shape == (4000, 3) and points.min() >= -0.5 and points.max() <= 0.5
    voxels = np.clip(np.floor((points + 0.5) * 20), 0, 19).astype(int)
    in_band = band[tuple(voxels.T)].mean()
    assert in_band > 0.5 + 0.5 * band.mean() - 0.05
    assert len(np.unique(points, axis=0)) == 4000  # jittered off the lattice


def test_band_equals_the_whole_patch_transform_at_anisotropic_spacing():
    from scipy.ndimage import distance_transform_edt
    labels = np.zeros((24, 70, 60), np.uint8)               # structures well inside: the box is tight
    labels[6:9, 20:30, 15:25] = 1
    labels[12:15, 35:45, 30:38] = 2
    labels[10, 40, 34] = 3
    spacing = (3.5, 0.8, 1.1)
    edge = boundary_band(labels, 0.0, spacing)             # a zero band is the edge itself
    reference = distance_transform_edt(~edge, sampling=spacing) <= 4.0
    assert np.array_equal(boundary_band(labels, 4.0, spacing), reference)


def test_point_labels_nearest_and_soft():
    labels = np.zeros((4, 4, 4), np.uint8)
    labels[2:, :, :] = 1
    indices = np.array([[1.4, 1, 1], [1.6, 1, 1], [-3, 0, 0], [1.5, 2, 2]])
    np.testing.assert_array_equal(label_points(labels, indices), [0, 1, 0, 1])
    soft = soft_label_points(labels, indices, [0, 1])
    np.testing.assert_allclose(soft.sum(1), 1.0)
    np.testing.assert_allclose(soft[3], [0.5, 0.5], atol=1e-6)


def test_identity_transform_reads_the_plain_crop():
    volume = np.arange(10 * 12 * 14, dtype=np.float32).reshape(10, 12, 14)
    t = random_spatial_transform([4, 4, 4], np.array([5.0, 6.0, 7.0]), [1, 1, 1], None, np.random.default_rng(0))
    np.testing.assert_array_equal(sample_volume(volume, t, 3, 0.0), volume[4:8, 5:9, 6:10])
    point = np.array([[1.0, 2.0, 3.0]])
    np.testing.assert_allclose(t.map_points(point), [[5.0, 7.0, 9.0]])


def test_joint_affine_is_one_millimetre_map_in_patch_coordinates():
    """Seed 002's augmentation: I + N(0, 0.1) and a shift, in millimetres about the patch's centre."""
    patch_mm = [60.0, 120.0, 90.0]
    affine = random_joint_affine(patch_mm, 0.1, 0.1, np.random.default_rng(3))
    draw = np.random.default_rng(3)
    matrix, shift = np.eye(3) + draw.normal(0, 0.1, (3, 3)), draw.normal(0, 0.1 * 120.0, 3)
    points = np.random.default_rng(0).uniform(-0.5, 0.5, (50, 3))
    np.testing.assert_allclose(apply_affine(affine, points), ((points * patch_mm) @ matrix.T + shift) / patch_mm,
                               atol=1e-12)
    identity = random_joint_affine(patch_mm, 0.0, 0.0, np.random.default_rng(1))
    np.testing.assert_array_equal(identity, np.c_[np.eye(3), np.zeros(3)])


@pytest.mark.parametrize("rotate", [False, True])
def test_transform_maps_points_where_the_image_came_from(rotate):
    volume = np.indices((30, 40, 40), dtype=np.float32)[1] * 3.0 + np.indices((30, 40, 40))[2]
    plan = AugmentationPlan(p_rotation=1.0 if rotate else 0.0, p_scale=1.0 if rotate else 0.0, mirror_axes=[0, 1, 2])
    rng = np.random.default_rng(3)
    for _ in range(5):
        t = random_spatial_transform([10, 12, 12], np.array([15.0, 20.0, 20.0]), [2.0, 1.0, 1.0], plan, rng)
        patch = sample_volume(volume, t, 1, 0.0)
        voxel = np.array([[4, 5, 6], [7, 2, 9]], dtype=np.float64)
        source = t.map_points(voxel)
        expected = source[:, 1] * 3.0 + source[:, 2]
        np.testing.assert_allclose(patch[tuple(voxel.astype(int).T)], expected, atol=1e-3)


def test_a_mirrored_patchs_placement_puts_its_points_where_they_came_from():
    """SwIPE reads each point's position in its case from the placement: right for mirrored patches too."""
    plan = AugmentationPlan(p_rotation=0.0, p_scale=0.0, mirror_axes=[0, 1, 2])
    rng, size, case_shape = np.random.default_rng(1), [10, 12, 8], [30, 40, 40]
    seen = set()
    for _ in range(12):
        t = random_spatial_transform(size, np.array([15.0, 20.0, 20.0]), [2.0, 1.0, 1.0], plan, rng)
        seen.add(tuple(t.flips))
        placement = Placement.from_rows(torch.from_numpy(patch_placement(np.array([15.0, 20.0, 20.0]), size,
                                                                         case_shape, t.flips))[None])
        points = rng.uniform(-0.5, 0.5, (50, 3))
        voxels = patch_to_index(points, [0, 0, 0], size)                   # in the (mirrored) patch's array
        in_case = placement.case_position(torch.from_numpy(points)[None].float())[0].numpy() - 0.5
        np.testing.assert_allclose(in_case, t.map_points(voxels), atol=1e-4)
    assert len(seen) > 4


def _phantom_dataset(root):
    """Image intensity = label value (no normalisation), anisotropic and resampled."""
    folders = DataFolders(root / "raw", root / "pre", root / "res")
    folder = folders.raw / "Dataset077_Phantom"
    rng = np.random.default_rng(0)
    for i in range(5):
        labels = np.zeros((20, 48, 48), np.uint8)
        for value in (1, 2, 3):
            c = rng.integers([4, 10, 10], [16, 38, 38])
            r = rng.integers(3, 8)
            zz, yy, xx = np.indices(labels.shape)
            labels[((zz - c[0]) * 2.5) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 <= r * r] = value
        geometry = ImageGeometry([20, 48, 48], [2.5, 1.1, 1.1], [0.0, 0.0, 0.0], [1.0, 0, 0, 0, 1, 0, 0, 0, 1])
        write_image(labels.astype(np.float32) * 100 + 1, geometry, folder / "imagesTr" / f"p{i}_0000.nii.gz")
        write_segmentation(labels, geometry, folder / "labelsTr" / f"p{i}.nii.gz")
    save_json({"channel_names": {"0": "noNorm"}, "labels": {"background": 0, "a": 1, "b": 2, "c": 3},
               "numTraining": 5, "file_ending": ".nii.gz"}, folder / "dataset.json")
    return folders


def test_phantom_image_augmentation_and_point_labels_agree(tmp_path):
    from nnocc.fingerprint.run import run_fingerprint_extraction
    from nnocc.io.dataset_json import load_dataset_json
    from nnocc.planning.run import run_planning
    from nnocc.preprocessing.run import run_preprocessing_for_plans
    from nnocc.training.dataloader import BatchSettings, OccupancyDataLoader

    folders = _phantom_dataset(tmp_path)
    paths = DatasetPaths(folders, "Dataset077_Phantom")
    run_fingerprint_extraction(paths)
    plans = run_planning(paths, gpu_memory_target_gb=1.0)
    config = plans.configurations["3d_occ"]
    config.spacing = [2.0, 1.5, 1.5]            # force a real resampling between label and image grids
    config.augmentation = AugmentationPlan(p_rotation=1.0, p_scale=1.0, rotation_deg=[20, 20, 20], p_gamma=0,
                                           p_noise=0, p_blur=0, p_brightness=0, p_contrast=0)
    plans.save(paths.plans_file("nnoccPlans"))
    run_preprocessing_for_plans(paths)
    data = paths.preprocessed_data("nnoccPlans_3d_fullres")
    loader = OccupancyDataLoader(data, [f"p{i}" for i in range(5)], config, load_dataset_json(paths.dataset_json),
                                 BatchSettings(4, True, 0))
    agree = total = 0
    for _ in range(3):
        batch = loader.generate_train_batch()
        for image, points, targets in zip(batch["data"], batch["points"], batch["point_targets"]):
            size = np.array(image.shape[1:])
            voxel = np.clip(np.round((points + 0.5) * size - 0.5), 0, size - 1).astype(int)
            seen = np.round((image[0][tuple(voxel.T)] - 1) / 100)
            agree += (seen == targets).sum()
            total += len(targets)
    assert agree / total > 0.95, agree / total


def test_class_balanced_points_give_each_label_its_share_half_near_its_boundary():
    from nnocc.training.points import latin_hypercube, sample_class_balanced_points

    labels = np.zeros((24, 40, 40), np.uint8)
    labels[4:20, 5:35, 5:35] = 1                       # large
    labels[10:13, 18:21, 18:21] = 2                    # small: 27 voxels, all of them near its boundary
    band = boundary_band(labels, 3.0, (1.0, 1.0, 1.0))
    points = sample_class_balanced_points(3000, labels, band, 0.5, np.random.default_rng(0))
    assert points.shape == (3000, 3) and points.min() >= -0.5 and points.max() <= 0.5
    voxels = tuple(np.clip(np.floor((points + 0.5) * labels.shape), 0, np.asarray(labels.shape) - 1).astype(int).T)
    for value in (0, 1, 2):
        mine = labels[voxels] == value
        assert abs(mine.sum() - 1000) <= 30, (value, mine.sum())
        if value < 2:
            assert abs(band[voxels][mine].mean() - 0.5) < 0.05
    weighted = sample_class_balanced_points(3000, labels, band, 0.5, np.random.default_rng(1), background_weight=4.0)
    voxels = tuple(np.clip(np.floor((weighted + 0.5) * labels.shape), 0, np.asarray(labels.shape) - 1).astype(int).T)
    assert abs((labels[voxels] == 0).sum() - 2000) <= 30 and abs((labels[voxels] == 2).sum() - 500) <= 30
    # one point per slab on each axis
    lhs = latin_hypercube(50, np.random.default_rng(1))
    assert all(sorted(np.floor((lhs[:, a] + 0.5) * 50).astype(int)) == list(range(50)) for a in range(3))
