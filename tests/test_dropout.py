"""Masked dropout: the rate, scaling and gradients of nn.Dropout, from a seeded generator; swapped in for training."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from qa_core.dropout import MaskedDropout, keep_mask, use_masked_dropout
from tests.conftest import tiny_bert


@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 0.9])
def test_keep_mask_keeps_one_minus_p(p: float) -> None:
    torch.manual_seed(0)
    mask = keep_mask(torch.Size([50, 97, 101]), p, torch.device("cpu"))  # an odd count: the last word is cut
    assert mask.shape == (50, 97, 101) and mask.dtype == torch.bool
    assert mask.float().mean().item() == pytest.approx(1 - p, abs=0.004)


def test_masks_differ_along_the_tensor_and_repeat_with_the_seed() -> None:
    torch.manual_seed(1)
    first = keep_mask(torch.Size([4, 1000]), 0.5, torch.device("cpu"))
    torch.manual_seed(1)
    again = keep_mask(torch.Size([4, 1000]), 0.5, torch.device("cpu"))
    assert torch.equal(first, again)
    assert not torch.equal(first[0], first[1])  # each int16 lane of a word is its own draw
    lanes = first.reshape(-1, 4).float().mean(0)  # the four lanes of every 64-bit word, each about half kept
    assert torch.all((lanes - 0.5).abs() < 0.05)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_kept_values_are_scaled_as_nn_dropout_scales_them(dtype: torch.dtype) -> None:
    x = torch.full((64, 64), 1.7, dtype=dtype)
    torch.manual_seed(0)
    ours = MaskedDropout(0.1).train()(x)
    theirs = nn.Dropout(0.1).train()(x)
    assert set(ours.unique().tolist()) == set(theirs.unique().tolist()) == {0.0, theirs.max().item()}
    assert ours.dtype == dtype


def test_gradient_is_the_mask_times_the_scale() -> None:
    torch.manual_seed(0)
    x = torch.randn(32, 48).abs().add(0.1).requires_grad_()
    y = MaskedDropout(0.2).train()(x)
    y.sum().backward()
    kept = y != 0
    assert torch.allclose(x.grad, kept.float() / 0.8)
    assert torch.allclose(y[kept], x.detach()[kept] / 0.8)


def test_eval_mode_and_p_zero_pass_the_input_through() -> None:
    x = torch.randn(3, 5)
    assert MaskedDropout(0.3).eval()(x) is x
    assert MaskedDropout(0.0).train()(x) is x
    assert torch.equal(MaskedDropout(1.0).train()(x), torch.zeros_like(x))


def test_every_nn_dropout_of_a_model_is_swapped_keeping_p_and_weights(tokenizer) -> None:
    model = tiny_bert(len(tokenizer))
    model.config.attention_probs_dropout_prob = 0.0
    rates = [m.p for m in model.modules() if type(m) is nn.Dropout]
    keys = list(model.state_dict())
    model.eval()
    ids = torch.tensor([[101, 2054, 2003, 102, 1037, 3899, 102]])
    before = model(input_ids=ids).start_logits

    assert use_masked_dropout(model) == len(rates) > 0
    assert [m.p for m in model.modules() if isinstance(m, MaskedDropout)] == rates
    assert not any(type(m) is nn.Dropout for m in model.modules())
    assert list(model.state_dict()) == keys
    assert torch.equal(model(input_ids=ids).start_logits, before)  # eval mode: no dropout at all
    assert use_masked_dropout(model) == 0  # already swapped
