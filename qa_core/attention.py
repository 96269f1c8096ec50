"""Attention on CPUs: bf16 matrix products around a softmax, for training and for an inference copy."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel

logger = logging.getLogger(__name__)

CPU_BF16_ATTENTION = "cpu_bf16"  # the name cpu_bf16_attention is registered under with transformers
BF16_PRODUCTS_ATTENTION = "bf16_products"  # the name bf16_products_attention is registered under


def sdpa_in_fp32(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                 attention_mask: torch.Tensor | None, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """transformers' SDPA attention with fp32 inputs and autocast off; the output back in the query's dtype.

    Under bf16 autocast PyTorch's fused CPU attention runs in bf16, slower than in fp32 (bench/README.md).
    """
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if attention_mask is not None and attention_mask.is_floating_point():
        attention_mask = attention_mask.float()
    with torch.autocast(query.device.type, enabled=False):
        output, weights = sdpa_attention_forward(module, query.float(), key.float(), value.float(), attention_mask,
                                                 **kwargs)
    return output.to(query.dtype), weights


def additive_mask(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """SDPA's mask (bool, True where a query may attend, or already additive) as a float bias of `dtype`.

    The most negative finite value rather than -inf, so a row with nothing to attend to is uniform, not NaN.
    """
    if attention_mask.is_floating_point():
        return attention_mask.to(dtype)
    bias = torch.zeros(attention_mask.shape, dtype=dtype, device=attention_mask.device)
    return bias.masked_fill_(~attention_mask, torch.finfo(dtype).min)


def cpu_bf16_attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                       attention_mask: torch.Tensor | None, scaling: float | None = None, dropout: float = 0.0,
                       **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Attention written as two matrix products around a softmax, in the dtype of query (bf16 under autocast).

    PyTorch's fused CPU attention recomputes the probabilities in its backward, and at 32-dimensional heads
    reaches a fraction of the matrix products' speed (bench/bench_attention.py); keeping the probabilities makes
    the backward two more matrix products. Without gradients (evaluation) the fused kernel is faster, in fp32.
    Causal models keep the fused kernel too, which applies their causal mask.
    """
    if not torch.is_grad_enabled() or getattr(module, "is_causal", False):
        return sdpa_in_fp32(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs)
    scaling = query.shape[-1] ** -0.5 if scaling is None else scaling
    scores = torch.matmul(query * scaling, key.transpose(-1, -2))  # (batch, heads, seq, seq)
    if attention_mask is not None:
        scores.add_(additive_mask(attention_mask, scores.dtype))  # in place: the product's output is not saved
    probs = torch.softmax(scores, dim=-1)  # (batch, heads, seq, seq), computed in fp32 by the CPU kernel
    if dropout > 0:
        probs = F.dropout(probs, p=dropout, training=True)
    return torch.matmul(probs, value).transpose(1, 2), None  # (batch, seq, heads, head_dim)


def attention_for_bf16(model: PreTrainedModel, device: torch.device, bf16: bool) -> bool:
    """Switch to cpu_bf16_attention when bf16 autocast trains on a CPU and the model attends through SDPA; True
    when it switched. Other models (and CUDA, whose bf16 attention kernels are fast) stay as loaded."""
    if not bf16 or device.type != "cpu" or getattr(model.config, "_attn_implementation", None) != "sdpa":
        return False
    return switch_attention(model, CPU_BF16_ATTENTION, cpu_bf16_attention)


def bf16_products_attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                            attention_mask: torch.Tensor | None, scaling: float | None = None, dropout: float = 0.0,
                            **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Attention for an inference copy: both matrix products in bf16, the softmax in fp32, fp32 in and out.

    On a CPU with native bf16 the products at one question's shapes run faster than in fp32, and in a compiled
    copy the casts fuse into the kernels around them (bench/README.md, "On an AMD Zen 5 CPU").
    """
    if dropout:
        raise ValueError(f"bf16 products attention is for inference copies, which attend without dropout; got "
                         f"dropout {dropout} (a copy put in training mode?)")
    scaling = query.shape[-1] ** -0.5 if scaling is None else scaling
    scores = torch.matmul((query * scaling).bfloat16(), key.bfloat16().transpose(-1, -2))  # (batch, heads, seq, seq)
    scores = scores.float()
    if attention_mask is not None:
        scores = scores + additive_mask(attention_mask, scores.dtype)
    probs = torch.softmax(scores, dim=-1).bfloat16()  # (batch, heads, seq, seq)
    return torch.matmul(probs, value.bfloat16()).to(query.dtype).transpose(1, 2), None  # (batch, seq, heads, head_dim)


def attend_in_matrix_products(model: PreTrainedModel, bf16: bool = False) -> bool:
    """Attention as two matrix products around a softmax instead of SDPA's fused kernel, for an inference copy that
    torch.compile fuses: one question's window ran faster that way on a CPU (bench/README.md, "On an AMD Zen 5
    CPU"). The products in bf16 (bf16_products_attention) where bf16 is native, else transformers' eager attention
    in fp32. False for a model that does not attend through SDPA, or cannot switch."""
    if getattr(model.config, "_attn_implementation", None) != "sdpa":
        return False
    if bf16:
        return switch_attention(model, BF16_PRODUCTS_ATTENTION, bf16_products_attention)
    return set_attention(model, "eager")


def restore_sdpa(model: PreTrainedModel) -> None:
    """Undo attention_for_bf16 (on a copy): SDPA again, the implementation the saved model loads with."""
    if getattr(model.config, "_attn_implementation", None) == CPU_BF16_ATTENTION:
        model.set_attn_implementation("sdpa")


def switch_attention(model: PreTrainedModel, name: str, function: Callable[..., Any]) -> bool:
    """Register `function` with transformers under `name`, with SDPA's masks, and make the model attend through
    it; False for a model with its own attention code. The saved config keeps the model's own implementation."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

    AttentionInterface.register(name, function)
    AttentionMaskInterface.register(name, ALL_MASK_ATTENTION_FUNCTIONS["sdpa"])
    return set_attention(model, name)


def set_attention(model: PreTrainedModel, name: str) -> bool:
    """Make the model attend through transformers' implementation `name`; False, the model unchanged, for a model
    with its own attention code."""
    try:
        model.set_attn_implementation(name)
    except (ValueError, NotImplementedError, AttributeError) as err:
        logger.info("%s keeps its attention implementation (%s)", type(model).__name__, err)
        return False
    return True
