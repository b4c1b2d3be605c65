"""SCONet's memory-saving steps at inference give what the plain forms give."""
import torch

from nnocc.architectures.sconet import GridUNet, scatter_to_cells


def test_the_unet_that_consumes_its_input_gives_the_forward_result_and_empties_the_list():
    torch.manual_seed(0)
    unet = GridUNet(5, (4, 8, 16), 3).eval()
    grid = torch.randn(1, 5, 8, 8, 8)
    with torch.no_grad():
        expected = unet(grid)
        inputs = [grid.clone()]
        result = unet.forward_consuming(inputs)
    assert inputs == [] and torch.equal(result, expected)


def test_cell_means_match_sum_over_count_with_gradients():
    torch.manual_seed(0)
    features = torch.randn(2, 40, 3, requires_grad=True)
    cells = torch.randint(0, 7, (2, 40))
    means = scatter_to_cells(features, cells, 8, "mean")
    expected = torch.zeros(2, 8, 3)
    for b in range(2):
        for cell in range(8):
            members = features[b][cells[b] == cell]
            if len(members):
                expected[b, cell] = members.mean(0)
    torch.testing.assert_close(means, expected)
    assert means[:, 7].abs().sum() == 0                     # an empty cell is 0, not NaN
    (grad,) = torch.autograd.grad(means.square().sum(), features)
    count = torch.stack([torch.bincount(c, minlength=8)[c] for c in cells]).float()
    gathered = torch.stack([means[b, cells[b]] for b in range(2)])
    torch.testing.assert_close(grad, 2 * gathered.detach() / count[..., None])
