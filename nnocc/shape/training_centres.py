"""Seed 004's learned sampler as a training patch sampler (pipeline use (a)): the cube centres it proposes
on each preprocessed case's label map become patch centres of the kind ``proposed``.

The proposals go to ``<preprocessed dataset>/<data folder>_proposed_centres.json`` (voxel indices of the
preprocessed grid per case, and what made them), and a plans variant ``<plans>_proposed.json`` gives
``sampling.proposed_share`` the label sampler's share: the same preprocessed data, patches centred where
the sampler would have an annotator label cubes instead of anywhere in a structure.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np
from tqdm import tqdm

from nnocc.paths import DatasetPaths
from nnocc.planning.plans import Plans
from nnocc.preprocessing.storage import list_cases, load_preprocessed_case
from nnocc.shape.crops import CropGrid, components, crop_component, crop_to_source
from nnocc.shape.dataset import MIN_COMPONENT_SHARE  # as the shape model's shapes: specks get no proposals
from nnocc.shape.sampler_training import LearnedCentres
from nnocc.shape.store import load_sampler, load_shape_model, sampler_folder, shape_model_folder
from nnocc.utils.errors import NnoccError
from nnocc.utils.json_io import save_json


def case_proposals(seg: np.ndarray, spacing: Sequence[float], values: Sequence[int], grid: CropGrid,
                   sampler: LearnedCentres, repeats: int, rng: np.random.Generator) -> np.ndarray:
    """(M, 3) preprocessed voxel indices: ``repeats`` draws of the sampler's N centres per component."""
    mask = np.isin(seg, values)
    found: List[np.ndarray] = []
    for component in components(mask, min_share=MIN_COMPONENT_SHARE):
        crop, centre = crop_component(component, spacing, grid)
        if not crop.any():
            continue
        for _ in range(repeats):
            centres = sampler(crop, sampler.generator.count, rng)
            found.append(crop_to_source(centres, crop.shape, centre, grid, spacing))
    upper = np.asarray(seg.shape) - 1
    return np.clip(np.round(np.concatenate(found)), 0, upper).astype(int) if found else np.zeros((0, 3), int)


def proposals_file(paths: DatasetPaths, plans: Plans, configuration: str) -> Path:
    folder = plans.configuration(configuration).data_folder_name(plans.plans_name)
    return paths.preprocessed / f"{folder}_proposed_centres.json"


def propose_training_centres(paths: DatasetPaths, plans_name: str, configuration: str, structure: str, fold: int,
                             count: int, edge: int, repeats: int = 4, share: float | None = None,
                             seed: int = 0, show_progress: bool = True) -> Dict[str, str]:
    """Write the proposals of every preprocessed case and the plans variant that samples them."""
    plans = Plans.load(paths.plans_file(plans_name))
    config = plans.configuration(configuration)
    data = paths.preprocessed_data(config.data_folder_name(plans.plans_name))
    cases = list_cases(data) if data.is_dir() else []
    if not cases:
        raise NnoccError(f"{data}: no preprocessed cases; run nnocc_plan_and_preprocess -d {paths.name}")
    model = shape_model_folder(paths.results, structure, fold)
    info, _ = load_shape_model(model)
    sampler = LearnedCentres(load_sampler(sampler_folder(model, count, edge), count))
    rng = np.random.default_rng(seed)
    proposals: Dict[str, List[List[int]]] = {}
    for name in tqdm(cases, desc="proposed centres", disable=not show_progress):
        case = load_preprocessed_case(data, name)
        found = case_proposals(np.asarray(case.seg[:]), case.properties.preprocessed_spacing, info.label_values,
                               info.grid, sampler, repeats, rng)
        proposals[name] = found.tolist()
    out = proposals_file(paths, plans, configuration)
    save_json({"structure": structure, "fold": fold, "cubes": count, "edge": edge, "repeats": repeats,
               "shape_model": str(model), "cases": proposals}, out)
    variant = proposed_plans(plans, configuration, out.name, share)
    variant.save(paths.plans_file(variant.plans_name))
    return {"proposals": str(out), "plans": variant.plans_name}


def proposed_plans(plans: Plans, configuration: str, centres_file: str, share: float | None) -> Plans:
    """``configuration`` alone, its label-centred share (or ``share``) given to the proposed centres."""
    config = plans.configuration(configuration)
    sampling = config.sampling
    moved = sampling.label_share if share is None else share
    config.sampling = dataclasses.replace(sampling, label_share=max(sampling.label_share - moved, 0.0),
                                          proposed_share=moved, proposed_centres=centres_file)
    config.data_identifier = config.data_folder_name(plans.plans_name)
    return dataclasses.replace(plans, plans_name=f"{plans.plans_name}_proposed", configurations={configuration: config})

