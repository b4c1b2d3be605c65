"""Seed 004 on generated kidneys: the shape model, the samplers and the reconstruction, units and commands."""
import json

import numpy as np
import pytest
import torch

from nnocc.planning.plans import Plans
from nnocc.preprocessing.storage import load_preprocessed_case
from nnocc.shape.crops import CropGrid, components, crop_component
from nnocc.shape.latent_fit import LatentFit, fit_latents
from nnocc.shape.learned_sampler import PatchGenerator, soft_project
from nnocc.shape.network import ShapeDecoder
from nnocc.shape.samplers import cube_voxels, farthest_point_centres, random_centres


def _ball(shape, centre, radius):
    index = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    return np.linalg.norm(index - np.asarray(centre), axis=-1) <= radius


def test_the_networks_have_the_published_sizes():
    assert sum(p.numel() for p in ShapeDecoder().parameters()) + 128 == 116_609      # with one shape's code
    counts = [sum(p.numel() for p in PatchGenerator(n).parameters()) for n in (4, 8, 12)]
    assert counts == [212_109, 215_193, 218_277]


def test_components_are_cropped_centred_on_one_grid():
    mask = _ball((40, 40, 60), (20, 20, 15), 6) | _ball((40, 40, 60), (20, 20, 45), 8)
    found = components(mask)
    assert [int(c.sum()) for c in found] == sorted([int(c.sum()) for c in found], reverse=True) and len(found) == 2
    grid = CropGrid([21, 21, 21], 1.0)
    crop, centre = crop_component(found[0], [1.0, 1.0, 1.0], grid)
    assert crop.shape == (21, 21, 21) and np.allclose(centre, [20, 20, 45])
    assert crop[10, 10, 10] and not crop[0, 0, 0] and abs(int(crop.sum()) - int(found[0].sum())) < 0.05 * found[0].sum()


def test_samplers_and_cubes():
    rng = np.random.default_rng(0)
    mask = _ball((30, 30, 30), (15, 15, 15), 9)
    centres = farthest_point_centres(mask, 6, rng)
    assert mask[tuple(centres.T)].all()
    spread = np.min([np.linalg.norm(a - b) for i, a in enumerate(centres) for b in centres[i + 1:]])
    assert spread > 8                                               # spread over the ball, not clustered
    assert ((random_centres(mask, 50, rng) >= 0) & (random_centres(mask, 50, rng) < 30)).all()
    voxels = cube_voxels(np.array([[0, 0, 0], [29, 29, 29]]), 3, mask.shape)
    assert len(voxels) == 2 * 8                                     # corners: only the inside counts


def test_fitting_a_code_is_differentiable_in_the_positions():
    torch.manual_seed(0)
    decoder = ShapeDecoder().requires_grad_(False)
    positions = (torch.rand(1, 200, 3) - 0.5).mul(40).requires_grad_(True)
    targets = (positions.detach().norm(dim=-1) < 10).float()
    code = fit_latents(decoder, positions, targets, fit=LatentFit(steps=3), differentiable=True)
    decoder(code, torch.rand(1, 50, 3))[0].sum().backward()
    assert positions.grad is not None and positions.grad.abs().sum() > 0
    again = fit_latents(decoder, positions.detach(), targets, fit=LatentFit(steps=3), generator=torch.Generator().manual_seed(1))
    assert again.shape == (1, 128) and not again.requires_grad


def test_soft_projection_stays_within_the_points_hull():
    points = torch.rand(1, 2048, 3) - 0.5
    projected = soft_project(torch.randn(1, 8, 3) * 3, points, torch.tensor(0.05))
    assert projected.shape == (1, 8, 3) and projected.abs().max() <= 0.5


@pytest.fixture(scope="module")
def kidneys(tmp_path_factory):
    """Ten generated cases (kidney_and_masses as a region) and their folders."""
    from nnocc.dataset_conversion.synthetic import generate_dataset
    from tests.conftest import folders_at

    folders = folders_at(tmp_path_factory.mktemp("kidneys"))
    for path in (folders.raw, folders.preprocessed, folders.results):
        path.mkdir(parents=True)
    generate_dataset(folders.raw, 504, "Kidneys", num_training=10, num_test=2, shape=(24, 64, 64), modality="ct",
                     seed=9, regions=True)
    return folders


SHORT = ["--epochs", "1", "--iterations_per_epoch", "2", "--validation_iterations", "1", "--quiet",
         "--val_disable_tta", "--no_final_validation"]


def _run(main, args):
    with pytest.raises(SystemExit) as info:
        main(args)
    return info.value.code


