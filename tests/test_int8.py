"""Int8 linear layers: close to the float layers they replace, and a quantized BERT still reads the same logits."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from qa_core.int8 import Int8Linear, logit_error, quantize_linears, quantize_rows
from qa_core.modeling import LoadedModel


def test_rows_are_quantized_with_their_own_scale() -> None:
    x = torch.tensor([[0.5, -1.0, 0.25], [100.0, 50.0, -25.0]])
    q, scale = quantize_rows(x)
    assert q.dtype == torch.int8 and q.abs().max() == 127
    assert torch.allclose(q.float() * scale, x, rtol=0.01, atol=0.005)


def test_int8_linear_matches_the_float_layer() -> None:
    torch.manual_seed(0)
    for bias in (True, False):
        linear = nn.Linear(64, 48, bias=bias)
        x = torch.randn(2, 5, 64)  # (batch, seq, hidden)
        expected, got = linear(x), Int8Linear(linear)(x)
        assert got.shape == expected.shape and got.dtype == expected.dtype
        assert (got - expected).norm() / expected.norm() < 0.02


def test_every_linear_but_the_qa_head_is_quantized_and_the_logits_hold(tiny_loaded: LoadedModel) -> None:
    model = tiny_loaded.model.eval()
    quantized = quantize_linears(copy.deepcopy(model))
    kinds = {name: type(module) for name, module in quantized.named_modules()}
    assert kinds["qa_outputs"] is nn.Linear
    assert not [name for name, kind in kinds.items() if kind is nn.Linear and name != "qa_outputs"]
    assert sum(kind is Int8Linear for kind in kinds.values()) == 2 * 6  # Q, K, V, attention out, FFN up and down
    input_ids = torch.randint(1000, 5000, (2, 40))  # (batch, seq)
    with torch.inference_mode():
        expected, got = model(input_ids=input_ids), quantized(input_ids=input_ids)
    for name in ("start_logits", "end_logits"):
        a, b = getattr(expected, name), getattr(got, name)  # (batch, seq)
        assert (a - b).norm() / a.norm() < 0.05, name


def test_logit_error_is_relative_to_the_spread_and_skips_padding() -> None:
    reference = np.array([1.0, 3.0, -np.inf])  # spread around the mean: [-1, 1], norm sqrt(2)
    assert logit_error(reference, reference) == 0.0
    assert logit_error(reference, np.array([1.0, 2.0, -np.inf])) == pytest.approx(1 / np.sqrt(2))
    assert logit_error(reference + 100, np.array([101.0, 102.0, -np.inf])) == pytest.approx(1 / np.sqrt(2))
    assert logit_error(np.array([2.0, 2.0]), np.array([2.0, 2.0])) == 0.0  # no spread, no difference
