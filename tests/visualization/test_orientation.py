"""Views follow the direction matrix: a case stored as KiTS23 stores it looks as a standard one does."""
import numpy as np
import pytest

from nnocc.io.images import ImageGeometry
from nnocc.visualization.orientation import VIEWS, axis_map, view

STANDARD = ImageGeometry([8, 10, 12], [3.0, 0.8, 0.7], [0.0, 0.0, 0.0], [1.0, 0, 0, 0, 1, 0, 0, 0, 1])


def _patient():
    """A volume in standard LPS order (array z: feet->head, y: front->back, x: right->left) with a
    different value in every voxel, so any wrong cut or flip shows."""
    return np.arange(8 * 10 * 12, dtype=np.float32).reshape(8, 10, 12)


def _kits_like(volume):
    """The same patient as KiTS23 stores it: the first voxel axis (last array axis) runs head to
    feet, and the in-plane axes point to the patient's right and front (RAS-flipped)."""
    stored = volume[::-1, ::-1, ::-1].transpose(2, 1, 0)           # array (x, y, z) reversed
    # columns are the i, j, k index axes in LPS: i -> -z (head to feet), j -> -y (towards anterior),
    # k -> -x (towards the patient's right)
    direction = np.array([[0, 0, -1], [0, -1, 0], [-1, 0, 0]], dtype=float)
    geometry = ImageGeometry(list(stored.shape), [0.7, 0.8, 3.0], [0.0, 0.0, 0.0], direction.ravel().tolist())
    return stored, geometry


def test_the_kits_layout_is_recognised():
    stored, geometry = _kits_like(_patient())
    axes = axis_map(geometry)
    assert axes.array_axis == (0, 1, 2) and axes.sign == (-1, -1, -1)   # LR, AP, SI: all three reversed


@pytest.mark.parametrize("name", VIEWS)
def test_views_of_a_kits_case_match_the_standard_case(name):
    volume = _patient()
    stored, geometry = _kits_like(volume)
    standard, kits = view(name, STANDARD), view(name, geometry)
    position = (3, 4, 5)                                             # in the standard array
    kits_position = (12 - 1 - 5, 10 - 1 - 4, 8 - 1 - 3)            # the same voxel in the stored array
    assert stored[kits_position] == volume[position]
    np.testing.assert_array_equal(kits.cut(stored, kits_position), standard.cut(volume, position))
    assert kits.aspect(geometry.spacing) == standard.aspect(STANDARD.spacing)


def test_radiological_layout_of_the_standard_case():
    volume = _patient()
    axial = view("axial", STANDARD).cut(volume, (3, 4, 5))
    assert axial.shape == (10, 12) and axial[0, 0] == volume[3, 0, 0]          # anterior up, right on the left
    coronal = view("coronal", STANDARD).cut(volume, (3, 4, 5))
    assert coronal.shape == (8, 12) and coronal[0, 0] == volume[7, 4, 0]      # head up
    sagittal = view("sagittal", STANDARD).cut(volume, (3, 4, 5))
    assert sagittal.shape == (8, 10) and sagittal[0, 0] == volume[7, 0, 5]    # head up, anterior on the left
