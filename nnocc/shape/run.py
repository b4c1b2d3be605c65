"""The shape-model stages as the commands run them: train one structure's model (and a learned cube
sampler) on a fold's training cases; rebuild the structures of a folder of masks from a sampler's
cubes; repair the structures of a folder of predicted label maps."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Dict, List

import numpy as np
from tqdm import tqdm

from nnocc.evaluation.metrics import MetricSettings, structure_metrics
from nnocc.io.dataset_json import DatasetDescription
from nnocc.io.images import read_image, write_segmentation
from nnocc.io.raw_dataset import RawDataset
from nnocc.paths import DatasetPaths
from nnocc.shape.crops import structure_values
from nnocc.shape.dataset import collect_shapes, crops_of, shape_splits, typical_shapes
from nnocc.shape.latent_fit import LatentFit
from nnocc.shape.reconstruct import CubeBudget, reconstruct_structure
from nnocc.shape.repair import RepairSettings, repair_labels
from nnocc.shape.sampler_training import LearnedCentres, SamplerTraining, train_sampler
from nnocc.shape.samplers import SAMPLERS, CubeSampler
from nnocc.shape.store import (
    ShapeModelInfo,
    load_sampler,
    load_shape_model,
    sampler_folder,
    save_sampler,
    save_shape_model,
    shape_model_folder,
)
from nnocc.shape.training import ShapeTraining, train_shape_decoder
from nnocc.utils.errors import NnoccError
from nnocc.utils.json_io import save_json


def train_structure(paths: DatasetPaths, structure: str, fold: int, spacing_mm: float,
                    settings: ShapeTraining, show_progress: bool = True, whole_only: bool = True) -> Path:
    """The shape model of one structure on seed 004's training part of ``fold``: each component a shape,
    leaving out fragments, components cut by the scan's edge (unless ``whole_only`` is off) and outliers
    (two structures fused into one component)."""
    raw = RawDataset(paths.raw)
    values = structure_values(raw.description, structure)
    labels = {c.name: c.label_file for c in raw.training_cases() if c.label_file is not None}
    split = shape_splits(list(labels), fold)
    shapes = typical_shapes(collect_shapes({c: labels[c] for c in split["train"]}, values, show_progress, whole_only))
    if not shapes:
        raise NnoccError(f"{paths.name}: no whole {structure} in fold {fold}'s training label maps"
                         + (" (those cut by the scan's edge are left out; --include_cut_shapes)" if whole_only else ""))
    crops, grid = crops_of(shapes, spacing_mm)
    decoder, codes, history = train_shape_decoder(crops, grid, settings, show_progress)
    folder = shape_model_folder(paths.results, structure, fold)
    info = ShapeModelInfo(structure, list(values), fold, grid, settings, history, split, [s.name for s in shapes],
                          sum(p.numel() for p in decoder.parameters()))
    save_shape_model(folder, info, decoder, codes)
    return folder


def train_structure_sampler(paths: DatasetPaths, structure: str, fold: int, settings: SamplerTraining,
                            show_progress: bool = True) -> Path:
    """The learned sampler for N x K cubes against the fold's shape model, on its training shapes."""
    model_folder = shape_model_folder(paths.results, structure, fold)
    info, decoder = load_shape_model(model_folder)
    raw = RawDataset(paths.raw)
    labels = {c.name: c.label_file for c in raw.training_cases() if c.label_file is not None}
    shapes = collect_shapes({c: labels[c] for c in info.split["train"]}, tuple(info.label_values), show_progress,
                            whole_only=False)
    crops, _ = crops_of([s for s in shapes if s.name in set(info.shapes)], info.grid.spacing_mm, info.grid)
    generator, history = train_sampler(decoder, crops, info.grid, settings, show_progress)
    folder = sampler_folder(model_folder, settings.count, settings.edge)
    save_sampler(folder, settings, history, generator)
    return folder


