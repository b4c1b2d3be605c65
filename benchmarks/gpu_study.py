"""The GPU study: one prepared run on a lent GPU (issue 17, item 6).

    python -m benchmarks.gpu_study --kits23 LABELS --work DIR --out DIR [--nnunet-venv SITE]
                                   [--iterations 30] [--memory-target 8] [--deadline-minutes 9]

On real anatomy (benchmarks.kits_anatomy's painting of a few KiTS23 label maps), both tools planned
for the same memory target:
* each nnocc configuration trains two epochs with mixed precision on and off: seconds per iteration
  (second epoch, after the warm-up), and the measured GPU peak (``torch.cuda.max_memory_allocated``,
  what the planner models) against the planner's estimate;
* nnU-Net v2 trains the same way (its trainer always uses mixed precision on CUDA);
* 3d_occ and nnU-Net predict KiTS-sized cases (the scans' own 512 x 512 resolution, output at the
  input spacing, no mirroring): seconds, GPU peak (nvidia-smi, both tools alike; nnocc's allocator
  peak too) and nnocc's MISE query share.
The results JSON is rewritten after every step, and steps that would overrun the deadline are
skipped, so a run cut short still returns what it measured.
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from pathlib import Path
from typing import Callable, Dict

import numpy as np

from benchmarks.learning_curves import DATASET_ID, DATASET_NAME
from benchmarks.run import inference_stats, machine
from benchmarks.tools import NnoccTool, NnunetTool, Workspace
from nnocc.dataset_conversion.real_anatomy import paint_native_cases
from nnocc.utils.json_io import save_json

logger = logging.getLogger("benchmarks")
CONFIGURATIONS = ("3d_occ", "3d_ossnet", "3d_sconet", "3d_swipe")


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kits23", type=Path, required=True, help="KiTS23 checkout (or a folder of case_XXXXX folders)")
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="folder for gpu_study.json")
    p.add_argument("--nnunet-venv", default=None, help="nnU-Net's environment (bin/ with its commands and python)")
    p.add_argument("--nnunet-pythonpath", default=None,
                   help="PYTHONPATH for nnU-Net's processes (where its packages were unpacked rather than installed)")
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"), help="cpu: a dry run of the script")
    p.add_argument("--configurations", nargs="+", default=list(CONFIGURATIONS))
    p.add_argument("--iterations", type=int, default=20, help="per epoch; two epochs, the second is timed")
    p.add_argument("--memory-target", type=float, default=8.0, help="GB, for both planners")
    p.add_argument("--train-cases", type=int, default=8)
    p.add_argument("--native-cases", nargs="+", default=["case_00017", "case_00018"],
                   help="label maps painted at their own resolution for the KiTS-sized inference")
    p.add_argument("--workers", type=int, default=8, help="processes for painting, preprocessing, augmentation")
    p.add_argument("--deadline-minutes", type=float, default=9.0)
    return p.parse_args(argv)


class Study:
    """Runs named steps in order, records each one's figures or error, skips what the deadline cannot hold."""

    def __init__(self, out: Path, deadline_minutes: float):
        self.out, self.started, self.deadline = out, time.time(), 60 * deadline_minutes
        self.results: Dict = {"machine": machine(), "steps": {}}

    def step(self, name: str, needs_seconds: float, fn: Callable[[], Dict]) -> Dict:
        left = self.deadline - (time.time() - self.started)
        if left < needs_seconds:
            self.results["steps"][name] = {"skipped": f"{left:.0f} s left, about {needs_seconds:.0f} s needed"}
        else:
            logger.info("%s (%.0f s left)", name, left)
            began = time.time()
            try:
                self.results["steps"][name] = fn() | {"step_seconds": time.time() - began}
            except Exception as e:  # noqa: BLE001 - a failed step must not cost the other figures
                self.results["steps"][name] = {"error": f"{type(e).__name__}: {str(e)[-1500:]}"}
        self.save()
        return self.results["steps"][name]

    def save(self) -> None:
        save_json(self.results, self.out / "gpu_study.json")


def prepare(args) -> Workspace:
    from nnocc.dataset_conversion.real_anatomy import make_real_anatomy_dataset

    ws = Workspace(args.work, DATASET_ID, f"Dataset{DATASET_ID}_{DATASET_NAME}", args.device, 1.0)
    if not (ws.raw / ws.dataset_name / "dataset.json").is_file():
        make_real_anatomy_dataset(args.kits23, ws.raw, DATASET_ID, args.train_cases, 0, (3.0, 2.0, 2.0),
                                  num_processes=args.workers, name=DATASET_NAME)
    paint_native_cases(args.kits23, args.native_cases, ws.test_images, ws.test_labels, args.workers)
    return ws


