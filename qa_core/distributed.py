"""Data-parallel plumbing for torchrun / accelerate launch; a no-op in a single process."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed() -> DistContext:
    """Join the process group that torchrun (or accelerate launch) describes in the environment."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return DistContext()
    context = DistContext(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(context.local_rank)
        dist.init_process_group(backend=backend)
    return context


def device_for(context: DistContext, requested: str | None = None) -> torch.device:
    if requested:
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda", context.local_rank)
    return torch.device("cpu")


def shard(items: list[Any], context: DistContext) -> list[Any]:
    """This rank's share; trimmed so every rank runs the same number of steps (DDP needs it)."""
    if not context.enabled:
        return items
    usable = len(items) - len(items) % context.world_size
    return items[context.rank:usable:context.world_size]


def gather(value: Any, context: DistContext) -> list[Any]:
    """Every rank's value, in rank order, on every rank."""
    if not context.enabled:
        return [value]
    values: list[Any] = [None] * context.world_size
    dist.all_gather_object(values, value)
    return values


def all_reduce_mean(value: float, context: DistContext) -> float:
    if not context.enabled:
        return value
    tensor = torch.tensor([value], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        tensor = tensor.cuda()
    dist.all_reduce(tensor)
    return float(tensor.item()) / context.world_size


def barrier(context: DistContext) -> None:
    if context.enabled:
        dist.barrier()


def cleanup(context: DistContext) -> None:
    if context.enabled and dist.is_initialized():
        dist.destroy_process_group()
