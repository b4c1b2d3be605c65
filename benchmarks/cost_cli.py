"""What both tools' inference-cost scripts share; imports neither tool, so that nnU-Net's script
(run with nnU-Net's own Python, from this folder) can use it too."""
import sys
from pathlib import Path
from typing import Callable, Optional


def rss_mb() -> float:
    """The resident set of this process now (ru_maxrss is the peak so far)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS"))


def dispatch(prepare: Callable[[Path, Path, Path], None], measure: Callable[[Path, Path, Path, bool], None],
             patch: Optional[Callable[[Path, Path], None]] = None) -> None:
    """``prepare MODEL_FOLDER IMAGE WORK_DIR``, ``measure MODEL_FOLDER WORK_DIR OUT_JSON [--tta]`` or (where
    offered) ``patch MODEL_FOLDER OUT_JSON``."""
    stage, *rest = sys.argv[1:]
    if stage == "patch" and patch is not None:
        patch(Path(rest[0]), Path(rest[1]))
    elif stage == "prepare":
        prepare(Path(rest[0]), Path(rest[1]), Path(rest[2]))
    else:
        measure(Path(rest[0]), Path(rest[1]), Path(rest[2]), "--tta" in rest)
