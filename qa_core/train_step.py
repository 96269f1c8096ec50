"""One training step's parts: the optimizer, the batch loader, forward and backward, the optimizer step."""

from __future__ import annotations

import contextlib
from functools import partial

import torch
from torch.utils.data import DataLoader

from qa_core.batching import BatchFormat, collate, padding_multiple
from qa_core.config import QAConfig
from qa_core.distributed import DistContext
from qa_core.dropout import use_masked_dropout
from qa_core.features import Feature
from qa_core.precision import autocast
from qa_core.runtime import large_blocks_mapped


def wrap_model(model: torch.nn.Module, config: QAConfig, dist_ctx: DistContext,
               device: torch.device) -> torch.nn.Module:
    """TF32 on CUDA when allowed, cheaper dropout masks on a CPU, torch.compile when asked, DDP across processes."""
    if device.type == "cpu" and not config.torch_compile:  # the compiler draws its own masks in fused kernels
        use_masked_dropout(model)
    if device.type == "cuda" and config.tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if config.torch_compile:
        model = torch.compile(model, dynamic=True)
    if dist_ctx.enabled:
        ids = [device.index] if device.type == "cuda" else None
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
    return model


def build_optimizer(model: torch.nn.Module, config: QAConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW without weight decay on biases and LayerNorm weights; the fused kernel (CPU and CUDA)."""
    decay, no_decay = [], []
    for parameter in model.parameters():
        if parameter.requires_grad:
            (no_decay if parameter.ndim < 2 else decay).append(parameter)
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.learning_rate, fused=device.type in ("cpu", "cuda"))


def batch_loader(features: tuple[Feature, ...], batches: list[list[int]], device: torch.device,
                 batch_format: BatchFormat = BatchFormat(), pad_to: int | None = None, num_workers: int = 0,
                 seed: int = 0, multiple_of: int | None = None) -> DataLoader:
    """Padded batches in the given order; pinned memory and lengths rounded to multiples of 8 on CUDA (or of
    multiple_of).

    The loader has its own generator: starting it then draws nothing from torch's global RNG, which a resumed run
    has just restored (else dropout masks after a mid-epoch resume differ from those of an uninterrupted run).
    """
    return DataLoader(features, batch_sampler=batches, num_workers=num_workers, pin_memory=device.type == "cuda",
                      collate_fn=partial(collate, batch_format=batch_format, pad_to=pad_to,
                                         multiple_of=multiple_of or padding_multiple(device)),
                      generator=torch.Generator().manual_seed(seed))


def forward_backward(model: torch.nn.Module, batch: dict[str, torch.Tensor], bf16: bool, accumulation: int = 1,
                     no_sync: contextlib.AbstractContextManager | None = None) -> torch.Tensor:
    """One micro-batch of a step of `accumulation` (step_micro_batches): loss and gradients; the loss stays on the
    device (reading it every step stalls a GPU)."""
    device = next(model.parameters()).device
    batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    heap = large_blocks_mapped() if device.type == "cpu" else contextlib.nullcontext()
    with no_sync or contextlib.nullcontext(), heap:  # backward inside too: DDP's reducer reads no_sync in backward
        with autocast(device, bf16):
            loss = model(**batch).loss  # mean of start and end cross-entropy
        (loss / accumulation).backward()
    return loss.detach()


def step_micro_batches(position: int, accumulation: int, epoch_batches: int) -> int:
    """Micro-batches of the optimizer step that holds an epoch's micro-batch `position` (from 1): accumulation, or
    fewer in an epoch's last step, which ends with the epoch. The step's loss is their mean."""
    first = (position - 1) // accumulation * accumulation  # micro-batches of the epoch before this step
    return min(accumulation, epoch_batches - first)


def optimizer_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                   scheduler: torch.optim.lr_scheduler.LRScheduler, max_grad_norm: float) -> torch.Tensor:
    """Clip, step, schedule; returns the gradient norm before clipping (a device scalar)."""
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return grad_norm
