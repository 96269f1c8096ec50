"""Batches: length-grouped training orders, sorted evaluation orders, and padding."""

from __future__ import annotations

from collections import Counter

import torch

from qa_core.attention import attend_in_matrix_products
from qa_core.batching import collate, length_grouped_batches, padding_multiple, random_batches, sorted_batches
from qa_core.precision import amx_cpu
from qa_core.data import Answer, Example
from qa_core.features import build_features


def test_length_grouped_batches_cover_everything_once_and_cut_padding() -> None:
    lengths = [(i * 37) % 200 + 20 for i in range(1000)]
    batches = length_grouped_batches(lengths, 16, seed=1)
    assert Counter(i for b in batches for i in b) == Counter(range(1000))
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    random_order = [list(range(1000))[b:b + 16] for b in range(0, 1000, 16)]
    padded_random = sum(len(b) * max(lengths[i] for i in b) for b in random_order)
    assert padded < 0.8 * padded_random
    assert batches == length_grouped_batches(lengths, 16, seed=1)  # same seed, same order (resume, DDP)
    assert batches != length_grouped_batches(lengths, 16, seed=2)


def test_sorted_batches() -> None:
    assert sorted_batches([3, 9, 5], 2) == [[1, 2], [0]]


def test_random_batches_are_a_seeded_permutation() -> None:
    batches = random_batches(10, 4, seed=3)
    assert [len(b) for b in batches] == [4, 4, 2] and sorted(i for b in batches for i in b) == list(range(10))
    assert batches == random_batches(10, 4, seed=3)


def test_collate_pads_to_the_longest_window(tokenizer) -> None:
    long_context = " ".join(f"w{i}" for i in range(400))
    examples = [Example("a", "which word?", "short one", (Answer("one", 6),)),
                Example("b", "which word?", long_context, (Answer("w3", 9),))]
    features = build_features(examples, tokenizer, 64, 16, 16, training=False).features
    batch = collate(features[:2])
    longest = max(len(f.input_ids) for f in features[:2])
    assert batch["input_ids"].shape == (2, longest)
    assert batch["attention_mask"].sum().item() == sum(len(f.input_ids) for f in features[:2])
    assert collate(features[:1], pad_to=64, multiple_of=8)["input_ids"].shape == (1, 64)
    assert all(t.dtype == torch.long for t in batch.values())
    assert batch["input_ids"][1, :len(features[1].input_ids)].tolist() == list(features[1].input_ids)


def test_a_model_attending_in_bf16_products_pads_to_16_on_a_cpu(tiny_loaded) -> None:
    """oneDNN builds a bf16 product kernel per shape and keeps a few: fewer window lengths reuse them."""
    cpu = torch.device("cpu")
    assert padding_multiple(cpu, tiny_loaded.model) == (16 if amx_cpu() else 1)
    assert padding_multiple(torch.device("cuda"), tiny_loaded.model) == 8
    attend_in_matrix_products(tiny_loaded.model, bf16=True)
    assert padding_multiple(cpu, tiny_loaded.model) == 16


def test_logits_past_a_window_s_end_are_minus_infinity():
    """Found in review: right-padded batches kept the model's logits for the padding after a shorter window, where
    run_model says -inf (the int8 copy's acceptance check compared them as the window's own)."""
    import numpy as np

    from qa_core.batching import unpad_logits

    right = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype=np.float32)  # (batch, seq): the second window is 2 long
    assert unpad_logits(right, [3, 2]).tolist() == [[1.0, 2.0, 3.0], [4.0, 5.0, -np.inf]]
