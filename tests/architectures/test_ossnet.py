"""OSS-Net's own pieces: the Pade activation, the cube convolution, the neighbourhoods, the sizes."""
import pytest
import torch

from nnocc.architectures import ossnet
from nnocc.architectures.ossnet import PAU, CubeConv, OssNet, _Pade, neighbourhood_offsets, pade_value, sample_cubes


def test_pau_starts_as_a_leaky_relu_and_has_exact_gradients():
    x = torch.linspace(-3, 3, 601)
    assert (PAU()(x) - torch.nn.functional.leaky_relu(x, 0.01)).abs().max() < 0.04
    torch.manual_seed(0)
    inputs = (torch.randn(40, dtype=torch.float64, requires_grad=True),
              torch.randn(6, dtype=torch.float64, requires_grad=True),
              torch.randn(4, dtype=torch.float64, requires_grad=True))
    assert torch.autograd.gradcheck(_Pade.apply, inputs)


def test_pade_value_is_the_rational_function_across_chunk_boundaries(monkeypatch):
    monkeypatch.setattr(ossnet, "PADE_CHUNK", 7)        # 2 x 3 x 5 x 4 = 120 values: 17 chunks, the last one short
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 4, dtype=torch.float64) * 3
    a, b = torch.randn(6, dtype=torch.float64), torch.randn(4, dtype=torch.float64)
    numerator = sum(a[i] * x ** i for i in range(6))
    r = sum(b[j] * x ** (j + 1) for j in range(4))
    torch.testing.assert_close(pade_value(x, a, b), numerator / (1 + r.abs()), rtol=1e-12, atol=1e-12)
    assert x.shape == pade_value(x, a, b).shape


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
