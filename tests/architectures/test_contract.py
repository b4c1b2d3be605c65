"""The architecture contract, checked for every registered architecture: registering one is enough
for it to be tested here."""
import dataclasses

import numpy as np
import pytest
import torch

from nnocc.architectures.base import Encoding, OccupancyArchitecture, Placement
from nnocc.architectures.registry import architecture_class, build_model, registered
from nnocc.cli.environment import dataset_paths
from nnocc.inference.mise import default_points_per_batch
from nnocc.inference.predictor import InferenceSettings, Predictor
from nnocc.inference.query_batch import POINTS_GRANULE, points_per_batch
from nnocc.io.dataset_json import load_dataset_json
from nnocc.planning.memory_model import training_footprint
from nnocc.planning.plans import ArchitecturePlan, Plans, PointCloudPlan, TrainingPlan
from nnocc.training.losses import LossWeights, OccupancyLoss
from nnocc.training.optimizers import make_optimizer
from nnocc.training.steps import train_step
from nnocc.utils.checkpoints import load_checkpoint, save_checkpoint

SPACING = [2.0, 1.0, 1.0]
OUTPUTS = 3


def _small(name: str, seed: int = 0):
    """The smallest preset, and a small patch its stride allows (two multiples, at least 16 voxels a side)."""
    cls = architecture_class(name)
    kwargs = cls.build_kwargs(cls.PRESET_ORDER[0], 1, OUTPUTS, SPACING)
    torch.manual_seed(seed)
    model = build_model(name, kwargs)
    patch = [m * max(2, -(-16 // m)) for m in model.input_multiple()]
    return model, kwargs, patch


def _encoder_input(model, batch: int, patch):
    """Random values shaped as what the encoder reads: an image patch, or a point cloud (patch
    coordinates within the patch, then features)."""
    shape = model.example_inputs(batch, patch, 1, torch.device("meta"))[0].shape
    if model.cloud_size() is None:
        return torch.randn(shape)
    cloud = torch.randn(shape)
    cloud[..., :3] = torch.rand(*shape[:-1], 3) - 0.5
    return cloud


def _encode(model, patch):
    return model.encode(_encoder_input(model, 1, patch), Placement.centred(1, patch))


@pytest.fixture(params=registered())
def architecture(request):
    return request.param


def test_declares_the_contract(architecture):
    model, _, patch = _small(architecture)
    assert isinstance(model, OccupancyArchitecture)
    assert model.field_of_view in ("patch", "case") and model.configuration_name.startswith("3d_")
    assert model.PRESET_ORDER and all(p % m == 0 for p, m in zip(patch, model.input_multiple()))
    assert sum(p.numel() for p in model.pretrained_module().parameters()) > 0


def test_traces_on_the_meta_device(architecture):
    _, kwargs, patch = _small(architecture)
    small = training_footprint(architecture, kwargs, patch, 1, 512)
    large = training_footprint(architecture, kwargs, [2 * p for p in patch], 2, 2048)
    assert 0 < small.estimated_bytes() < large.estimated_bytes()


def test_decoder_calls_are_sized_within_the_devices_bounds(architecture):
    _, kwargs, patch = _small(architecture)
    for device in (torch.device("cpu"), torch.device("cuda")):
        points = points_per_batch(architecture, kwargs, patch, device)
        assert POINTS_GRANULE <= points <= default_points_per_batch(device)
        assert points % POINTS_GRANULE == 0 or points == default_points_per_batch(device)


def test_output_shapes_and_auxiliary_grid(architecture):
    model, _, patch = _small(architecture)
    logits, aux, terms = model(_encoder_input(model, 2, patch), torch.rand(2, 100, 3) - 0.5, Placement.centred(2, patch))
    assert logits.shape == (2, 100, OUTPUTS)
    assert set(terms) <= set(model.LOSS_TERMS)
    for term in terms.values():        # a penalty, or copies of the points' logits
        assert term.dim() == 0 or (term.shape[0] == 2 and term.shape[1] % 100 == 0 and term.shape[2] == OUTPUTS)
    grid = model.aux_grid_shape(patch)
    assert (aux is None) == (grid is None)
    if grid is not None:
        assert aux.shape == (2, OUTPUTS, *grid)
        encoding = _encode(model, patch)
        assert model.auxiliary_at(torch.rand(1, 7, 3) - 0.5, encoding).shape == (1, 7, OUTPUTS)


def test_encoding_moves_and_knows_its_size(architecture):
    model, _, patch = _small(architecture)
    encoding = _encode(model, patch)
    assert isinstance(encoding, Encoding) and encoding.nbytes() > 0
    moved = encoding.to(torch.device("cpu"), torch.float64)
    assert all(t.dtype == torch.float64 for t in moved.tensors() if t.is_floating_point())


def test_a_points_answer_does_not_depend_on_the_other_points(architecture):
    model, _, patch = _small(architecture)
    model.eval()
    with torch.no_grad():
        encoding = _encode(model, patch)
        many = torch.rand(1, 2048, 3) - 0.5
        together = model.decode(many, encoding)[0]
        alone = torch.cat([model.decode(many[:, i:i + 1], encoding)[0] for i in (0, 17, 2047)])
    # Rounding differs with the batch's size (BLAS picks other kernels); a real dependence on the
    # other points (statistics taken over them) moves answers by far more than this.
    torch.testing.assert_close(alone, together[[0, 17, 2047]], rtol=1e-4, atol=1e-5)


def test_checkpoint_round_trip_is_safe_and_exact(architecture, tmp_path):
    model, kwargs, patch = _small(architecture, seed=1)
    model.eval()
    save_checkpoint(tmp_path / "checkpoint_final.pth", {"network_weights": model.state_dict(), "epoch": 0})
    again = build_model(architecture, kwargs)
    again.load_state_dict(load_checkpoint(tmp_path / "checkpoint_final.pth")["network_weights"])   # weights_only
    again.eval()
    image, points, placement = _encoder_input(model, 1, patch), torch.rand(1, 64, 3) - 0.5, Placement.centred(1, patch)
    with torch.no_grad():
        torch.testing.assert_close(again(image, points, placement)[0], model(image, points, placement)[0], rtol=0, atol=0)


def test_a_few_steps_on_a_fixed_batch_lower_the_loss(architecture):
    model, _, patch = _small(architecture)
    hints = architecture_class(architecture).planning_hints()
    plan = TrainingPlan(**{**hints.training, "initial_lr": 3e-3})
    optimizer = make_optimizer(model.parameter_groups(plan.initial_lr), plan)
    torch.manual_seed(0)
    image = _encoder_input(model, 2, patch)
    points = torch.rand(2, 256, 3) - 0.5
    targets = (points[..., 0] > 0).long() + (points[..., 1] > 0.2).long()      # a pattern to learn
    batch = {"data": image, "points": points, "point_targets": targets,
             "placement": torch.tensor([[0, 0, 0, *patch, *patch]] * 2, dtype=torch.float32)}
    grid = model.aux_grid_shape(patch)
    if grid is not None:
        batch["grid_targets"] = torch.zeros(2, *grid, dtype=torch.long)
    loss_fn = OccupancyLoss(False, LossWeights(1.0, plan.dice_weight, plan.aux_weight, plan.loss_weights))
    losses = [train_step(model, batch, loss_fn, optimizer, None, False, 12.0)[0] for _ in range(12)]
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3]), losses


def test_one_volume_through_the_inference_field_keeps_the_geometry(architecture, trained_folders):
    """A configuration of this architecture (the small one above, in the test dataset's plans)
    predicts a volume through the inference field at exactly the volume's geometry."""
    paths = dataset_paths(501)
    plans = Plans.load(paths.plans_file("nnoccPlans"))
    network, kwargs, patch = _small(architecture)
    name = network.configuration_name
    template = next(iter(plans.configurations.values()))
    kwargs = {**kwargs, "num_outputs": len(plans.output_names), "in_channels": 1}
    clouds = network.cloud_size() is not None          # its plan: contour settings, no mirroring
    plans.configurations[name] = dataclasses.replace(
        template, name=name, patch_size=patch, architecture=ArchitecturePlan(architecture, kwargs),
        point_cloud=PointCloudPlan(2.0, 0.25, 0.65) if clouds else None,
        augmentation=dataclasses.replace(template.augmentation, mirror_axes=[] if clouds else [0, 1, 2]))
    network = build_model(architecture, kwargs).eval()
    predictor = Predictor(plans, name, load_dataset_json(paths.dataset_json), [network],
                          InferenceSettings(tta=False))
    image = np.random.default_rng(0).normal(40, 80, size=(13, 29, 31)).astype(np.float32)
    prediction = predictor.predict_array(image, spacing=[3.1, 1.7, 1.9], origin=[5.0, -3.0, 2.0],
                                         direction=[0.0, 1, 0, 1, 0, 0, 0, 0, -1.0])
    assert list(prediction.labels.shape) == [13, 29, 31]
    assert prediction.geometry.spacing == [3.1, 1.7, 1.9] and prediction.geometry.origin == [5.0, -3.0, 2.0]
    assert prediction.geometry.direction == [0.0, 1, 0, 1, 0, 0, 0, 0, -1.0]
    assert set(np.unique(prediction.labels)) <= set(plans.label_values)
