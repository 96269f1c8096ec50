"""Data-parallel plumbing for torchrun / accelerate launch; a no-op in a single process."""

from __future__ import annotations

import logging
import os
import platform
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from qa_core.runtime import cpu_fields

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # True when init_distributed created the process group, so cleanup may destroy it

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed() -> DistContext:
    """Join the process group that torchrun (or `accelerate launch --multi_gpu`) describes in the environment.

    Both launchers set RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; without WORLD_SIZE > 1 this
    is a single process. NCCL on CUDA machines, gloo on CPU.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return DistContext()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if dist.is_initialized():
        return DistContext(rank, world_size, local_rank)
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl", device_id=device)  # device_id: barriers know their GPU
    else:
        dist.init_process_group(backend="gloo")
    logger.info("process %d of %d joined (%s)", rank, world_size, dist.get_backend())
    return DistContext(rank, world_size, local_rank, owns_group=True)


def device_for(dist_ctx: DistContext, requested: str | None = None) -> torch.device:
    if requested:
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda", dist_ctx.local_rank)
    return torch.device("cpu")


def shard(items: list[Any], dist_ctx: DistContext) -> list[Any]:
    """This rank's share; trimmed so every rank runs the same number of steps (DDP needs it)."""
    if not dist_ctx.enabled:
        return items
    usable = len(items) - len(items) % dist_ctx.world_size
    return items[dist_ctx.rank:usable:dist_ctx.world_size]


def gather(value: Any, dist_ctx: DistContext) -> list[Any]:
    """Every rank's value, in rank order, on every rank."""
    if not dist_ctx.enabled:
        return [value]
    values: list[Any] = [None] * dist_ctx.world_size
    dist.all_gather_object(values, value)
    return values


def _all_reduce(value: float, op: dist.ReduceOp) -> float:
    tensor = torch.tensor([value], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        tensor = tensor.cuda()  # NCCL reduces GPU tensors only
    dist.all_reduce(tensor, op=op)
    return float(tensor.item())


def all_reduce_mean(value: float, dist_ctx: DistContext) -> float:
    if not dist_ctx.enabled:
        return value
    return _all_reduce(value, dist.ReduceOp.SUM) / dist_ctx.world_size


def any_rank(flag: bool, dist_ctx: DistContext) -> bool:
    """True on every rank if it is True on any; a stop decision must be shared, or the ranks fall out of step."""
    if not dist_ctx.enabled:
        return flag
    return _all_reduce(float(flag), dist.ReduceOp.MAX) > 0


def unwrap_ddp(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DistributedDataParallel wrapper (maybe a torch.compile one), else the model itself."""
    return model.module if isinstance(model, DistributedDataParallel) else model


def barrier(dist_ctx: DistContext) -> None:
    if dist_ctx.enabled:
        dist.barrier()


def cleanup(dist_ctx: DistContext) -> None:
    """Destroy the process group, if this dist_ctx created it (a caller's own group is left to the caller)."""
    if dist_ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def describe_hardware(processes: int | None = None) -> str:
    """The GPUs' name and count (processes, default all visible), or the CPU's name and cores: what run.json and
    the model card say a run trained in this process ran on."""
    if torch.cuda.is_available():
        return f"{processes or torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    cpu = cpu_fields().get("model name") or platform.processor() or platform.machine()
    return f"{cpu}, {os.cpu_count()} cores (CPU)"
