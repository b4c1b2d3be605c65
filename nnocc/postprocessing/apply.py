"""Apply a postprocessing plan to a folder of label maps (same geometry out as in)."""
from __future__ import annotations

from pathlib import Path
from typing import List

from nnocc.io.images import read_image, write_segmentation
from nnocc.postprocessing.components import PostprocessingPlan, apply_plan
from nnocc.utils.errors import NnoccError
from nnocc.utils.parallel import map_cases


def _apply_one(job) -> str:
    source, target, plan = job
    labels, geometry = read_image(source)
    write_segmentation(apply_plan(labels, plan, geometry.spacing), geometry, target)
    return target.name


def apply_to_folder(input_folder: Path, output_folder: Path, plan: PostprocessingPlan, ending: str,
                    num_processes: int = 1) -> List[str]:
    files = sorted(p for p in Path(input_folder).glob(f"*{ending}") if not p.name.startswith("."))
    if not files:
        raise NnoccError(f"{input_folder}: no label maps ending in {ending}")
    jobs = [(f, Path(output_folder) / f.name, plan) for f in files]
    _, failures = map_cases(_apply_one, jobs, num_processes, desc="postprocessing", names=[f.name for f in files])
    if failures:
        raise NnoccError("\n".join(f"{name}: {error}" for name, error in failures))
    return [f.name for f in files]
