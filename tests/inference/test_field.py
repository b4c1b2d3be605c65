"""The volume field answers a point the same whichever tile(s) answer it.

An "identity" network whose feature grid is the patch itself and whose decoder looks the point up
in it makes the field's exact answer known: the image's trilinear interpolation at the point.  A
shifted or swapped tile origin, or a wrong blend, shows up as a difference.
"""
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from nnocc.architectures.base import Encoding, OccupancyArchitecture
from nnocc.architectures.blocks import lookup_features
from nnocc.inference.field import VolumeField
from nnocc.inference.mise import Decision
from nnocc.inference.output_grid import OutputGrid
from nnocc.inference.tiling import Tiling
from nnocc.inference.volume import VolumeSettings, fuse, largest_structures, predict_volume
from nnocc.io.images import ImageGeometry
from nnocc.preprocessing.storage import CaseProperties


@dataclass
class PatchItself(Encoding):
    patch: torch.Tensor


class IdentityNetwork(OccupancyArchitecture):
    """Through the architecture contract: the encoding is the patch, a point's logit its value."""
    configuration_name = "3d_identity"
    PRESET_ORDER = ["only"]

    def __init__(self):
        super().__init__()
        self.in_channels, self.num_outputs = 1, 1

    @classmethod
    def build_kwargs(cls, preset, in_channels, num_outputs, spacing):
        return {}

    def input_multiple(self):
        return [1, 1, 1]

    def encode(self, image, placement=None):
        return PatchItself(image)

    def decode(self, points, encoding):
        return lookup_features(encoding.patch, points)

    def pretrained_module(self):
        return self


class IdentityWithAux(IdentityNetwork):
    """The same field from an auxiliary head: the hint is the truth, read on any lattice."""

    def auxiliary_logits(self, encoding):
        return encoding.patch

    def aux_grid_shape(self, patch):
        return list(patch)


def ramp(shape):
    z, y, x = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij")
    return 0.05 * z - 0.03 * y + 0.02 * x - 0.5      # sigmoid stays far from saturation


def field_over(shape, stitching, network=None, patch=(12, 16, 14)):
    data = torch.from_numpy(ramp(shape))[None]
    tiling = Tiling.over(shape, list(patch), 0.5)
    return VolumeField(data, [network or IdentityNetwork()], tiling, regions=True, tta=False, stitching=stitching)


def unit_grid(shape) -> OutputGrid:
    geometry = ImageGeometry(list(shape), [1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0])
    properties = CaseProperties("case", geometry, [[0, n] for n in shape], list(shape), list(shape),
                                [1.0, 1.0, 1.0], None, "key")
    return OutputGrid(geometry, properties)


def test_nearest_stitching_answers_any_point_from_the_right_place():
    shape = (30, 40, 36)
    field = field_over(shape, "nearest")
    assert min(field.tiling.grid) >= 3
    points = torch.rand(5000, 3, generator=torch.Generator().manual_seed(0)) * (torch.tensor(shape) - 1)
    z, y, x = points.unbind(1)
    expected = torch.sigmoid(0.05 * z - 0.03 * y + 0.02 * x - 0.5)
    assert torch.allclose(field.query(points)[:, 0], expected, atol=1e-5)


def test_a_volume_smaller_than_the_patch_by_an_odd_count_is_answered_where_it_was_cut():
    shape = (27, 13, 30)
    field = field_over(shape, "nearest", patch=(32, 16, 30))
    index = torch.stack(torch.meshgrid(*[torch.arange(n) for n in shape], indexing="ij"), -1).reshape(-1, 3).float()
    expected = torch.sigmoid(torch.from_numpy(ramp(shape)).reshape(-1))
    torch.testing.assert_close(field.query(index)[:, 0], expected, rtol=0, atol=1e-5)


def test_every_voxel_centre_is_exact_and_each_tile_is_encoded_once():
    shape = (30, 40, 36)
    field = field_over(shape, "gaussian")
    index = torch.stack(torch.meshgrid(*[torch.arange(n) for n in shape], indexing="ij"), -1).reshape(-1, 3).float()
    for chunk in index.split(7000):                  # several queries, as MISE makes them
        answer = field.query(chunk)[:, 0]
        expected = torch.sigmoid(torch.from_numpy(ramp(shape)).reshape(-1)[
            (chunk[:, 0] * shape[1] * shape[2] + chunk[:, 1] * shape[2] + chunk[:, 2]).long()])
        assert torch.allclose(answer, expected, atol=1e-5)
    assert field.encoded_tiles == int(np.prod(field.tiling.grid))


