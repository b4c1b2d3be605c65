"""What one case's inference costs a trained nnocc model: peak memory above the loaded model and
the preprocessed case, floating-point operations (torch's own flop counter) and parameters.

    python -m benchmarks.inference_cost prepare MODEL_FOLDER IMAGE WORK_DIR
    python -m benchmarks.inference_cost measure MODEL_FOLDER WORK_DIR OUT_JSON [--tta]

Preprocessing runs in its own process (``prepare``), so that its peak does not hide the
inference's: ``measure`` loads the model and the preprocessed case, notes the resident set, predicts
(peak: ru_maxrss on the CPU, max_memory_allocated on CUDA), then predicts again under
FlopCounterMode.  For a point-cloud encoder, ``prepare`` also extracts the contour cloud in a
process of its own and records that extraction's peak and seconds: it is preprocessing (as the
paper's offline extraction), counted apart as nnU-Net's resampling is.  nnU-Net's counterpart is
nnunet_inference_cost.py, run in nnU-Net's environment.
"""
from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.cost_cli import dispatch, rss_mb


def prepare(model_folder: Path, image: Path, work: Path) -> None:
    from nnocc.inference.predictor import Predictor
    from nnocc.io.images import read_channels

    predictor = Predictor.from_model_folder(model_folder, folds=[0])
    data, geometry = read_channels([image])
    pre = predictor.preprocess(data, geometry, image.name.split("_0000")[0])
    work.mkdir(parents=True, exist_ok=True)
    np.save(work / "data.npy", pre.data)
    pre.properties.save(work / "properties.json")
    if predictor.config.point_cloud is not None:
        subprocess.run([sys.executable, "-m", "benchmarks.inference_cost", "extract", str(model_folder), str(work)],
                       check=True)


def extract(model_folder: Path, work: Path) -> None:
    """The contour cloud of the prepared case, and what extracting it cost."""
    from nnocc.inference.predictor import Predictor

    predictor = Predictor.from_model_folder(model_folder, folds=[0])
    pre = _prepared(work)
    baseline, started = rss_mb(), time.perf_counter()
    cloud = predictor.point_cloud(pre)
    assert cloud is not None
    cost = {"seconds": time.perf_counter() - started,
            "peak_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - baseline,
            "points": int(cloud.shape[0])}
    np.save(work / "cloud.npy", cloud.numpy())
    (work / "extraction.json").write_text(json.dumps(cost, indent=2) + "\n")


def _prepared(work: Path):
    from nnocc.preprocessing.preprocessor import PreprocessedImage
    from nnocc.preprocessing.storage import CaseProperties

    return PreprocessedImage(np.load(work / "data.npy"), CaseProperties.load(work / "properties.json"), None)


def measure(model_folder: Path, work: Path, out: Path, tta: bool, device: str = "cpu") -> None:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from nnocc.inference.predictor import InferenceSettings, Predictor

    torch.set_num_threads(2)
    predictor = Predictor.from_model_folder(model_folder, folds=[0], settings=InferenceSettings(tta=tta, device=device))
    pre = _prepared(work)
    cloud = torch.from_numpy(np.load(work / "cloud.npy")) if (work / "cloud.npy").is_file() else None
    baseline = rss_mb()
    prediction = predictor.predict_preprocessed(pre, cloud)
    peak = (torch.cuda.max_memory_allocated() / 2 ** 20 if device == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - baseline)
    with FlopCounterMode(display=False) as counter:
        predictor.predict_preprocessed(pre, cloud)
    result = {"tool": "nnocc", "configuration": predictor.config.name, "tta": tta, "device": device,
              "peak_memory_mb": peak, "gflops": counter.get_total_flops() / 1e9,
              "parameters": sum(p.numel() for p in predictor.networks[0].parameters()),
              "preprocessed_shape": list(pre.data.shape[1:]), "seconds": prediction.stats["seconds_total"],
              "queries": prediction.stats["queries"], "dense_equivalent": prediction.stats["dense_equivalent"]}
    if (work / "extraction.json").is_file():
        result["contour_extraction"] = json.loads((work / "extraction.json").read_text())
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    if sys.argv[1] == "extract":
        extract(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        dispatch(prepare, measure)
