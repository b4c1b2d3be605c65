"""The fold's final validation: predict the validation cases with the inference code (MISE),
export them at their original geometry to ``validation/`` and evaluate them."""
from __future__ import annotations

import logging
from typing import Dict, Optional

from tqdm import tqdm

from nnocc.architectures.base import OccupancyArchitecture
from nnocc.evaluation.evaluate_folder import evaluate_folder, evaluation_settings
from nnocc.inference.export import write_prediction
from nnocc.inference.predictor import InferenceSettings, Predictor
from nnocc.preprocessing.preprocessor import PreprocessedImage
from nnocc.preprocessing.storage import load_preprocessed_case
from nnocc.training.run import TrainingRun
from nnocc.utils.json_io import save_json

logger = logging.getLogger(__name__)


def final_validation(run: TrainingRun, network: OccupancyArchitecture, device: str, tta: bool = True,
                     save_probabilities: bool = False) -> Optional[Dict]:
    if not run.val_cases:
        logger.info("fold %s has no validation cases; skipping the final validation", run.settings.fold)
        return None
    folder = run.output_folder / "validation"
    settings = InferenceSettings(tta=tta, device=device, keep_probabilities=save_probabilities)
    predictor = Predictor(run.plans, run.config.name, run.description, [network.eval()], settings)
    stats = {}
    for name in tqdm(run.val_cases, desc="final validation", unit="case"):
        case = load_preprocessed_case(run.data_folder, name)
        prediction = predictor.predict_preprocessed(PreprocessedImage(case.image[...], case.properties, None))
        write_prediction(prediction, run.description, folder, probabilities=save_probabilities,
                         threshold=run.config.mise.threshold)
        stats[name] = prediction.stats
    save_json(stats, folder / "inference_stats.json")
    references = run.paths.preprocessed / "gt_segmentations"
    summary = evaluate_folder(references, folder, evaluation_settings(run.description), run.description.file_ending,
                              folder / "summary.json", num_processes=1, allow_missing=True)
    return summary
