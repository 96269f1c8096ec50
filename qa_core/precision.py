"""Precision: whether to run bf16 on this device, and the model set up for it (training or evaluation)."""

from __future__ import annotations

import contextlib
import copy
import functools

import torch

from qa_core.attention import attention_for_bf16, restore_sdpa


def native_bf16_cpu() -> bool:
    """True on x86 CPUs with AVX512-BF16 or AMX, whose bf16 matrix products beat fp32; emulated bf16 does not."""
    # private to torch.cpu, so looked up softly
    return getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)() or amx_cpu()


@functools.cache  # asked for every batch (batching.padding_multiple); the CPU does not change
def amx_cpu() -> bool:
    """True on x86 CPUs with AMX tiles (Intel Sapphire Rapids and later)."""
    return getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()


def resolve_bf16(bf16: bool | None, device: torch.device) -> bool:
    """The config's bf16, where None (the default) means: on for CUDA and for CPUs with native bf16."""
    if bf16 is not None:
        return bf16
    return device.type == "cuda" or (device.type == "cpu" and native_bf16_cpu())


def set_up_precision(model: torch.nn.Module, bf16: bool | None, device: torch.device, training: bool = True) -> bool:
    """The config's bf16 resolved for this device, with the model set up for it; every path that runs a model
    under bf16 goes through here.

    A model being trained keeps fp32 weights under autocast, attending through qa_core.attention on a CPU. A model
    only evaluated (training=False) on a CPU gets bf16 weights instead (cast_for_inference): no weight casts per
    batch, and bf16 attention is fast without a backward (bench/results/eval-precision.json).
    """
    resolved = resolve_bf16(bf16, device)
    if resolved and not training and device.type == "cpu":
        cast_for_inference(model)
    else:
        attention_for_bf16(model, device, resolved)
    return resolved


def inference_copy(model: torch.nn.Module, bf16: bool | None, device: torch.device) -> tuple[torch.nn.Module, bool]:
    """The model as `train.py evaluate` runs it when loaded from disk, and the bf16 flag to run it with, leaving
    `model` as it was: on a CPU with bf16 a copy, set up as set_up_precision(training=False) sets up a loaded
    model; elsewhere the model itself. So a run's own scores, a later evaluation and predict agree to the bit."""
    resolved = resolve_bf16(bf16, device)
    if not (resolved and device.type == "cpu"):
        return model, resolved
    copied = copy.deepcopy(getattr(model, "_orig_mod", model)).eval()  # torch.compile's wrapper holds the module
    restore_sdpa(copied)
    return copied, set_up_precision(copied, resolved, device, training=False)


def cast_for_inference(model: torch.nn.Module) -> None:
    """bf16 weights, except the QA head (qa_outputs), which stays fp32 with its input cast up: the logits every
    span is scored from keep fp32 resolution, so near ties between spans are not decided by bf16 rounding."""
    model.to(torch.bfloat16)
    head = getattr(model, "qa_outputs", None)
    if isinstance(head, torch.nn.Linear):
        head.float()
        head.register_forward_pre_hook(_inputs_to_float)


def _inputs_to_float(module: torch.nn.Module, args: tuple) -> tuple:
    return tuple(a.float() if torch.is_tensor(a) and a.is_floating_point() else a for a in args)


def autocast(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager:
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
