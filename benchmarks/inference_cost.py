"""What one case's inference costs a trained nnocc model: peak memory above the loaded model and
the preprocessed case, floating-point operations (torch's own flop counter) and parameters.

    python -m benchmarks.inference_cost prepare MODEL_FOLDER IMAGE WORK_DIR
    python -m benchmarks.inference_cost measure MODEL_FOLDER WORK_DIR OUT_JSON [--tta]

Preprocessing runs in its own process (``prepare``), so that its peak does not hide the
inference's: ``measure`` loads the model and the preprocessed case, notes the resident set, predicts
(peak: ru_maxrss on the CPU, max_memory_allocated on CUDA), then predicts again under
FlopCounterMode.  nnU-Net's counterpart is nnunet_inference_cost.py, run in nnU-Net's environment.
"""
from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

import numpy as np


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS"))


def prepare(model_folder: Path, image: Path, work: Path) -> None:
    from nnocc.inference.predictor import Predictor
    from nnocc.io.images import read_channels

    predictor = Predictor.from_model_folder(model_folder, folds=[0])
    data, geometry = read_channels([image])
    pre = predictor.preprocess(data, geometry, image.name.split("_0000")[0])
    work.mkdir(parents=True, exist_ok=True)
    np.save(work / "data.npy", pre.data)
    pre.properties.save(work / "properties.json")


def measure(model_folder: Path, work: Path, out: Path, tta: bool, device: str = "cpu") -> None:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from nnocc.inference.predictor import InferenceSettings, Predictor
    from nnocc.preprocessing.preprocessor import PreprocessedImage
    from nnocc.preprocessing.storage import CaseProperties

    torch.set_num_threads(2)
    predictor = Predictor.from_model_folder(model_folder, folds=[0], settings=InferenceSettings(tta=tta, device=device))
    pre = PreprocessedImage(np.load(work / "data.npy"), CaseProperties.load(work / "properties.json"), None)
    baseline = rss_mb()
    prediction = predictor.predict_preprocessed(pre)
    peak = (torch.cuda.max_memory_allocated() / 2 ** 20 if device == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - baseline)
    with FlopCounterMode(display=False) as counter:
        predictor.predict_preprocessed(pre)
    result = {"tool": "nnocc", "configuration": predictor.config.name, "tta": tta, "device": device,
              "peak_memory_mb": peak, "gflops": counter.get_total_flops() / 1e9,
              "parameters": sum(p.numel() for p in predictor.networks[0].parameters()),
              "preprocessed_shape": list(pre.data.shape[1:]), "seconds": prediction.stats["seconds_total"],
              "queries": prediction.stats["queries"], "dense_equivalent": prediction.stats["dense_equivalent"]}
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    stage, *rest = sys.argv[1:]
    if stage == "prepare":
        prepare(Path(rest[0]), Path(rest[1]), Path(rest[2]))
    else:
        measure(Path(rest[0]), Path(rest[1]), Path(rest[2]), "--tta" in rest)