def test_train_sample_and_reconstruct_from_the_command_line(kidneys, monkeypatch, tmp_path, capsys):
    from nnocc.cli import reconstruct_shapes, repair_shapes, train_patch_sampler, train_shape_model
    from nnocc.io.images import read_image, write_segmentation
    from tests.conftest import use_folders

    use_folders(monkeypatch, kidneys)
    assert _run(train_shape_model.main, ["-d", "504", "-s", "liver", "--steps", "5", "--quiet"]) == 1
    assert "no structure 'liver' in dataset.json" in capsys.readouterr().err
    assert _run(train_shape_model.main, ["-d", "504", "-s", "kidney_and_masses", "-f", "0", "--steps", "60",
                                         "--spacing_mm", "3", "--quiet"]) == 1
    assert "no whole kidney_and_masses" in capsys.readouterr().err       # the small scans cut every kidney
    assert _run(train_shape_model.main, ["-d", "504", "-s", "kidney_and_masses", "-f", "0", "--steps", "60",
                                         "--spacing_mm", "3", "--include_cut_shapes", "--batch_size", "4",
                                         "--points_per_shape", "512", "--latent_lr", "0.01", "--quiet"]) == 0
    model = kidneys.results / "Dataset504_Kidneys" / "shape_models" / "kidney_and_masses" / "fold_0"
    info = json.loads((model / "shape_model.json").read_text())
    assert info["parameters"] == 116_481 and info["history"]["steps"] == 60
    assert (info["training"]["batch_size"], info["training"]["points_per_shape"]) == (4, 512)
    assert info["training"]["latent_learning_rate"] == 0.01
    assert len(info["split"]["test"]) == 2 and len(info["split"]["val"]) == 1 and len(info["split"]["train"]) == 7
    assert _run(train_patch_sampler.main, ["-d", "504", "-s", "kidney_and_masses", "-n", "4", "-k", "3", "-t", "2",
                                           "--epochs", "2", "--check_points", "256", "--quiet"]) == 0
    masks = tmp_path / "masks"
    masks.mkdir()
    labels_folder = kidneys.raw / "Dataset504_Kidneys" / "labelsTs"
    for path in sorted(labels_folder.glob("*.nii.gz")):
        (masks / path.name).write_bytes(path.read_bytes())
    labels, geometry = read_image(sorted(labels_folder.glob("*.nii.gz"))[0])
    write_segmentation(np.zeros_like(labels), geometry, masks / "empty.nii.gz")
    for sampler in ("random", "farthest_point", "learned"):
        out = tmp_path / sampler
        code = _run(reconstruct_shapes.main, ["-d", "504", "-s", "kidney_and_masses", "-i", str(masks), "-o", str(out),
                                              "--sampler", sampler, "-n", "4", "-k", "3", "-t", "10"])
        assert code == 1 and "empty.nii.gz: the structure's mask is empty" in capsys.readouterr().err
        summary = json.loads((out / "summary.json").read_text())
        assert len(summary["cases"]) == 2 and len(summary["failed"]) == 1
        for path in sorted(labels_folder.glob("*.nii.gz")):
            rebuilt, rebuilt_geometry = read_image(out / path.name)
            assert rebuilt_geometry.differences(read_image(path)[1], tolerance=1e-6) == []
            cubes = json.loads((out / path.name.replace(".nii.gz", "_cubes.json")).read_text())["cubes"]
            assert all(len(c["centres_mm"]) == 4 and c["edge_mm"] == 9.0 for c in cubes)
            assert 0 <= summary["cases"][path.name[:-7]]["dice"] <= 1
    assert _run(reconstruct_shapes.main, ["-d", "504", "-s", "kidney_and_masses", "-i", str(masks), "-o",
                                          str(tmp_path / "big"), "-n", "4", "-k", "99"]) == 1
    assert "fewer than one cube of 99^3" in capsys.readouterr().err
    repaired = tmp_path / "repaired"
    assert _run(repair_shapes.main, ["-d", "504", "-s", "kidney_and_masses", "-i", str(masks), "-o", str(repaired),
                                     "-t", "5"]) == 0
    summary = json.loads((repaired / "repair_summary.json").read_text())
    assert sorted(summary["cases"]) == sorted([*(p.name[:-7] for p in labels_folder.glob("*.nii.gz")), "empty"])
    for path in sorted(masks.glob("*.nii.gz")):
        assert read_image(repaired / path.name)[1].differences(read_image(path)[1], tolerance=1e-6) == []


class RadiusModel(torch.nn.Module):
    """A one-number shape model: a ball of radius 5 + 10 z_0 mm around the crop's centre."""
    latent_dim = 128

    def forward(self, latents, positions_mm):
        return 4.0 * (5.0 + 10.0 * latents[:, None, 0] - positions_mm.norm(dim=-1))


