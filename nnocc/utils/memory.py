"""Memory of this process: the peak that benchmarks and logs report, and giving freed memory back."""
from __future__ import annotations

import ctypes
import ctypes.util
import resource
from functools import lru_cache

import torch

M_MMAP_THRESHOLD = -3       # glibc's malloc.h


def memory_peak_mb(device: torch.device) -> float:
    """Peak allocated GPU memory on CUDA, else the process's peak resident set (MiB)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@lru_cache(maxsize=1)      # find_library runs a subprocess; some callers trim after every decoder call
def _libc():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c"))
    except (OSError, TypeError):
        return None


def map_large_blocks_separately(threshold_mb: float = 1.0) -> bool:
    """Give every allocation of at least ``threshold_mb`` a mapping of its own, returned to the system
    the moment it is freed (glibc's ``M_MMAP_THRESHOLD``).  By default glibc raises that threshold
    each time such a block is freed, up to 32 MB, and serves later blocks from its heap, where blocks
    of changing sizes fragment it and the resident set keeps growing from case to case.  Meant for a
    process that predicts (``nnocc_predict --low_memory``; from Python, call it yourself): true where
    glibc took the setting.  Each large block then costs a fresh mapping and its page faults: measured
    on ten real-shape cases, 0.72x the peak for 1.8x the time."""
    libc = _libc()
    mallopt = getattr(libc, "mallopt", None)
    return bool(mallopt and mallopt(M_MMAP_THRESHOLD, int(threshold_mb * 2 ** 20)) == 1)


def release_freed_memory() -> None:
    """Hand memory that Python and torch have freed back to the system (glibc's ``malloc_trim``).
    Between cases of different sizes the allocator otherwise keeps the freed pages: measured, a batch
    of ten cases held 260 MB more than its largest case alone; and between a heavy decoder's calls,
    whose tensors of changing sizes fragment the heap (``query_batch.release_memory_between_calls``).
    Nothing happens where glibc is absent."""
    trim = getattr(_libc(), "malloc_trim", None)
    if trim is not None:
        trim(0)
