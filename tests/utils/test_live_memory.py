"""Live tensor memory counted as code allocates and frees, on the meta device as on the CPU."""
import pytest
import torch

from nnocc.utils.live_memory import LiveTensorBytes

MB = 2 ** 20


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_the_peak_counts_what_lived_at_once_and_views_once(device):
    with LiveTensorBytes() as counter:
        a = torch.ones(MB, device=device)                 # 4 MB
        b = a * 2                                         # 8 MB live
        view = b[: MB // 2].reshape(-1, 2)                # no new storage
        del a                                             # 4 MB live
        c = torch.ones(2 * MB, device=device)            # 12 MB live
        assert view.shape == (MB // 4, 2)
        peak_with_c = counter.peak
        del b, view, c
    assert peak_with_c == pytest.approx(12 * MB, abs=64)
    assert counter.live == pytest.approx(0, abs=64)


def test_tensors_made_before_the_block_are_not_counted():
    weights = torch.ones(MB)
    with LiveTensorBytes() as counter:
        out = weights.add_(1)                             # in place: no new storage
    assert counter.peak == 0 and out is weights
