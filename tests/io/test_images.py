import numpy as np
import pytest

from nnocc.io.images import ImageGeometry, read_channels, read_image, write_image, write_segmentation
from nnocc.utils.errors import NnoccError


def oblique_geometry(shape=(5, 6, 7)) -> ImageGeometry:
    angle = np.deg2rad(20)
    rot = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    tilt = np.array([[1, 0, 0], [0, np.cos(0.3), -np.sin(0.3)], [0, np.sin(0.3), np.cos(0.3)]])
    return ImageGeometry(shape=list(shape), spacing=[3.3, 0.7, 0.9], origin=[-12.5, 40.25, 7.0],
                         direction=(rot @ tilt).ravel().tolist())


@pytest.mark.parametrize("ending", [".nii.gz", ".nii", ".nrrd", ".mha"])
def test_round_trip_keeps_values_and_oblique_geometry(tmp_path, ending):
    geometry = oblique_geometry()
    array = np.arange(np.prod(geometry.shape), dtype=np.float32).reshape(geometry.shape)
    path = tmp_path / f"image{ending}"
    write_image(array, geometry, path)
    back, back_geometry = read_image(path)
    np.testing.assert_array_equal(back, array)
    assert back_geometry.differences(geometry, tolerance=1e-5) == []
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary file left behind"


def test_segmentation_written_as_uint8(tmp_path):
    geometry = oblique_geometry()
    labels = np.zeros(geometry.shape, dtype=np.int64)
    labels[1:3, 2:4, 3:5] = 3
    write_segmentation(labels, geometry, tmp_path / "seg.nii.gz")
    back, _ = read_image(tmp_path / "seg.nii.gz")
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, labels)


def test_index_to_physical_round_trip():
    geometry = oblique_geometry()
    index = np.array([[0.0, 0.0, 0.0], [4.0, 5.0, 6.0], [1.5, 2.25, 0.5]])
    np.testing.assert_allclose(geometry.physical_to_index(geometry.index_to_physical(index)), index, atol=1e-9)
    np.testing.assert_allclose(geometry.index_to_physical(index[:1])[0], geometry.origin)


def test_unreadable_file_gives_one_line_error_naming_it(tmp_path):
    path = tmp_path / "broken.nii.gz"
    path.write_bytes(b"this is not an image")
    with pytest.raises(NnoccError) as info:
        read_image(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_wrong_dimensionality_and_unsupported_type(tmp_path):
    import SimpleITK as sitk
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((4, 5), np.float32)), str(tmp_path / "flat.nii.gz"))
    with pytest.raises(NnoccError, match="expected a 3D image, got 2D"):
        read_image(tmp_path / "flat.nii.gz")
    with pytest.raises(NnoccError, match="unsupported file type"):
        read_image(tmp_path / "image.png")


def test_channels_with_different_geometry_are_refused(tmp_path):
    geometry = oblique_geometry()
    write_image(np.zeros(geometry.shape, np.float32), geometry, tmp_path / "c0.nii.gz")
    moved = ImageGeometry(geometry.shape, geometry.spacing, [0.0, 0.0, 0.0], geometry.direction)
    write_image(np.zeros(geometry.shape, np.float32), moved, tmp_path / "c1.nii.gz")
    with pytest.raises(NnoccError, match="c1.nii.gz: differs .* origin"):
        read_channels([tmp_path / "c0.nii.gz", tmp_path / "c1.nii.gz"])
