"""Peak memory of this process: what benchmarks and logs report."""
from __future__ import annotations

import resource

import torch


def memory_peak_mb(device: torch.device) -> float:
    """Peak allocated GPU memory on CUDA, else the process's peak resident set (MiB)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
