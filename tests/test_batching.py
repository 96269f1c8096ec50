"""Batch orders: length-grouped training batches and sorted evaluation batches."""

from __future__ import annotations

from collections import Counter

from qa_core.batching import length_grouped_batches, random_batches, sorted_batches


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
