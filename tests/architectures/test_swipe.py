"""SwIPE (seed 003): the paper's size, patch embeddings per cell, overreach, neighbour averaging, p^S."""
import pytest
import torch
from torch import nn

from nnocc.architectures import swipe
from nnocc.architectures.base import Placement
from nnocc.architectures.registry import architecture_class, build_model
from nnocc.architectures.res2net import norm_groups
from nnocc.architectures.swipe import neighbour_offsets

PATCH = [32, 32, 32]


def _model(preset="tiny", outputs=3, **changes):
    torch.manual_seed(0)
    kwargs = {**architecture_class("swipe").build_kwargs(preset, 1, outputs, [1.0, 1.0, 1.0]), **changes}
    return build_model("swipe", kwargs)


def test_the_papers_3d_sizes_count_close_to_its_parameters():
    kwargs = architecture_class("swipe").build_kwargs("base", 1, 14, [0.76, 0.76, 3.0])   # BCV: 13 organs
    assert kwargs["embedding_dim"] == 512 and kwargs["cell_voxels"] == 8
    assert kwargs["patch_decoder"] == [256] * 4 and kwargs["image_decoder"] == [256, 256, 128]
    with torch.device("meta"):
        parameters = sum(p.numel() for p in build_model("swipe", kwargs).parameters())
    assert parameters == pytest.approx(4.4e6, rel=0.05)
    assert kwargs["strides"][0] == [2, 2, 1]       # thick slices are pooled later, nnU-Net's rule


def test_one_embedding_per_cell_and_the_image_embedding_is_their_mean():
    model = _model()
    encoding = model.encode(torch.randn(2, 1, *PATCH))
    assert encoding.patch_embeddings.shape == (2, 128, 4, 4, 4)        # 32 / S = 4 cells per axis
    torch.testing.assert_close(encoding.image_embedding, encoding.patch_embeddings.mean(dim=(2, 3, 4)))


def test_training_decodes_from_the_own_cell_and_evaluation_averages_the_neighbours():
    model = _model().eval()
    encoding = model.encode(torch.randn(1, 1, *PATCH))
    point = torch.tensor([[[-0.45, -0.45, -0.45]]])                   # in cell (0, 0, 0)
    far = torch.zeros_like(encoding.cell_terms[0])
    far[:, 0] = encoding.cell_terms[0][:, 0]                           # every other cell's embedding removed
    changed = type(encoding)(**{**encoding.__dict__, "cell_terms": [far, encoding.cell_terms[1]]})
    with torch.no_grad():
        own = model.decode_from_cells(point, model.own_cells(point, encoding), encoding)
        assert torch.equal(model.own_cells(point, encoding), torch.zeros(1, 1, 3, dtype=torch.long))
        torch.testing.assert_close(own, model.decode_from_cells(point, model.own_cells(point, changed), changed))
        averaged = model.decode(point, encoding)
        assert not torch.allclose(averaged, model.decode(point, changed))      # neighbours count at inference
        neighbours = [model.decode_from_cells(point, torch.tensor([[list(o)]]), encoding)
                      for o in ([1, 0, 0], [0, 1, 0], [0, 0, 1])]              # the three that exist in the corner
        torch.testing.assert_close(averaged, (own + sum(neighbours)) / 4)


def test_overreach_picks_neighbouring_cells_reflected_at_the_border():
    model = _model(overreach=3)
    grid = torch.tensor([4, 4, 4])
    own = torch.randint(0, 4, (2, 500, 3))
    cells = model.overreach_cells(own, grid)
    assert ((cells >= 0) & (cells < 4)).all()
    steps = (cells - own).abs().sum(-1)
    assert set(steps.unique().tolist()) <= {1, 2} and (steps == 1).float().mean() > 0.7   # 2: reflected at a border
    points = torch.rand(2, 50, 3) - 0.5
    terms = model(torch.randn(2, 1, *PATCH), points, Placement.centred(2, PATCH)).terms
    assert terms["overreach"].shape == (2, 150, 3) and terms["image_decoder"].shape == (2, 50, 3)
    assert terms["embedding_l2"].dim() == 0 and terms["embedding_l2"] > 0
    assert len(neighbour_offsets(26)) == 26 and len(neighbour_offsets(6)) == 6


