"""Several processes (GPUs, or CPU processes with gloo) training one model with DDP.

Started either by ``torchrun`` (the environment says RANK / WORLD_SIZE) or by ``--num_gpus N``
(spawned here).  Each rank draws its own share of the batch; only rank 0 writes files.
"""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Callable

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


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


def context_from_environment(device: str) -> DistributedContext:
    """Join the process group torchrun (or ``launch``) set up; a single process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistributedContext()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", os.environ["RANK"]))
    if not dist.is_initialized():
        backend = "nccl" if device == "cuda" else "gloo"
        if device == "cuda":
            torch.cuda.set_device(local)
        dist.init_process_group(backend, rank=rank, world_size=world)
    return DistributedContext(rank, world, local)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(local_rank: int, world_size: int, port: int, fn: Callable, args: tuple) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(local_rank),
                      LOCAL_RANK=str(local_rank), WORLD_SIZE=str(world_size))
    try:
        fn(*args)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def launch(num_processes: int, fn: Callable, *args) -> None:
    """Run ``fn(*args)`` in ``num_processes`` processes that form one process group (loopback only)."""
    mp.spawn(_worker, args=(num_processes, _free_port(), fn, args), nprocs=num_processes, join=True)
