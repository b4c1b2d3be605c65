"""Several processes (GPUs, or CPU processes with gloo) training one model with DDP.

Started either by ``torchrun`` (the command line reads RANK / WORLD_SIZE from the environment
into a DistributedSpec) or by ``--num_gpus N`` (spawned here).  Each rank draws its own share of the
batch; only rank 0 writes files.
"""
from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


@dataclass(frozen=True)
class DistributedSpec:
    """Which process of which group this is, and where the group meets."""
    rank: int
    world_size: int
    local_rank: int
    init_method: str = "env://"


@dataclass
class DistributedContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def device(self, requested: str) -> torch.device:
        if requested == "cuda":
            return torch.device("cuda", self.local_rank if self.enabled else torch.cuda.current_device())
        return torch.device(requested)

    def local_batch_size(self, batch_size: int) -> int:
        return max(1, batch_size // self.world_size)

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        if self.enabled:
            value = value.clone()
            dist.all_reduce(value)
            value /= self.world_size
        return value

    def sum(self, value: torch.Tensor) -> torch.Tensor:
        if self.enabled:
            value = value.clone()
            dist.all_reduce(value)
        return value

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


def join_process_group(spec: Optional[DistributedSpec], device: str) -> DistributedContext:
    """Join the process group ``spec`` describes; a single process when it is None."""
    if spec is None or spec.world_size <= 1:
        return DistributedContext()
    if not dist.is_initialized():
        backend = "nccl" if device == "cuda" else "gloo"
        if device == "cuda":
            torch.cuda.set_device(spec.local_rank)
        dist.init_process_group(backend, init_method=spec.init_method, rank=spec.rank, world_size=spec.world_size)
    return DistributedContext(spec.rank, spec.world_size, spec.local_rank)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(local_rank: int, world_size: int, port: int, fn: Callable, args: tuple) -> None:
    spec = DistributedSpec(local_rank, world_size, local_rank, f"tcp://127.0.0.1:{port}")
    try:
        fn(*args, spec)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def launch(num_processes: int, fn: Callable, *args) -> None:
    """Run ``fn(*args, spec)`` in ``num_processes`` processes that form one process group (loopback
    only); ``spec`` is each process's DistributedSpec."""
    mp.spawn(_worker, args=(num_processes, _free_port(), fn, args), nprocs=num_processes, join=True)
