"""oneDNN for batch-of-one CPU convolutions: same numbers, no column buffer, gradients untouched."""
import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from nnocc.utils.convolutions import OneDnnConvolutions, onednn_convolutions

pytestmark = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="torch without oneDNN")


def _ops(fn) -> set:
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return {e.key for e in prof.key_averages()}


def test_batch_of_one_goes_to_onednn_with_the_same_result():
    torch.manual_seed(0)
    # 1 x 16 x 32 x 40 is exactly where torch's own choice falls to slow_conv3d
    conv = torch.nn.Conv3d(16, 8, 3, stride=(1, 2, 2), padding=1, dilation=1)
    x = torch.randn(1, 16, 32, 40, 24)
    with torch.no_grad():
        assert "aten::slow_conv3d" in _ops(lambda: conv(x))
        reference = conv(x)
        with onednn_convolutions(torch.device("cpu")):
            ops = _ops(lambda: conv(x))
            result = conv(x)
    assert "aten::mkldnn_convolution" in ops and "aten::slow_conv3d" not in ops
    assert result.shape == reference.shape
    torch.testing.assert_close(result, reference, atol=1e-5, rtol=1e-5)


def test_keyword_arguments_and_no_bias():
    x, w = torch.randn(1, 4, 6, 7, 8), torch.randn(2, 4, 3, 3, 3)
    reference = torch.nn.functional.conv3d(x, w, padding=(1, 0, 1), stride=2)
    with OneDnnConvolutions():
        result = torch.nn.functional.conv3d(input=x, weight=w, padding=(1, 0, 1), stride=2)
    torch.testing.assert_close(result, reference, atol=1e-5, rtol=1e-5)


def test_training_and_string_padding_run_as_called():
    conv = torch.nn.Conv3d(2, 2, 3, padding="same")
    x = torch.randn(1, 2, 5, 5, 5, requires_grad=True)
    with OneDnnConvolutions():
        ops = _ops(lambda: conv(x))
        y = torch.nn.functional.conv3d(x, conv.weight, conv.bias, padding=1)
        y.sum().backward()
    assert "aten::mkldnn_convolution" not in ops
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_no_mode_off_the_cpu():
    assert not isinstance(onednn_convolutions(torch.device("meta")), OneDnnConvolutions)
