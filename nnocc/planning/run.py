"""Stage 2: plans from a fingerprint."""
from __future__ import annotations

from typing import Optional

from nnocc.fingerprint.fingerprint import DatasetFingerprint
from nnocc.io.dataset_json import load_dataset_json
from nnocc.paths import DatasetPaths
from nnocc.planning.planner import find_planner
from nnocc.planning.plans import Plans
from nnocc.utils.errors import NnoccError


def run_planning(paths: DatasetPaths, planner: str = "OccupancyPlanner", gpu_memory_target_gb: float = 8.0,
                 plans_name: Optional[str] = None) -> Plans:
    if not paths.fingerprint_file.is_file():
        raise NnoccError(f"{paths.fingerprint_file}: missing; run nnocc_extract_fingerprint first")
    if gpu_memory_target_gb <= 0:
        raise NnoccError(f"--gpu_memory_target must be positive, got {gpu_memory_target_gb}")
    fingerprint = DatasetFingerprint.load(paths.fingerprint_file)
    description = load_dataset_json(paths.dataset_json)
    plans = find_planner(planner)(fingerprint, description, gpu_memory_target_gb, plans_name).plan()
    plans.save(paths.plans_file(plans.plans_name))
    return plans


def load_plans(paths: DatasetPaths, plans_name: str = "nnoccPlans") -> Plans:
    path = paths.plans_file(plans_name)
    if not path.is_file():
        raise NnoccError(f"{path}: missing; run nnocc_plan_experiment -d {paths.name} first")
    return Plans.load(path)
