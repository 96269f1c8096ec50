"""Attention on CPUs: the same attention as SDPA's, forward and backward, in bf16 matrix products."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from qa_core.attention import (BF16_PRODUCTS_ATTENTION, CPU_BF16_ATTENTION, additive_mask, attend_in_matrix_products,
                               attention_for_bf16, bf16_products_attention, cpu_bf16_attention, sdpa_in_fp32)
from qa_core.modeling import load_model

BATCH, HEADS, SEQ, HEAD_DIM = 2, 3, 12, 8


def attention_inputs(dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, ...]:
    """query, key, value (batch, heads, seq, head_dim) needing gradients, and SDPA's bool mask with the second
    window padded after 9 tokens (batch, 1, seq, seq)."""
    torch.manual_seed(0)
    qkv = [torch.randn(BATCH, HEADS, SEQ, HEAD_DIM, dtype=dtype, requires_grad=True) for _ in range(3)]
    mask = torch.ones(BATCH, 1, SEQ, SEQ, dtype=torch.bool)
    mask[1, :, :, 9:] = False
    return (*qkv, mask)


def sdpa_reference(query, key, value, mask) -> torch.Tensor:
    return F.scaled_dot_product_attention(query, key, value, attn_mask=mask).transpose(1, 2)  # (batch, seq, ...)


def test_it_attends_like_sdpa_forward_and_backward() -> None:
    query, key, value, mask = attention_inputs()
    expected = sdpa_reference(query, key, value, mask)
    expected.square().sum().backward()
    expected_grads = [t.grad.clone() for t in (query, key, value)]
    for t in (query, key, value):
        t.grad = None
    got, weights = cpu_bf16_attention(nn.Module(), query, key, value, mask)
    got.square().sum().backward()
    assert weights is None and got.shape == (BATCH, SEQ, HEADS, HEAD_DIM)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)  # in fp32: the same attention
    for t, grad in zip((query, key, value), expected_grads):
        torch.testing.assert_close(t.grad, grad, rtol=1e-4, atol=1e-4)


def test_under_bf16_autocast_it_stays_close_to_fp32() -> None:
    query, key, value, mask = attention_inputs()
    expected = sdpa_reference(query, key, value, mask)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got, _ = cpu_bf16_attention(nn.Module(), query.bfloat16(), key.bfloat16(), value.bfloat16(), mask)
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), expected, rtol=0.05, atol=0.05)


def test_without_gradients_and_for_causal_models_it_is_the_fused_kernel_in_fp32() -> None:
    query, key, value, mask = attention_inputs()
    with torch.no_grad():
        got, _ = cpu_bf16_attention(nn.Module(), query, key, value, mask)
        expected, _ = sdpa_in_fp32(nn.Module(), query, key, value, mask)
    assert torch.equal(got, expected)
    causal = nn.Module()
    causal.is_causal = True
    got, _ = cpu_bf16_attention(causal, query, key, value, None)  # no mask: SDPA applies the causal one
    expected = F.scaled_dot_product_attention(query, key, value, is_causal=True).transpose(1, 2)
    torch.testing.assert_close(got, expected)


def test_a_query_with_nothing_to_attend_to_gets_no_nan() -> None:
    query, key, value, mask = attention_inputs()
    mask[0, :, 3, :] = False
    got, _ = cpu_bf16_attention(nn.Module(), query, key, value, mask)
    assert torch.isfinite(got).all()


def test_masks_become_additive_biases() -> None:
    mask = torch.tensor([[True, False]])
    bias = additive_mask(mask, torch.bfloat16)
    assert bias.dtype == torch.bfloat16 and bias[0, 0] == 0 and bias[0, 1] == torch.finfo(torch.bfloat16).min
    already = torch.tensor([[0.0, -1e4]])
    assert torch.equal(additive_mask(already, torch.float32), already)


def test_attention_dropout_is_applied() -> None:
    query, key, value, mask = attention_inputs()
    plain, _ = cpu_bf16_attention(nn.Module(), query, key, value, mask, dropout=0.0)
    torch.manual_seed(1)
    dropped, _ = cpu_bf16_attention(nn.Module(), query, key, value, mask, dropout=0.5)
    assert not torch.allclose(plain, dropped)


def test_a_bf16_cpu_model_switches_and_saves_as_loaded(tiny_model_dir: Path, tmp_path: Path) -> None:
    loaded = load_model(str(tiny_model_dir))
    inputs = {"input_ids": torch.randint(5, 90, (2, 24)), "attention_mask": torch.ones(2, 24, dtype=torch.long)}
    inputs["attention_mask"][1, 20:] = 0
    before = loaded.model(**inputs).start_logits
    assert not attention_for_bf16(loaded.model, torch.device("cpu"), bf16=False)
    assert attention_for_bf16(loaded.model, torch.device("cpu"), bf16=True)
    assert loaded.model.config._attn_implementation == CPU_BF16_ATTENTION
    after = loaded.model(**inputs).start_logits  # fp32 in, with gradients: the matrix-product attention
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = loaded.model(**inputs).start_logits
    assert mixed.dtype == torch.bfloat16 and torch.allclose(mixed.float(), before, atol=0.1)
    mixed.float().sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in loaded.model.parameters() if p.grad is not None)
    loaded.model.save_pretrained(tmp_path / "saved")  # the saved model loads anywhere, registration or not
    assert CPU_BF16_ATTENTION not in (tmp_path / "saved" / "config.json").read_text()


@pytest.mark.parametrize("device", ["cuda", "meta"])
def test_other_devices_keep_their_attention(tiny_model_dir: Path, device: str) -> None:
    loaded = load_model(str(tiny_model_dir))
    assert not attention_for_bf16(loaded.model, torch.device(device), bf16=True)
    assert loaded.model.config._attn_implementation == "sdpa"


def test_an_inference_copy_attends_in_bf16_products_close_to_sdpa() -> None:
    query, key, value, mask = attention_inputs()
    expected = sdpa_reference(query, key, value, mask)
    with torch.inference_mode():
        got, weights = bf16_products_attention(nn.Module(), query, key, value, mask)
    assert weights is None and got.dtype == torch.float32 and got.shape == (BATCH, SEQ, HEADS, HEAD_DIM)
    torch.testing.assert_close(got, expected, rtol=0.02, atol=0.02)  # bf16 keeps 8 bits of each product's inputs


@pytest.mark.parametrize("bf16", [True, False])
def test_a_copy_switches_to_matrix_products_with_or_without_bf16(tiny_model_dir: Path, bf16: bool) -> None:
    loaded = load_model(str(tiny_model_dir))
    inputs = {"input_ids": torch.randint(5, 90, (2, 24)), "attention_mask": torch.ones(2, 24, dtype=torch.long)}
    inputs["attention_mask"][1, 20:] = 0
    with torch.inference_mode():
        before = loaded.model(**inputs).start_logits
        assert attend_in_matrix_products(loaded.model, bf16=bf16)
        after = loaded.model(**inputs).start_logits
    assert loaded.model.config._attn_implementation == (BF16_PRODUCTS_ATTENTION if bf16 else "eager")
    torch.testing.assert_close(after, before, rtol=0.02, atol=0.02)
    assert not attend_in_matrix_products(loaded.model, bf16=bf16)  # no longer on SDPA: left as it is