def test_coarse_to_fine_evaluation_matches_every_voxel():
    from nnocc.shape.reconstruct import occupancy_logits, occupancy_on_box

    code = torch.zeros(128)
    code[0] = 0.6                                      # radius 11 mm
    positions = CropGrid([31, 30, 29], 1.0).positions_mm()
    dense = occupancy_logits(RadiusModel(), code, positions) > 0
    assert dense.sum() > 4000 and np.array_equal(occupancy_on_box(RadiusModel(), code, positions), dense)


def test_repair_fills_a_notch_the_shape_prior_rules_out():
    from nnocc.shape.repair import RepairSettings, repair_labels

    ball = _ball((40, 40, 40), (20, 20, 20), 10)
    bite = ball & _ball((40, 40, 40), (20, 20, 31), 3)                 # a bite out of the surface
    labels = (ball & ~bite).astype(np.int64) * 2                       # the structure is label 2 here
    labels[0, 0, 0] = 1                                                # another label stays as it was
    grid = CropGrid([41, 41, 41], 1.0)
    for mode in ("band", "replace"):
        settings = RepairSettings(mode=mode, trusted_margin_mm=1.0, points=4000, latent_steps=150, points_per_step=None)
        result = repair_labels(labels, [1.0, 1.0, 1.0], (2,), RadiusModel(), grid, settings)
        repaired = result["labels"] == 2
        assert (repaired & bite).sum() >= 0.8 * bite.sum() and bite.sum() > 15
        assert 2 * (repaired & ball).sum() / (repaired.sum() + ball.sum()) > 0.99
        assert result["labels"][0, 0, 0] == 1 and result["components"][0]["added"] >= 0.8 * bite.sum()


def test_structures_join_with_plus_and_unknown_ones_are_named():
    from nnocc.io.dataset_json import DatasetDescription
    from nnocc.shape.crops import structure_values
    from nnocc.utils.errors import NnoccError

    description = DatasetDescription({"0": "CT"}, {"background": 0, "kidney": 1, "tumor": 2, "masses": [2, 3]}, 1,
                                     ".nii.gz")
    assert structure_values(description, "kidney+masses") == (1, 2, 3)
    with pytest.raises(NnoccError, match="no structure 'liver'"):
        structure_values(description, "kidney+liver")


def test_proposed_centres_become_training_patch_centres(trained_folders, capsys):
    from nnocc.cli import propose_patch_centres, train, train_patch_sampler, train_shape_model
    from nnocc.io.dataset_json import load_dataset_json
    from nnocc.paths import DatasetPaths
    from nnocc.training.dataloader import BatchSettings, OccupancyDataLoader

    structure = ["-s", "kidney+tumor+cyst"]
    assert _run(train_shape_model.main, ["-d", "501", *structure, "--steps", "20", "--spacing_mm", "3", "--quiet",
                                         "--include_cut_shapes"]) == 0
    assert _run(train_patch_sampler.main, ["-d", "501", *structure, "-n", "4", "-k", "3", "-t", "2", "--epochs", "1",
                                           "--check_points", "128", "--quiet"]) == 0
    assert _run(propose_patch_centres.main, ["-d", "501", "3d_occ", *structure, "-n", "4", "-k", "3", "--quiet"]) == 0
    assert "-p nnoccPlans_proposed" in capsys.readouterr().out
    paths = DatasetPaths(trained_folders, "Dataset501_SmallCT")
    plans = Plans.load(paths.plans_file("nnoccPlans_proposed"))
    config = plans.configuration("3d_occ")
    planned = Plans.load(paths.plans_file("nnoccPlans")).configuration("3d_occ").sampling
    assert config.sampling.proposed_share == planned.label_share and config.sampling.label_share == 0
    proposals = json.loads((paths.preprocessed / config.sampling.proposed_centres).read_text())["cases"]
    data = paths.preprocessed_data(config.data_folder_name(plans.plans_name))
    loader = OccupancyDataLoader(data, sorted(proposals), config, load_dataset_json(paths.dataset_json),
                                 BatchSettings(2, False, 0))
    choices = [loader.sampler.sample() for _ in range(200)]
    proposed = [c for c in choices if c.kind == "proposed"]
    assert len(proposed) > 40
    for choice in proposed[:20]:             # centred on the structure: within a voxel or two of it
        seg = np.asarray(load_preprocessed_case(data, choice.case).seg[:])
        near = seg[tuple(slice(max(int(v) - 2, 0), int(v) + 3) for v in choice.centre)]
        assert np.isin(near, (1, 2, 3)).any()
    assert _run(train.main, ["501", "3d_occ", "0", "-p", "nnoccPlans_proposed", *SHORT]) == 0
