import pytest
import torch

from nnocc.architectures.blocks import lookup_features
from nnocc.architectures.convocc import build_kwargs, plan_strides, total_stride
from nnocc.architectures.registry import build_model
from nnocc.coordinates import cell_centres, index_to_patch, patch_to_index
from nnocc.utils.errors import NnoccError


@pytest.mark.parametrize("grid_shape", [(4, 6, 8), (5, 3, 7), (8, 8, 8)])
def test_feature_grid_storing_its_own_coordinates_returns_the_query(grid_shape):
    """No axis swapped, no half-voxel shift: the grid's channels hold each cell centre's coordinates."""
    centres = torch.from_numpy(cell_centres(grid_shape)).float()             # (g0, g1, g2, 3)
    grid = centres.permute(3, 0, 1, 2)[None]                                   # (1, 3, g0, g1, g2)
    inner = [(0.5 / g, 0.5 - 0.5 / g) for g in grid_shape]                    # between the outer cell centres
    queries = torch.stack([torch.empty(500).uniform_(-hi, hi) for lo, hi in inner], dim=1)[None]
    np_out = lookup_features(grid, queries)[0]
    torch.testing.assert_close(np_out, queries[0], atol=1e-5, rtol=0)


def test_index_patch_round_trip_and_edges():
    start, size = [3.0, -2.0, 10.0], [16, 32, 8]
    idx = torch.tensor([[3.0, -2.0, 10.0], [18.0, 29.0, 17.0]])
    p = index_to_patch(idx, start, size)
    torch.testing.assert_close(p[0], torch.tensor([0.5 / 16 - 0.5, 0.5 / 32 - 0.5, 0.5 / 8 - 0.5]))
    torch.testing.assert_close(patch_to_index(p, start, size), idx)


def test_strides_respect_anisotropy():
    assert plan_strides([1.0, 1.0, 1.0]) == [[2, 2, 2], [1, 1, 1], [2, 2, 2], [2, 2, 2]]
    strides = plan_strides([5.0, 0.8, 0.8])
    assert strides[0] == [1, 2, 2] and total_stride(strides)[0] < total_stride(strides)[1]


def _model(num_outputs=4, aux=True):
    torch.manual_seed(0)
    return build_model("convocc", build_kwargs("tiny", 2, num_outputs, [2.0, 1.0, 1.0], aux_head=aux))


def test_shapes_of_outputs_and_aux_head():
    model = _model()
    logits, aux, _ = model(torch.randn(2, 2, 16, 32, 32), torch.rand(2, 100, 3) - 0.5)
    assert logits.shape == (2, 100, 4)
    stride = model.grid_stride
    assert aux.shape == (2, 4, 16 // stride[0], 32 // stride[1], 32 // stride[2])
    assert _model(aux=False)(torch.randn(1, 2, 16, 32, 32), torch.rand(1, 5, 3) - 0.5)[1] is None


def test_registry_errors_are_clear():
    with pytest.raises(NnoccError, match="unknown architecture"):
        build_model("nope", {})
    with pytest.raises(NnoccError, match="plan's arguments do not fit"):
        build_model("convocc", {"in_channels": 1})


def _textbook_fusion(fusion, inputs):
    w = torch.relu(fusion.weights)
    w = w / (w.sum() + 1e-4)
    return fusion.conv(sum(wi * x for wi, x in zip(w, inputs)))


def test_fusion_frees_what_it_has_summed_and_matches_the_textbook_sum():
    """The BiFPN lets go of each input once summed (a lower inference peak); the sum, the result and
    the gradients must be those of the plain weighted sum."""
    from nnocc.architectures.encoders import _WeightedFusion

    torch.manual_seed(0)
    fusion = _WeightedFusion(3, 4)
    with torch.no_grad():
        fusion.weights.copy_(torch.tensor([0.5, 2.0, -1.0]))     # one weight clipped to 0 by the relu
    inputs = [torch.randn(1, 4, 5, 6, 7, requires_grad=True) for _ in range(3)]
    expected = _textbook_fusion(fusion, inputs)
    expected_grads = torch.autograd.grad(expected.square().sum(), [*inputs, fusion.weights])
    consumed = list(inputs)
    result = fusion(consumed)
    assert consumed == [] and torch.equal(result, expected)
    grads = torch.autograd.grad(result.square().sum(), [*inputs, fusion.weights])
    for got, want in zip(grads, expected_grads):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_bifpn_empties_the_encoder_outputs_it_was_given():
    model = _model().eval()
    features = model.encoder(torch.randn(1, 2, 16, 32, 32))
    with torch.no_grad():
        grid = model.fusion(features)
    assert features == [] and grid.shape[1] == model.fusion.lateral[0].out_channels


def test_class_heads_match_one_mlp_per_output():
    """The heads run as one matmul with the bias and ReLU in place (a lower inference peak); outputs
    and gradients must be those of K separate Linear -> ReLU -> Linear heads."""
    from nnocc.architectures.blocks import ClassHeads

    torch.manual_seed(0)
    heads = ClassHeads(6, 5, 3)
    with torch.no_grad():
        heads.b1.normal_()
        heads.b2.normal_()
    h = torch.randn(50, 6, requires_grad=True)
    per_head = torch.stack([torch.relu(h @ heads.w1[k] + heads.b1[k]) @ heads.w2[k] + heads.b2[k]
                            for k in range(3)], dim=1)
    result = heads(h)
    torch.testing.assert_close(result, per_head)
    parameters = [h, heads.w1, heads.b1, heads.w2, heads.b2]
    for got, want in zip(torch.autograd.grad(result.square().sum(), parameters),
                         torch.autograd.grad(per_head.square().sum(), parameters)):
        torch.testing.assert_close(got, want)
