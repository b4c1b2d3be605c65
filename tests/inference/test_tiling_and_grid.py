import numpy as np
import pytest

from nnocc.inference.output_grid import output_geometry
from nnocc.inference.tiling import Tiling, ownership_runs, tile_starts
from nnocc.io.images import ImageGeometry


def test_tiles_cover_the_volume_with_bounded_steps():
    starts = tile_starts(100, 32, 0.5)
    assert starts[0] == 0 and starts[-1] == 68
    assert max(np.diff(starts)) <= 16
    assert tile_starts(20, 32, 0.5) == [-6.0]  # smaller than a patch: one centred, padded tile
    assert tile_starts(27, 32, 0.5) == [-3.0]  # on whole voxels, as the crop is cut


def test_nearest_tile_ownership_is_contiguous():
    tiling = Tiling.over([100, 40, 40], [32, 32, 32], 0.5)
    owner = tiling.nearest_tile(0, np.arange(100))
    runs = ownership_runs(owner)
    assert [r[0] for r in runs] == list(range(len(tiling.starts[0])))
    assert runs[0][1] == 0 and runs[-1][2] == 100
    for tile, first, end in runs:  # every owned position is in the central part of its tile
        start = tiling.starts[0][tile]
        assert start <= first and end <= start + 32


@pytest.mark.parametrize("spacing", [[1.5], [1.0, 0.4, 0.4]])
def test_output_spacing_keeps_extent_origin_corner_and_direction(spacing):
    angle = 0.3
    direction = [np.cos(angle), -np.sin(angle), 0, np.sin(angle), np.cos(angle), 0, 0, 0, 1]
    geometry = ImageGeometry([20, 30, 40], [3.0, 0.8, 0.8], [10.0, -5.0, 2.0], direction)
    out = output_geometry(geometry, spacing)
    extent_in = np.array(geometry.shape) * geometry.spacing
    np.testing.assert_allclose(np.array(out.shape) * out.spacing, extent_in, rtol=1e-9)
    corner_in = geometry.index_to_physical(np.array([[-0.5, -0.5, -0.5]]))
    corner_out = out.index_to_physical(np.array([[-0.5, -0.5, -0.5]]))
    np.testing.assert_allclose(corner_out, corner_in, atol=1e-9)
    assert out.direction == geometry.direction
    assert output_geometry(geometry, None) is geometry
