"""Int8 copies of linear layers for answering on CPUs: int8 weights per output channel, int8 activations per token."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from qa_core.runtime import cpu_fields

INT8_MAX = 127
# An int8 copy whose logits stray further than this from its float model's (logit_error, the median over a few
# questions) is not served. Well-behaved BERTs stay well below it; a few activation channels many times larger
# than the rest (common in some model families) flatten every other channel of a token to a handful of int8 steps
# and push it far above (tests/test_serving.py builds such a model).
MAX_LOGIT_ERROR = 0.25


def native_int8_cpu() -> bool:
    """True on x86 CPUs with VNNI or AMX int8 dot products, where int8 matrix products beat fp32 and bf16."""
    return not {"avx512_vnni", "avx_vnni", "amx_int8"}.isdisjoint(cpu_fields().get("flags", "").split())


def logit_error(reference: np.ndarray, other: np.ndarray) -> float:
    """How far `other` strays from `reference` (one window's logits, padding -inf): the norm of their difference
    over the norm of the reference's spread around its mean, on the positions both hold."""
    held = np.isfinite(reference) & np.isfinite(other)
    spread = reference[held] - reference[held].mean()
    return float(np.linalg.norm(other[held] - reference[held]) / max(np.linalg.norm(spread), 1e-12))


def quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 with one scale per row, so one token's outlier does not flatten every other token."""
    scale = x.abs().amax(dim=-1, keepdim=True).clamp(min=1e-8) / INT8_MAX  # (rows, 1)
    return (x / scale).round().clamp(-INT8_MAX, INT8_MAX).to(torch.int8), scale


class Int8Linear(nn.Module):
    """A drop-in for nn.Linear at inference: an int8 x int8 -> int32 matrix product, rescaled to float."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        weight, scale = quantize_rows(linear.weight.detach().float())  # (out, in), (out, 1)
        self.register_buffer("weight", weight.t().contiguous())  # (in, out): the layout torch._int_mm takes
        self.register_buffer("weight_scale", scale.reshape(-1))  # (out,)
        bias = linear.bias.detach().float() if linear.bias is not None else None
        self.register_buffer("bias", bias)  # (out,) or None
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features).float()  # (tokens, in)
        x_int8, x_scale = quantize_rows(rows)
        y = torch._int_mm(x_int8, self.weight).float() * (x_scale * self.weight_scale)  # (tokens, out)
        if self.bias is not None:
            y = y + self.bias
        return y.to(x.dtype).reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


def quantize_linears(model: nn.Module, keep: tuple[str, ...] = ("qa_outputs",)) -> nn.Module:
    """Replace every nn.Linear, except those whose name contains one of `keep`, by an Int8Linear, in place.

    The QA head stays in float: it is tiny, and its two outputs are the logits every answer is read from.
    """
    for parent_name, parent in list(model.named_modules()):
        for name, child in list(parent.named_children()):
            full_name = f"{parent_name}.{name}" if parent_name else name
            if isinstance(child, nn.Linear) and not any(k in full_name for k in keep):
                setattr(parent, name, Int8Linear(child))
    return model