@pytest.mark.parametrize("coarse_spacing_mm", [0.0, 4.0])
def test_nearest_prediction_is_exact_with_one_tile_held_at_a_time(coarse_spacing_mm):
    """Box by box, each ownership box is answered by its own tile, encoded once and dropped after
    the box, so a case's encodings are never held together; the labels are the dense answer."""
    shape = (30, 40, 36)
    field = field_over(shape, "nearest")
    held = []
    encode = field.encode_at

    def counting_encode(start):
        held.append(len(field.cache) + 1)
        return encode(start)
    field.encode_at = counting_encode
    settings = VolumeSettings(coarse_spacing_mm, Decision(regions=True, threshold=0.5, margin=0.0))
    result = predict_volume(field, unit_grid(shape), 1, settings)
    assert field.encoded_tiles == int(np.prod(field.tiling.grid)) and max(held) == 1
    value = torch.from_numpy(ramp(shape))
    clear = value.abs() > 1e-4              # sigmoid rounds to exactly 0.5 on the ramp's zero plane
    assert torch.equal(result.codes.bool()[clear], (value > 0)[clear])
    if coarse_spacing_mm:
        assert result.queries < 0.6 * result.dense_queries     # 80 small boxes, each with its own lattice edge


def test_a_guarded_coarser_start_gives_the_same_labels_with_fewer_decoder_queries():
    """With "changing" children; with "all", a coarser start makes every active cell larger and denser."""
    shape = (40, 48, 48)
    results = {}
    for factor in (1.0, 2.0):
        field = field_over(shape, "nearest", IdentityWithAux(), patch=shape)     # one box: no lattice edges
        settings = VolumeSettings(4.0, Decision(regions=True, threshold=0.5, margin=0.0), hint_factor=factor,
                                  children="changing")
        results[factor] = predict_volume(field, unit_grid(shape), 1, settings)
    assert torch.equal(results[2.0].codes, results[1.0].codes)
    assert results[2.0].queries < results[1.0].queries
    assert results[2.0].hint_lookups == results[1.0].hint_lookups > 0


def test_a_cache_too_small_for_blending_is_named_with_the_fix(caplog):
    shape = (30, 40, 36)
    data = torch.from_numpy(ramp(shape))[None]
    field = VolumeField(data, [IdentityNetwork()], Tiling.over(shape, [12, 16, 14], 0.5), regions=True, tta=False,
                        stitching="gaussian", cache_mb=0.002)
    with caplog.at_level("WARNING"):
        field.query(torch.tensor([[15.0, 20.0, 18.0]]))
    assert field.cache_tiles == 2
    assert "--tile_cache_mb 1" in caplog.text


def test_largest_structures_are_found_in_whole_volume_coordinates():
    mask = np.zeros((20, 30, 40), dtype=bool)
    mask[2:4, 5:9, 10:12] = True
    mask[10:18, 20:25, 30:39] = True
    mask[15, 2, 2] = True
    boxes = [(lo.tolist(), hi.tolist()) for lo, hi in largest_structures(mask, 2)]
    assert boxes == [([10, 20, 30], [18, 25, 39]), ([2, 5, 10], [4, 9, 12])]
    assert largest_structures(np.zeros((3, 3, 3), dtype=bool), 2) == []


def test_the_small_structure_pass_centres_a_tile_on_each_structure_and_keeps_the_labels_exact():
    """Two small bright structures on a dark background: one at the volume's corner (far from its
    owning tile's centre, so a tile is encoded around it), one in the middle.  The identity network
    answers every tile alike, so the second pass must leave the probabilities exact; the values vary
    from voxel to voxel, so a misplaced tile's answer is now and then the more confident one."""
    shape = (30, 40, 36)
    magnitude = 1.0 + torch.rand((1, *shape), generator=torch.Generator().manual_seed(0))
    inside = torch.zeros((1, *shape), dtype=torch.bool)
    inside[0, 0:3, 0:3, 0:3] = inside[0, 14:17, 19:22, 17:20] = True
    data = torch.where(inside, magnitude, -magnitude)
    field = VolumeField(data, [IdentityNetwork()], Tiling.over(shape, [12, 16, 14], 0.5), regions=True, tta=False,
                        stitching="nearest")
    settings = VolumeSettings(0.0, Decision(regions=True, threshold=0.5, margin=0.0), keep_probabilities=True,
                              refine_codes=[1])
    result = predict_volume(field, unit_grid(shape), 1, settings)
    assert result.refined_structures == 2
    assert field.encoded_tiles > int(np.prod(field.tiling.grid))      # the corner's centred tile
    assert torch.equal(result.codes.bool(), inside[0])
    torch.testing.assert_close(result.probabilities, torch.sigmoid(data), rtol=0, atol=1e-5)


def test_fusing_keeps_the_more_confident_answer_per_region_or_per_point():
    first, second = torch.tensor([[0.9, 0.45]]), torch.tensor([[0.6, 0.1]])
    assert torch.equal(fuse(first, second, Decision(regions=True, threshold=0.5)), torch.tensor([[0.9, 0.1]]))
    first, second = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7]]), torch.tensor([[0.1, 0.8, 0.1], [0.3, 0.3, 0.4]])
    expected = torch.tensor([[0.1, 0.8, 0.1], [0.1, 0.2, 0.7]])
    assert torch.equal(fuse(first, second, Decision(regions=False)), expected)
