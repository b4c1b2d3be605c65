"""MISE against analytic occupancy fields: agreement with dense evaluation, thin and small
structures kept, and queries a small fraction of dense at a fine output spacing."""
import pytest
import torch

from nnocc.inference.mise import CHILDREN, Decision, Mise, coarse_steps_for, default_points_per_batch, lattice_size

SHAPE = (96, 128, 128)
WIDTH = 0.8  # voxels over which the analytic occupancy goes from 0.27 to 0.73, like a network's
LESION_RADIUS = 6.2
# the planner's rule: the coarse spacing is at most the smallest structure's diameter
LESION_STEPS = coarse_steps_for([1.0, 1.0, 1.0], 2 * LESION_RADIUS)


def soft(signed_distance: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(signed_distance / WIDTH)


def sphere_sd(p, centre, radius):
    return radius - torch.linalg.norm(p - torch.tensor(centre, dtype=p.dtype), dim=-1)


def tube_sd(p, start, end, radius):
    a, b = torch.tensor(start, dtype=p.dtype), torch.tensor(end, dtype=p.dtype)
    t = ((p - a) @ (b - a) / ((b - a) @ (b - a))).clamp(0, 1)
    return radius - torch.linalg.norm(p - (a + t[:, None] * (b - a)), dim=-1)


def scene(p: torch.Tensor) -> torch.Tensor:
    """Three classes: background, 'organ' = large blob with a thin attached tube, 'lesion' = small sphere."""
    organ = torch.maximum(sphere_sd(p, (48, 50, 50), 24.0), tube_sd(p, (48, 50, 74), (48, 50, 120), 1.2))
    lesion = sphere_sd(p, (30, 100, 30), LESION_RADIUS)
    fg = torch.stack([soft(organ), soft(lesion)], dim=1)
    bg = (1 - fg.sum(1, keepdim=True)).clamp(min=0)
    probs = torch.cat([bg, fg], dim=1)
    return probs / probs.sum(1, keepdim=True)


def nested_regions(p: torch.Tensor) -> torch.Tensor:
    outer = soft(sphere_sd(p, (48, 64, 64), 30.0))
    inner = soft(sphere_sd(p, (48, 70, 64), 12.0))
    return torch.stack([outer, torch.minimum(inner, outer)], dim=1)


def dense(fn, shape):
    grid = torch.stack(torch.meshgrid(*[torch.arange(n, dtype=torch.float32) for n in shape], indexing="ij"), -1)
    return fn(grid.reshape(-1, 3)).T.reshape(-1, *shape)


@pytest.mark.parametrize("children", CHILDREN)
@pytest.mark.parametrize("steps", [tuple(LESION_STEPS), (2, 4, 4)])
def test_multiclass_scene_matches_dense_and_keeps_thin_and_small(steps, children):
    decision = Decision(regions=False, margin=0.4)
    reference, _ = decision.codes(dense(scene, SHAPE))
    result = Mise(scene, 3, decision, children=children).run(SHAPE, steps)
    agreement = (result.codes == reference).float().mean().item()
    assert agreement >= 0.9999, agreement
    tube = torch.zeros(SHAPE, dtype=torch.bool)
    tube[:, :, 80:] = True
    tube &= reference == 1
    assert tube.sum() > 100
    assert (result.codes[tube] == 1).float().mean() >= 0.99
    lesion = reference == 2
    assert (result.codes[lesion] == 2).float().mean() >= 0.99
    assert result.queries <= 0.15 * result.dense_queries, result.queries / result.dense_queries


@pytest.mark.parametrize("children", CHILDREN)
def test_nested_regions_match_dense(children):
    decision = Decision(regions=True, threshold=0.5, margin=0.4)
    reference, _ = decision.codes(dense(nested_regions, SHAPE))
    result = Mise(nested_regions, 2, decision, children=children).run(SHAPE, (8, 8, 8))
    assert (result.codes == reference).float().mean().item() >= 0.9999
    assert set(torch.unique(result.codes).tolist()) == {0, 1, 3}  # inner region only inside the outer
    assert result.queries <= 0.15 * result.dense_queries


def test_the_tube_is_thinner_than_the_coarse_lattice():
    """Sanity check of the scene: the coarse lattice alone misses the tube, MISE must trace it."""
    assert LESION_STEPS == [8, 8, 8]
    decision = Decision(regions=False, margin=0.4)
    coarse_codes, _ = decision.codes(dense(scene, SHAPE)[:, ::8, ::8, ::8])
    assert (coarse_codes[:, :, 10:] == 1).sum() == 0


def test_a_hint_finds_a_structure_hidden_between_coarse_points():
    """Worst case: a sphere centred in a coarse cell, all eight corners outside it and outside the
    margin.  A blurred second opinion (as the auxiliary voxel head gives) marks the cell."""
    centre = (36.0, 44.0, 52.0)                 # a cell centre of the step-8 lattice
    sharp = lambda p: _two_class(soft(sphere_sd(p, centre, LESION_RADIUS)))
    decision = Decision(regions=False, margin=0.4)
    plain = Mise(sharp, 2, decision).run(SHAPE, (8, 8, 8))
    assert (plain.codes == 1).sum() == 0        # missed without help: the reason for the hint
    lattice = [lattice_size(n, 8) for n in SHAPE]
    blurred = lambda p: _two_class(torch.sigmoid(sphere_sd(p, centre, LESION_RADIUS) / 4.0))
    hint = dense(lambda p: blurred(p * 8), lattice)
    helped = Mise(sharp, 2, decision).run(SHAPE, (8, 8, 8), hint=hint)
    reference, _ = decision.codes(dense(sharp, SHAPE))
    assert (helped.codes[reference == 1] == 1).float().mean() >= 0.99


def _two_class(foreground: torch.Tensor) -> torch.Tensor:
    return torch.stack([1 - foreground, foreground], dim=1)


def test_probabilities_and_seeded_start():
    decision = Decision(regions=False, margin=0.4)
    reference = dense(scene, SHAPE)
    result = Mise(scene, 3, decision).run(SHAPE, (4, 4, 4), keep_probabilities=True)
    assert result.probabilities.shape == (3, *SHAPE)
    codes, _ = decision.codes(reference)
    known = result.codes == codes
    assert known.float().mean() >= 0.9999
    # seeding level 0 with a good guess (here: the truth on the coarse lattice) skips its evaluation
    lattice = [lattice_size(n, 4) for n in SHAPE]
    seed = dense(lambda p: scene(p * 4), lattice)
    seeded = Mise(scene, 3, decision).run(SHAPE, (4, 4, 4), initial=seed)
    assert (seeded.codes == codes).float().mean() >= 0.9999
    assert seeded.queries < result.queries


def test_coarse_steps_for_anisotropic_output():
    assert coarse_steps_for([3.0, 0.8, 0.8], 6.0) == [2, 4, 4]
    assert coarse_steps_for([1.0, 1.0, 1.0], 0.5) == [1, 1, 1]


def test_single_voxel_thick_grid_and_no_structure():
    decision = Decision(regions=False)
    empty = lambda p: torch.tensor([[1.0, 0.0]]).repeat(len(p), 1)
    result = Mise(empty, 2, decision).run((1, 40, 40), (1, 8, 8))
    assert (result.codes == 0).all() and result.queries < 40 * 40 * 0.1


def test_a_finer_hint_guards_a_coarser_lattice():
    """MISE starts on a lattice twice as coarse as the hint's: the hint's cells mark the coarse cells
    that hold them, the structure is still found, and the decoder is asked less than on the hint's
    own lattice."""
    centre = (36.0, 44.0, 52.0)
    sharp = lambda p: _two_class(soft(sphere_sd(p, centre, LESION_RADIUS)))
    decision = Decision(regions=False, margin=0.4)
    assert (Mise(sharp, 2, decision).run(SHAPE, (16, 16, 16)).codes == 1).sum() == 0
    blurred = lambda p: _two_class(torch.sigmoid(sphere_sd(p, centre, LESION_RADIUS) / 4.0))
    hint = dense(lambda p: blurred(p * 8), [lattice_size(n, 8) for n in SHAPE])
    guarded = Mise(sharp, 2, decision).run(SHAPE, (16, 16, 16), hint=hint, hint_steps=(8, 8, 8))
    on_hint_lattice = Mise(sharp, 2, decision).run(SHAPE, (8, 8, 8), hint=hint)
    reference, _ = decision.codes(dense(sharp, SHAPE))
    assert (guarded.codes == reference).float().mean() >= 0.9999
    assert (guarded.codes[reference == 1] == 1).float().mean() >= 0.99
    assert guarded.queries < on_hint_lattice.queries


def test_the_guard_marks_the_coarse_cell_that_holds_a_hint_cell():
    from types import SimpleNamespace

    from nnocc.inference.mise import Guard

    hint = torch.zeros(2, 11, 12, 7)
    hint[0] = 1.0
    hint[:, 5, 9, 3] = torch.tensor([0.0, 1.0])     # one foreground point: the 8 hint cells around it disagree
    guard = Guard(hint, (1, 2, 4), (2, 8, 8), Decision(regions=False, margin=0.1))
    # levels [2, 8, 8] -> [1, 4, 4] -> [1, 2, 2]: the middle one is the finest still as coarse as the hint
    level = SimpleNamespace(steps=[1, 4, 4], cell_sizes=[10, 6, 6], code=torch.zeros(1))
    held = [[4, 4, 2], [4, 4, 3], [5, 4, 2], [5, 4, 3]]         # hint cells (4-5, 8-9, 2-3), y halved
    assert guard.cells(level).tolist() == held
    level.steps, level.cell_sizes = [2, 8, 8], [5, 3, 3]         # coarser levels are left alone
    assert len(guard.cells(level)) == 0
    level.cell_sizes, level.steps = [10, 11, 6], [1, 2, 4]       # the hint's own lattice: its own cells
    assert len(guard.cells(level)) == 8
    level.steps = [1, 1, 2]                                      # finer than the hint: the decoder's job
    assert len(guard.cells(level)) == 0
    with pytest.raises(ValueError, match="divide"):
        Guard(hint, (1, 2, 4), (2, 4, 2), Decision(regions=False))


def test_refining_only_the_changing_children_asks_fewer_points():
    decision = Decision(regions=False, margin=0.4)
    queries = {c: Mise(scene, 3, decision, children=c).run(SHAPE, (8, 8, 8)).queries for c in CHILDREN}
    assert queries["changing"] < 0.7 * queries["all"], queries
    with pytest.raises(ValueError, match="children"):
        Mise(scene, 3, decision, children="some")


def test_points_per_batch_bounds_every_call_and_follows_the_device():
    """The decoder is never asked more points at once than the batch, the batch does not change the
    result, and without one the device decides (smaller on a CPU, where it is faster and lighter)."""
    decision = Decision(regions=False, margin=0.4)
    sizes = []

    def recording(p):
        sizes.append(len(p))
        return scene(p)

    small = Mise(recording, 3, decision, max_points_per_batch=1000).run(SHAPE, (8, 8, 8))
    assert max(sizes) == 1000 and sum(sizes) == small.queries
    assert torch.equal(small.codes, Mise(scene, 3, decision).run(SHAPE, (8, 8, 8)).codes)
    assert Mise(scene, 3, decision).batch == default_points_per_batch(torch.device("cpu")) == 16384
    assert default_points_per_batch(torch.device("cuda")) > default_points_per_batch(torch.device("cpu"))
