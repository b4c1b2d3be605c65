"""nnU-Net v2's side of benchmarks/inference_cost.py, run with nnU-Net's own Python; imports
nothing from nnocc.

    python benchmarks/nnunet_inference_cost.py prepare MODEL_FOLDER IMAGE WORK_DIR
    python benchmarks/nnunet_inference_cost.py measure MODEL_FOLDER WORK_DIR OUT_JSON [--tta]
    python benchmarks/nnunet_inference_cost.py patch MODEL_FOLDER OUT_JSON

The sliding-window prediction of one preprocessed case (fold 0, Gaussian weighting, step 0.5), as
``nnUNetv2_predict`` runs it: peak memory above the loaded model and case, FLOPs, parameters.
``patch``: the FLOPs of one forward pass of the network on one patch (SwIPE's table 1 unit).
"""
import json
import resource
import time
from pathlib import Path

import numpy as np
import torch
from cost_cli import dispatch, rss_mb  # this folder: the script runs as a file
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
from torch.utils.flop_counter import FlopCounterMode


def predictor_for(model_folder: Path, tta: bool) -> nnUNetPredictor:
    predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=tta,
                                perform_everything_on_device=False, device=torch.device("cpu"), verbose=False,
                                allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(str(model_folder), use_folds=(0,), checkpoint_name="checkpoint_final.pth")
    return predictor


def prepare(model_folder: Path, image: Path, work: Path) -> None:
    predictor = predictor_for(model_folder, False)
    preprocessor = predictor.configuration_manager.preprocessor_class(verbose=False)
    data, _, _ = preprocessor.run_case([str(image)], None, predictor.plans_manager, predictor.configuration_manager,
                                       predictor.dataset_json)
    work.mkdir(parents=True, exist_ok=True)
    np.save(work / "data.npy", data.astype(np.float32))


def measure(model_folder: Path, work: Path, out: Path, tta: bool) -> None:
    torch.set_num_threads(2)
    predictor = predictor_for(model_folder, tta)
    data = torch.from_numpy(np.load(work / "data.npy"))
    baseline = rss_mb()
    started = time.perf_counter()
    predictor.predict_sliding_window_return_logits(data)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - baseline
    with FlopCounterMode(display=False) as counter:
        predictor.predict_sliding_window_return_logits(data)
    result = {"tool": "nnunet", "configuration": "3d_fullres", "tta": tta, "device": "cpu", "peak_memory_mb": peak,
              "gflops": counter.get_total_flops() / 1e9,
              "parameters": sum(p.numel() for p in predictor.network.parameters()),
              "preprocessed_shape": list(data.shape[1:]), "seconds": seconds,
              "patch_size": list(predictor.configuration_manager.patch_size)}
    out.write_text(json.dumps(result, indent=2) + "\n")


def patch_cost(model_folder: Path, out: Path) -> None:
    predictor = predictor_for(model_folder, False)
    patch = list(predictor.configuration_manager.patch_size)
    channels = len(predictor.dataset_json["channel_names"])
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        predictor.network(torch.zeros(1, channels, *patch))
    out.write_text(json.dumps({"tool": "nnunet", "patch_size": patch, "gflops_per_patch": counter.get_total_flops() / 1e9,
                               "parameters": sum(p.numel() for p in predictor.network.parameters())}, indent=2) + "\n")


if __name__ == "__main__":
    dispatch(prepare, measure, patch_cost)