def reconstruct_folder(model_folder: Path, description: DatasetDescription, inputs: Path, output: Path,
                       sampler: str, budget: CubeBudget, fit: LatentFit, seed: int) -> Dict:
    """Every mask in ``inputs``: the reconstruction (same geometry), its cubes (JSON, physical mm) and
    Dice / ASD / HD95 against the input; failed cases are listed and the others finished."""
    info, decoder = load_shape_model(model_folder)
    choose = cube_sampler(sampler, model_folder, budget)
    rng = np.random.default_rng(seed)
    cases, failed = each_case(inputs, output, description.file_ending, "reconstruct", lambda path: reconstruct_file(
        path, output / path.name, decoder, info, choose, budget, fit, rng))
    summary = {"shape_model": str(model_folder), "structure": info.structure, "sampler": sampler,
               "cubes": dataclasses.asdict(budget), "latent_steps": fit.steps, "seed": seed, "cases": cases,
               "failed": failed, "mean": _means(cases)}
    save_json(summary, output / "summary.json")
    return summary


def repair_folder(model_folder: Path, description: DatasetDescription, inputs: Path, output: Path,
                  settings: RepairSettings) -> Dict:
    """Every label map in ``inputs`` with the model's structure repaired (same geometry, written atomically);
    summary.json says what changed per component; failed cases are listed and the others finished."""
    info, decoder = load_shape_model(model_folder)

    def repair_file(path: Path) -> List[Dict]:
        labels, geometry = read_image(path)
        result = repair_labels(labels.astype(np.int64), geometry.spacing, info.label_values, decoder, info.grid,
                               settings)
        write_segmentation(result["labels"], geometry, output / path.name)
        return result["components"]

    cases, failed = each_case(inputs, output, description.file_ending, "repair", repair_file)
    summary = {"shape_model": str(model_folder), "structure": info.structure, "settings": settings.to_dict(),
               "cases": cases, "failed": failed}
    save_json(summary, output / "repair_summary.json")
    return summary


def each_case(inputs: Path, output: Path, ending: str, what: str, work: Callable[[Path], Any]):
    """``work`` on every file of ``inputs`` -> ({case: its result}, ['case: why it failed']): a case that
    fails is reported and the others are finished."""
    files = sorted(p for p in inputs.iterdir() if p.name.endswith(ending))
    if not files:
        raise NnoccError(f"{inputs}: no label maps ending in {ending}")
    output.mkdir(parents=True, exist_ok=True)
    cases: Dict[str, Any] = {}
    failed: List[str] = []
    for path in tqdm(files, desc=what, disable=len(files) < 2):
        name = path.name[:-len(ending)]
        try:
            cases[name] = work(path)
        except NnoccError as error:
            failed.append(f"{name}: {error}")
    return cases, failed


def cube_sampler(name: str, model_folder: Path, budget: CubeBudget) -> CubeSampler:
    if name == "learned":
        return LearnedCentres(load_sampler(sampler_folder(model_folder, budget.count, budget.edge), budget.count))
    if name not in SAMPLERS:
        raise NnoccError(f"unknown sampler {name!r}; available: {', '.join([*SAMPLERS, 'learned'])}")
    return SAMPLERS[name]


def reconstruct_file(path: Path, out: Path, decoder, info: ShapeModelInfo, sampler: CubeSampler, budget: CubeBudget,
                     fit: LatentFit, rng: np.random.Generator) -> Dict:
    labels, geometry = read_image(path)
    mask = np.isin(labels, info.label_values)
    result = reconstruct_structure(mask, geometry, decoder, info.grid, sampler, budget, fit, rng, str(path))
    write_segmentation(result.mask.astype(np.uint8), geometry, out)
    save_json({"case": path.name, "cubes": result.cubes}, out.with_name(out.name.split(".")[0] + "_cubes.json"))
    metrics = structure_metrics(mask, result.mask, geometry.spacing, MetricSettings(tolerances_mm=[1.0]))
    return {k: metrics[k] for k in ("dice", "assd", "hd95")} | {"labelled_voxels": sum(c["labelled_voxels"]
                                                                                    for c in result.cubes)}


def _means(cases: Dict[str, Dict]) -> Dict[str, float]:
    keys = ("dice", "assd", "hd95")
    return {k: float(np.mean([c[k] for c in cases.values()])) if cases else float("nan") for k in keys}