def nnocc_training(nnocc: NnoccTool, configuration: str, amp: bool, iterations: int) -> Dict:
    from nnocc.planning.plans import Plans
    from nnocc.utils.checkpoints import load_checkpoint

    trainer = "gpuStudyAmp" if amp else "gpuStudyFp32"
    m = nnocc.run(f"train_{configuration}_{trainer}", "train", nnocc.ws.dataset_id, configuration, 0, "-tr", trainer,
                  "--epochs", 2, "--iterations_per_epoch", iterations, "--validation_iterations", 1,
                  "--device", nnocc.ws.device, "--no_final_validation", "--quiet", *([] if amp else ["--no_amp"]))
    folder = nnocc.results / nnocc.ws.dataset_name / f"{trainer}__nnoccPlans__{configuration}" / "fold_0"
    payload = load_checkpoint(folder / "checkpoint_final.pth")
    plan = Plans.load(nnocc.results.parent / "preprocessed" / nnocc.ws.dataset_name / "nnoccPlans.json")
    config = plan.configurations[configuration]
    epoch_seconds = payload["history"]["epoch_seconds"]
    return {"seconds_per_iteration": epoch_seconds[-1] / iterations, "first_epoch_seconds": epoch_seconds[0],
            "peak_allocated_mb": payload["peak_memory_mb"], "planner_estimate_mb": 1024 * config.memory.estimated_peak_gb,
            "patch_size": config.patch_size, "batch_size": config.batch_size,
            "points": config.sampling.points_per_patch, "parameters": config.memory.model_parameters,
            "command": m.to_dict()}


def nnocc_native_inference(nnocc: NnoccTool) -> Dict:
    output = nnocc.ws.root / "predictions_nnocc_native"
    shutil.rmtree(output, ignore_errors=True)
    m = nnocc.predict(output, "predict_native", "--disable_tta", "-tr", "gpuStudyAmp")
    cases = json.loads((output / "inference_stats.json").read_text())["cases"]
    return {"command": m.to_dict(), "per_case": cases} | {"mean": inference_stats(output)}


def nnunet_steps(study: Study, ws: Workspace, venv: Path, args) -> None:
    nnunet = NnunetTool(ws, venv, args.memory_target)
    nnunet.env["nnUNet_n_proc_DA"] = str(args.workers)
    if args.nnunet_pythonpath:
        nnunet.env["PYTHONPATH"] = args.nnunet_pythonpath
    study.step("nnunet_plan_and_preprocess", 90, lambda: nnunet.plan_and_preprocess().to_dict())
    ws.budget_minutes = 1.0
    study.step("nnunet_train", 100, lambda: nnunet.train().to_dict() | nnunet.training_figures())
    output = ws.root / "predictions_nnunet_native"
    shutil.rmtree(output, ignore_errors=True)
    study.step("nnunet_predict_native", 120,
               lambda: nnunet.predict(output, "predict_native", "--disable_tta").to_dict() | {"cases": len(
                   list(ws.test_images.glob("*_0000.nii.gz")))})


def train_steps(study: Study, nnocc: NnoccTool, args, amp: bool) -> None:
    for configuration in args.configurations:
        study.step(f"nnocc_train_{configuration}_{'amp' if amp else 'fp32'}", 40,
                   lambda c=configuration: nnocc_training(nnocc, c, amp, args.iterations))


def main(argv=None) -> Path:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args = parse(argv)
    study = Study(args.out, args.deadline_minutes)
    study.results["arguments"] = {k: str(v) for k, v in vars(args).items()}
    ws = prepare(args)
    study.results["native_cases"] = {p.name: _shape(p) for p in sorted(ws.test_images.glob("*_0000.nii.gz"))}
    nnocc = NnoccTool(ws, args.memory_target, sys.executable)
    nnocc.env["nnocc_n_proc_DA"] = str(args.workers)
    study.step("nnocc_plan_and_preprocess", 60, lambda: nnocc.plan_and_preprocess().to_dict())
    # most wanted first: the deadline skips what comes last
    train_steps(study, nnocc, args, amp=True)
    study.step("nnocc_predict_native_3d_occ", 90, lambda: nnocc_native_inference(nnocc))
    venv = NnunetTool.find(args.nnunet_venv)
    if venv is not None:
        nnunet_steps(study, ws, venv, args)
    train_steps(study, nnocc, args, amp=False)
    study.results["total_seconds"] = time.time() - study.started
    study.save()
    return args.out / "gpu_study.json"


def _shape(path: Path) -> Dict:
    from nnocc.io.images import read_image

    image, geometry = read_image(path)
    return {"shape": geometry.shape, "spacing": geometry.spacing, "voxels": int(np.prod(image.shape))}


if __name__ == "__main__":
    print(main())