def test_the_ablations_drop_their_part():
    assert set(_model(overreach=0, use_image_decoder=False)(torch.randn(2, 1, *PATCH), torch.rand(2, 9, 3) - 0.5)
               .terms) == {"embedding_l2"}
    plain = _model(mea=False)
    assert plain.attention is None
    embeddings = plain.stage_embeddings(torch.randn(2, 1, *PATCH))
    assert len(embeddings) == 4 and all(e.shape == embeddings[0].shape for e in embeddings)


def test_the_position_in_the_whole_case_reaches_the_decoder():
    model = _model().eval()
    image, points = torch.randn(1, 1, *PATCH), torch.rand(1, 20, 3) - 0.5
    size = torch.tensor([PATCH], dtype=torch.float32)
    first = Placement.unmirrored(torch.zeros(1, 3), size, torch.tensor([[64.0, 64.0, 64.0]]))
    second = Placement.unmirrored(torch.tensor([[32.0, 32.0, 32.0]]), size, torch.tensor([[64.0, 64.0, 64.0]]))
    with torch.no_grad():
        features = model.point_features(torch.tensor([[[0.5, -0.5, 0.0]]]), torch.zeros(1, 1, 3, dtype=torch.long),
                                        model.encode(image, first))
        torch.testing.assert_close(features[0, 0, -3:], torch.tensor([0.0, -1.0, -0.5]))    # voxel edges 32, 0, 16
        assert not torch.allclose(model.decode(points, model.encode(image, first)),
                                  model.decode(points, model.encode(image, second)))


def test_a_training_step_normalises_as_inference_does(monkeypatch):
    """The encoder has no batch norm, and D^P's batch norm trains on the statistics its running averages
    keep: own and overreach cells in one batch, so eval mode gives a training step's answers."""
    monkeypatch.setattr(swipe, "DROPOUT", 0.0)
    model = _model(overreach=1)
    assert not any(isinstance(m, nn.BatchNorm3d) for m in model.modules())
    for m in model.modules():
        if isinstance(m, nn.BatchNorm1d):
            m.momentum = 1.0                       # the running statistics become this batch's
    image, points, placement = torch.randn(2, 1, *PATCH), torch.rand(2, 800, 3) - 0.5, Placement.centred(2, PATCH)
    with torch.no_grad():
        trained = model.train()(image, points, placement).logits
        encoding = model.eval().encode(image, placement)
        evaluated = model.decode_from_cells(points, model.own_cells(points, encoding), encoding)
    torch.testing.assert_close(evaluated, trained, atol=2e-3, rtol=2e-3)   # running variance is the unbiased one


def test_group_norm_groups_divide_the_channels_and_old_plans_keep_batch_norm():
    assert [norm_groups(c) for c in (4, 6, 14, 32, 96, 3)] == [1, 1, 2, 8, 24, 1]
    old = _model(encoder_norm="batch")
    assert any(isinstance(m, nn.BatchNorm3d) for m in old.backbone.modules())
    with pytest.raises(ValueError, match="encoder_norm"):
        _model(encoder_norm="instance")


def test_a_mirrored_member_reads_the_same_position_in_the_case():
    """Test-time mirroring flips a point's patch coordinate; the mirrored placement gives p^S back."""
    model, points = _model().eval(), torch.rand(1, 30, 3) - 0.5
    placement = Placement.unmirrored(torch.tensor([[8.0, 0.0, 4.0]]), torch.tensor([PATCH], dtype=torch.float32),
                                     torch.tensor([[64.0, 48.0, 40.0]]))
    with torch.no_grad():
        encoding = model.encode(torch.randn(1, 1, *PATCH), placement)
        mirrored = model.encode(torch.randn(1, 1, *PATCH), placement.mirrored([0, 2]))
        flipped = points * torch.tensor([-1.0, 1.0, -1.0])
        cells = torch.zeros(1, 30, 3, dtype=torch.long)
        plain_case = model.point_features(points, cells, encoding)[..., -3:]
        torch.testing.assert_close(model.point_features(flipped, cells, mirrored)[..., -3:], plain_case)
        assert not torch.allclose(model.point_features(flipped, cells, encoding)[..., -3:], plain_case)
