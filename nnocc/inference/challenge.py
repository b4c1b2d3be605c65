"""Grand-challenge style prediction (KiTS23 algorithm convention), used by the challenge container.

Every image under ``<input_root>/images/ct/`` (``.mha``, also ``.nii.gz``) gets
``<output_root>/images/kidney-tumor-and-cyst/<same name>.mha``: labels 0-3 as uint8 on exactly the
input's grid.  The model's postprocessing.json, when shipped, is applied.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import List, Optional

import numpy as np
import torch

from nnocc.inference.predictor import InferenceSettings, Predictor
from nnocc.io.images import read_image, write_image
from nnocc.postprocessing.components import PostprocessingPlan, apply_plan
from nnocc.utils.errors import NnoccError

logger = logging.getLogger(__name__)
INPUT_SUBFOLDER = Path("images") / "ct"
OUTPUT_SUBFOLDER = Path("images") / "kidney-tumor-and-cyst"


def installed_model(results_folder: Path) -> Path:
    models = sorted(p for p in Path(results_folder).glob("Dataset*/*__*__*") if (p / "plans.json").is_file())
    if len(models) != 1:
        raise NnoccError(f"{results_folder}: expected exactly one installed model, found {len(models)}; pass --model_folder")
    return models[0]


def input_images(folder: Path) -> List[Path]:
    images = sorted(p for p in folder.iterdir() if p.name.lower().endswith((".mha", ".nii.gz")) and not p.name.startswith("."))
    if not images:
        raise NnoccError(f"{folder}: no .mha or .nii.gz images")
    return images


def output_name(image: Path) -> str:
    name = image.name
    return (name[:-7] if name.lower().endswith(".nii.gz") else name[:-4]) + ".mha"


def predict_challenge(input_root: Path, output_root: Path, model_folder: Path, device: Optional[str] = None,
                      tta: bool = True) -> List[Path]:
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    predictor = Predictor.from_model_folder(model_folder, settings=InferenceSettings(tta=tta, device=device))
    plan_file = Path(model_folder) / "postprocessing.json"
    postprocessing = PostprocessingPlan.load(plan_file) if plan_file.is_file() else None
    written = []
    for image_file in input_images(Path(input_root) / INPUT_SUBFOLDER):
        started = time.perf_counter()
        image, geometry = read_image(image_file)
        prediction = predictor.predict_case(image[None], geometry, image_file.name)
        labels = prediction.labels
        if postprocessing is not None:
            labels = apply_plan(labels, postprocessing, geometry.spacing)
        target = Path(output_root) / OUTPUT_SUBFOLDER / output_name(image_file)
        write_image(labels.astype(np.uint8), geometry, target)
        written.append(target)
        logger.info("%s: %.1f s on %s (%d queries)", image_file.name, time.perf_counter() - started, device,
                    prediction.stats["queries"])
    return written
