"""OSS-Net's own pieces: the Pade activation, the cube convolution, the neighbourhoods, the sizes."""
import pytest
import torch

from nnocc.architectures import pade
from nnocc.architectures.ossnet import CubeConv, OssNet, neighbourhood_offsets, sample_cubes
from nnocc.architectures.pade import PAU, _Pade, pade_value


def test_pau_starts_as_a_leaky_relu_and_has_exact_gradients():
    x = torch.linspace(-3, 3, 601)
    assert (PAU()(x) - torch.nn.functional.leaky_relu(x, 0.01)).abs().max() < 0.04
    torch.manual_seed(0)
    inputs = (torch.randn(40, dtype=torch.float64, requires_grad=True),
              torch.randn(6, dtype=torch.float64, requires_grad=True),
              torch.randn(4, dtype=torch.float64, requires_grad=True))
    assert torch.autograd.gradcheck(_Pade.apply, inputs)


def test_pade_value_is_the_rational_function_across_chunk_boundaries(monkeypatch):
    monkeypatch.setattr(pade, "PADE_CHUNK", 7)        # 2 x 3 x 5 x 4 = 120 values: 17 chunks, the last one short
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 4, dtype=torch.float64) * 3
    a, b = torch.randn(6, dtype=torch.float64), torch.randn(4, dtype=torch.float64)
    numerator = sum(a[i] * x ** i for i in range(6))
    r = sum(b[j] * x ** (j + 1) for j in range(4))
    torch.testing.assert_close(pade_value(x, a, b), numerator / (1 + r.abs()), rtol=1e-12, atol=1e-12)
    assert x.shape == pade_value(x, a, b).shape


def test_pade_gradients_are_autograds_across_chunk_boundaries(monkeypatch):
    monkeypatch.setattr(pade, "PADE_BACKWARD_CHUNK", 7)
    torch.manual_seed(0)
    x = (torch.randn(2, 3, 5, 4, dtype=torch.float64) * 3).requires_grad_()
    a = torch.randn(6, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(2, 3, 5, 4, dtype=torch.float64)
    y = sum(a[i] * x ** i for i in range(6)) / (1 + sum(b[j] * x ** (j + 1) for j in range(4)).abs())
    expected = torch.autograd.grad(y, (x, a, b), upstream)
    got = torch.autograd.grad(_Pade.apply(x, a, b), (x, a, b), upstream)
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e, rtol=1e-10, atol=1e-10)


def test_cube_convolution_equals_a_same_padded_conv3d():
    torch.manual_seed(0)
    conv = CubeConv(2, 3).double()
    cubes = torch.randn(4, 2, 7, 7, 7, dtype=torch.float64)
    expected = torch.nn.functional.conv3d(cubes, conv.weight, conv.bias, padding=3).flatten(1)
    torch.testing.assert_close(conv(cubes.flatten(1)), expected, rtol=0, atol=1e-12)


def test_neighbourhoods_are_centred_on_the_point_in_array_order():
    volume = torch.arange(16 * 20 * 24, dtype=torch.float32).reshape(1, 1, 16, 20, 24)
    voxel = torch.tensor([5.0, 9.0, 13.0])
    point = ((voxel + 0.5) / torch.tensor([16.0, 20.0, 24.0]) - 0.5)[None, None]     # its centre in patch coordinates
    cube = sample_cubes(volume, point, 1.0, [16, 20, 24])[0, 0]
    offsets = neighbourhood_offsets().long()
    expected = volume[0, 0][tuple((voxel.long() + offsets).T)].reshape(7, 7, 7)
    torch.testing.assert_close(cube, expected)


def test_paper_sized_model_and_thick_slices():
    base = OssNet(**OssNet.build_kwargs("base", 1, 1, [1.0, 1.0, 1.0]))
    assert 10.0e6 < sum(p.numel() for p in base.parameters()) < 11.5e6          # the paper's LiTS model: ~10.9 M
    thick = OssNet.build_kwargs("tiny", 1, 2, [5.0, 0.8, 0.8])
    assert thick["global_downsampling"] == [1, 2, 2] and thick["strides"][0] == [1, 2, 2]
    with pytest.raises(ValueError, match="unknown OSS-Net preset"):
        OssNet.build_kwargs("huge", 1, 2, [1.0, 1.0, 1.0])


def _decoder_in_mode(model: OssNet, training: bool) -> OssNet:
    """The encoder in eval mode (its batch norm is not at issue here), the decoder in the given mode."""
    model.eval()
    model.blocks.train(training)
    return model


def test_reference_normalisation_gives_a_training_steps_answers_in_eval_mode():
    """The decoder normalises every point by statistics of the case's reference lattice, taken at
    encoding: a training step's logits are inference's, and a point's logit is its own however the
    other query points lie (batch norm over one case's query points failed both)."""
    torch.manual_seed(0)
    model = OssNet(**OssNet.build_kwargs("tiny", 1, 3, [3.0, 2.0, 2.0]))
    assert model.decoder_norm == "reference" and not any(isinstance(m, torch.nn.BatchNorm1d) for m in model.blocks.modules())
    image = torch.randn(2, 1, 32, 32, 32)
    near_one_corner = torch.rand(2, 300, 3) * 0.2 - 0.5            # query points bunched as boundary sampling bunches them
    with torch.no_grad():
        trained = _decoder_in_mode(model, True).decode(near_one_corner, model.encode(image))
        encoding = _decoder_in_mode(model, False).encode(image)
        evaluated = model.decode(near_one_corner, encoding)
        alone = model.decode(near_one_corner[:, :7], encoding)
    torch.testing.assert_close(evaluated, trained)
    torch.testing.assert_close(alone, evaluated[:, :7])
    first_layer = encoding.reference_mean[:, 0]                      # the lattice's statistics, one row per case
    assert encoding.reference_mean.shape == (2, 10, 128) and not torch.allclose(first_layer[0], first_layer[1])


def test_reference_statistics_are_learnt_through_and_old_plans_keep_batch_norm():
    model = OssNet(**OssNet.build_kwargs("tiny", 1, 3, [3.0, 2.0, 2.0]))
    encoding = model.train().encode(torch.randn(2, 1, 32, 32, 32))
    assert encoding.reference_mean.requires_grad and encoding.reference_variance.requires_grad     # as batch norm's
    model.decode(torch.rand(2, 50, 3) - 0.5, encoding).sum().backward()
    assert all(p.grad is not None for p in model.blocks.parameters())
    old_plan = {k: v for k, v in OssNet.build_kwargs("tiny", 1, 3, [3.0, 2.0, 2.0]).items() if k != "decoder_norm"}
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in OssNet(**old_plan).blocks.modules()) == 10
    with pytest.raises(ValueError, match="decoder_norm"):
        OssNet(**old_plan, decoder_norm="layer")
