"""The two tools under test, each behind the same small interface: plan, train, predict.

Both run as their users run them: nnocc through its commands in this environment, nnU-Net v2
through its own commands in its own virtual environment.  Nothing of nnU-Net is imported here.
"""
from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from benchmarks.measure import Measurement, measure

HERE = Path(__file__).resolve().parent


@dataclass
class Workspace:
    root: Path
    dataset_id: int
    dataset_name: str
    device: str
    budget_minutes: float

    @property
    def raw(self) -> Path:
        return self.root / "raw"

    @property
    def test_images(self) -> Path:
        return self.raw / self.dataset_name / "imagesTs"

    @property
    def test_labels(self) -> Path:
        return self.raw / self.dataset_name / "labelsTs"

    def log(self, name: str) -> Path:
        return self.root / "logs" / f"{name}.log"


class NnoccTool:
    name = "nnocc"

    def __init__(self, ws: Workspace, memory_target_gb: float, python: str, configuration: str = "3d_occ",
                 plans_name: str = "nnoccPlans"):
        self.ws = ws
        self.memory_target_gb = memory_target_gb
        self.python = python
        self.configuration = configuration
        self.plans_name = plans_name
        base = ws.root / "nnocc"
        self.env = {"nnocc_raw": str(ws.raw), "nnocc_preprocessed": str(base / "preprocessed"),
                    "nnocc_results": str(base / "results"), "nnocc_n_proc_DA": "2"}
        self.results = base / "results"

    def planned(self) -> bool:
        """Whether this workspace still holds the plans (a workspace outlives the JSON in some sessions, and the
        JSON outlives the workspace in others)."""
        return (Path(self.env["nnocc_preprocessed"]) / self.ws.dataset_name / f"{self.plans_name}.json").is_file()

    def _cmd(self, command: str, *args) -> List[str]:
        return [self.python, "-m", "nnocc", command, *[str(a) for a in args]]

    def run(self, name: str, command: str, *args) -> Measurement:
        return measure(self._cmd(command, *args), self.ws.log(f"nnocc_{name}"), self.env, self.ws.device == "cuda")

    def plan_and_preprocess(self) -> Measurement:
        return self.run("plan_and_preprocess", "plan_and_preprocess", "-d", self.ws.dataset_id, "-np", 2,
                        "--gpu_memory_target", self.memory_target_gb, "--clean")

    def train(self, snapshot_minutes: Sequence[float] = ()) -> Measurement:
        snapshots = ["--snapshot_minutes", *snapshot_minutes] if snapshot_minutes else []
        return self.run(f"train_{self.plans_name}_{self.configuration}", "train", self.ws.dataset_id,
                        self.configuration, 0, "-p", self.plans_name, "--budget_minutes", self.ws.budget_minutes,
                        "--epochs", 100000, "--iterations_per_epoch", 50, "--validation_iterations", 5,
                        "--device", self.ws.device, "--val_disable_tta", "--quiet", *snapshots)

    def model_folder(self) -> Path:
        return self.results / self.ws.dataset_name / f"nnoccTrainer__{self.plans_name}__{self.configuration}"

    def predict(self, output: Path, name: str = "predict", *extra, images: Optional[Path] = None) -> Measurement:
        """The held-back cases, or the folder ``images``."""
        return self.run(name, "predict", "-i", images or self.ws.test_images, "-o", output, "-d", self.ws.dataset_id,
                        "-c", self.configuration, "-p", self.plans_name, "-f", 0, "-device", self.ws.device,
                        "-npp", 1, "-nps", 1, *extra)

    def training_figures(self) -> Dict:
        from nnocc.utils.checkpoints import load_checkpoint

        payload = load_checkpoint(self.model_folder() / "fold_0" / "checkpoint_final.pth")
        iterations = max(int(payload.get("iterations", 0)), 1)
        return {"training_seconds": payload["elapsed_seconds"], "iterations": iterations,
                "epochs": payload["epoch"], "seconds_per_iteration": payload["elapsed_seconds"] / iterations,
                "peak_memory_mb_in_process": payload.get("peak_memory_mb")}


class NnunetTool:
    name = "nnunet"

    def __init__(self, ws: Workspace, venv: Path, memory_target_gb: Optional[float] = None):
        self.ws = ws
        self.venv = Path(venv)
        self.memory_target_gb = memory_target_gb     # None: nnU-Net's own default (about 8 GB)
        base = ws.root / "nnunet"
        self.env = {"nnUNet_raw": str(ws.raw), "nnUNet_preprocessed": str(base / "preprocessed"),
                    "nnUNet_results": str(base / "results"), "nnUNet_n_proc_DA": "2",
                    "PATH": f"{self.venv / 'bin'}:{os.environ.get('PATH', '')}"}
        self.results = base / "results"

    def planned(self) -> bool:
        return (Path(self.env["nnUNet_preprocessed"]) / self.ws.dataset_name / "nnUNetPlans.json").is_file()

    @staticmethod
    def find(venv: Optional[str]) -> Optional[Path]:
        candidate = venv or os.environ.get("NNUNET_VENV")
        if candidate and (Path(candidate) / "bin" / "nnUNetv2_plan_and_preprocess").is_file():
            return Path(candidate)
        return None

    def run(self, name: str, command: List[str]) -> Measurement:
        return measure(command, self.ws.log(f"nnunet_{name}"), self.env, self.ws.device == "cuda")

    @staticmethod
    def version(venv: Path, package: str = "nnunetv2") -> Optional[str]:
        """The package's version in nnU-Net's environment (results say which nnU-Net they measured)."""
        out = subprocess.run([str(Path(venv) / "bin" / "python"), "-c",
                              f"import importlib.metadata as m; print(m.version('{package}'))"],
                             capture_output=True, text=True)
        return out.stdout.strip() or None

    def plan_and_preprocess(self) -> Measurement:
        target = [] if self.memory_target_gb is None else ["-gpu_memory_target", str(self.memory_target_gb)]
        return self.run("plan_and_preprocess", [str(self.venv / "bin" / "nnUNetv2_plan_and_preprocess"), "-d",
                                                str(self.ws.dataset_id), "-c", "3d_fullres", "-np", "2", "--clean",
                                                *target])

    def train(self, snapshot_minutes: Sequence[float] = ()) -> Measurement:
        out = self.ws.root / "nnunet" / "training.json"
        marks = [",".join(f"{m:g}" for m in snapshot_minutes)] if snapshot_minutes else []
        return self.run("train", [str(self.venv / "bin" / "python"), str(HERE / "nnunet_runner.py"),
                                  str(self.ws.dataset_id), "3d_fullres", "0", str(self.ws.budget_minutes),
                                  self.ws.device, str(out), *marks])

    def predict(self, output: Path, name: str = "predict", *extra, images: Optional[Path] = None) -> Measurement:
        """The held-back cases, or the folder ``images``."""
        return self.run(name, [str(self.venv / "bin" / "nnUNetv2_predict"), "-i", str(images or self.ws.test_images),
                               "-o", str(output), "-d", str(self.ws.dataset_id), "-c", "3d_fullres", "-f", "0",
                               "-device", self.ws.device, "-npp", "1", "-nps", "1", *extra])

    def model_folder(self) -> Path:
        return self.results / self.ws.dataset_name / "nnUNetTrainer__nnUNetPlans__3d_fullres"

    def training_figures(self) -> Dict:
        return json.loads((self.ws.root / "nnunet" / "training.json").read_text())
