"""Contour point clouds (seed 002): edges where the image has them, descriptors of the stated size,
clear errors for images without edges, and clouds that are redone only when they would differ."""
import dataclasses
import logging

import numpy as np
import pytest

from nnocc.io.dataset_json import parse_dataset_json
from nnocc.io.images import ImageGeometry
from nnocc.planning.planner import OccupancyPlanner
from nnocc.planning.plans import DESCRIPTOR_CHANNELS, PointCloudPlan
from nnocc.preprocessing.contours import extract_point_cloud, gradient_descriptors
from nnocc.preprocessing.point_clouds import check_point_clouds, load_point_cloud, run_point_clouds
from nnocc.preprocessing.storage import CaseProperties, save_case
from nnocc.utils.errors import NnoccError
from tests.planning.test_planner import KITS_JSON, kits_like_fingerprint

SETTINGS = PointCloudPlan(canny_variance_mm2=2.0, canny_lower=0.25, canny_upper=0.65)
SPACING = [2.0, 1.0, 1.0]


def _sphere(shape=(24, 48, 48), radius_mm=14.0, contrast=3.0, noise=0.05, seed=0):
    grid = np.stack(np.meshgrid(*[(np.arange(n) - (n - 1) / 2) * s for n, s in zip(shape, SPACING)], indexing="ij"))
    distance = np.sqrt((grid ** 2).sum(0))
    image = contrast * (distance < radius_mm) + np.random.default_rng(seed).normal(0, noise, shape)
    return image.astype(np.float32)[None], distance


def test_edges_lie_on_the_boundary_and_descriptors_have_the_stated_size():
    image, distance = _sphere()
    for descriptor, width in DESCRIPTOR_CHANNELS.items():
        cloud = extract_point_cloud(image, SPACING, dataclasses.replace(SETTINGS, descriptor=descriptor), "sphere")
        assert cloud.dtype == np.float32 and cloud.shape[1] == 3 + width
    cloud = extract_point_cloud(image, SPACING, SETTINGS, "sphere")
    at = distance[tuple(cloud[:, :3].astype(int).T)]
    assert len(cloud) > 500 and np.percentile(np.abs(at - 14.0), 95) < 2.5        # on the sphere, within a voxel or two
    assert np.allclose(np.linalg.norm(cloud[:, 3:], axis=1), 1.0, atol=1e-4)      # unit length: contrast invariant
    again = extract_point_cloud(image * 5, SPACING, dataclasses.replace(SETTINGS, canny_lower=1.25, canny_upper=3.25),
                                "sphere")
    np.testing.assert_allclose(again, cloud, atol=1e-4)


def test_descriptor_sees_the_direction_of_the_boundary():
    image, _ = _sphere()
    top, side = np.array([[12 - 7, 24, 24]]), np.array([[12, 24, 24 + 14]])   # 14 mm out along z and along x
    d_top, d_side = (gradient_descriptors(image[0], SPACING, p)[0].reshape(8, 6) for p in (top, side))
    # on the z-pole the z gradient dominates, on the x-side the x gradient
    assert np.abs(d_top[:, 1]).sum() > 1.5 * np.abs(d_top[:, 5]).sum()
    assert np.abs(d_side[:, 5]).sum() > 1.5 * np.abs(d_side[:, 1]).sum()
    # the signed gradient points into the sphere: +z at the low-z pole, -x on the high-x side
    assert d_top[:, 0].sum() > 0 and d_side[:, 4].sum() < 0


def test_a_flat_image_is_an_error_naming_the_case_and_few_edges_a_warning(caplog):
    with pytest.raises(NnoccError, match="case_flat: only 0 contour points.*flat"):
        extract_point_cloud(np.zeros((1, 16, 32, 32), np.float32), SPACING, SETTINGS, "case_flat")
    small, _ = _sphere(radius_mm=5.0)
    with caplog.at_level(logging.WARNING):
        extract_point_cloud(small, SPACING, SETTINGS, "case_small")
    assert "case_small: only" in caplog.text


def test_many_edges_are_subsampled_the_same_way_every_time():
    image, _ = _sphere()
    capped = dataclasses.replace(SETTINGS, stored_points=300)
    first = extract_point_cloud(image, SPACING, capped, "sphere")
    assert len(first) == 300
    np.testing.assert_array_equal(first, extract_point_cloud(image, SPACING, capped, "sphere"))


def _save(folder, name, image):
    geometry = ImageGeometry(list(image.shape[1:]), SPACING, [0.0] * 3, [1.0, 0, 0, 0, 1, 0, 0, 0, 1])
    properties = CaseProperties(name, geometry, [[0, n] for n in image.shape[1:]], list(image.shape[1:]),
                                list(image.shape[1:]), SPACING, None, "key")
    seg = np.zeros(image.shape[1:], np.uint8)
    save_case(folder, properties, image, seg, seg, {})


def test_clouds_are_made_once_redone_when_settings_change_and_failures_named(tmp_path):
    data, clouds = tmp_path / "data", tmp_path / "clouds"
    for i in range(2):
        _save(data, f"case_{i}", _sphere(seed=i)[0])
    planned = OccupancyPlanner(kits_like_fingerprint(), parse_dataset_json(KITS_JSON, "dataset.json"), 8).plan()
    config = dataclasses.replace(planned.configurations["3d_sconet"], point_cloud=SETTINGS)
    run_point_clouds(data, clouds, config)
    check_point_clouds(clouds, config, ["case_0", "case_1"])
    made = (clouds / "case_0.npy").stat().st_mtime_ns
    run_point_clouds(data, clouds, config)
    assert (clouds / "case_0.npy").stat().st_mtime_ns == made                    # up to date: kept
    config.point_cloud = dataclasses.replace(SETTINGS, descriptor="intensity")
    with pytest.raises(NnoccError, match="no contour clouds for this plan"):
        check_point_clouds(clouds, config, ["case_0"])
    _save(data, "case_2", np.zeros((1, 16, 32, 32), np.float32))
    with pytest.raises(NnoccError, match="case_2: only 0 contour points"):
        run_point_clouds(data, clouds, config)
    assert load_point_cloud(clouds, "case_1").shape[1] == 4                      # the others were finished
    with pytest.raises(NnoccError, match="no contour cloud for 1 case"):
        check_point_clouds(clouds, config, ["case_0", "case_1", "case_2"])
