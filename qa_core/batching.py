"""Batch orders over features: length-grouped and shuffled for training, sorted by length for evaluation."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from qa_core.config import QAConfig
from qa_core.features import Feature


def length_grouped_batches(lengths: Sequence[int], batch_size: int, seed: int,
                           mega_batches: int = 50) -> list[list[int]]:
    """Shuffle, sort by length inside chunks of mega_batches batches, then shuffle the batches (as HF's sampler)."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(lengths), generator=generator).tolist()
    chunk = batch_size * mega_batches
    batches: list[list[int]] = []
    for begin in range(0, len(order), chunk):
        ranked = sorted(order[begin:begin + chunk], key=lambda i: -lengths[i])
        batches.extend(ranked[b:b + batch_size] for b in range(0, len(ranked), batch_size))
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def training_batches(features: Sequence[Feature], config: QAConfig, epoch: int) -> list[list[int]]:
    """The same batch order on every rank for a given seed and epoch, so resume and DDP sharding agree."""
    seed = config.seed + epoch
    if config.group_by_length and not config.pad_to_max_length:
        return length_grouped_batches([len(f.input_ids) for f in features], config.per_device_train_batch_size, seed)
    return random_batches(len(features), config.per_device_train_batch_size, seed)


def random_batches(count: int, batch_size: int, seed: int) -> list[list[int]]:
    """Plain shuffled batches, as transformers' Trainer draws them without group_by_length."""
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed)).tolist()
    return [order[b:b + batch_size] for b in range(0, count, batch_size)]


def sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Evaluation batches of similar length; order does not matter because outputs are indexed by feature."""
    ranked = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [ranked[b:b + batch_size] for b in range(0, len(ranked), batch_size)]
