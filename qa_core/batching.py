"""Batches of features: their order (length-grouped for training, sorted for evaluation) and padded tensors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from qa_core.attention import BF16_PRODUCTS_ATTENTION
from qa_core.config import QAConfig
from qa_core.features import Feature
from qa_core.precision import amx_cpu


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


@dataclass(frozen=True)
class BatchFormat:
    """How one model takes its batches: its tokenizer's padding ids, and whether segment ids go in at all.

    Batches are padded on the right, whatever side the tokenizer pads on: a model with absolute position embeddings
    (BERT, DeBERTa-v2) numbers a batch's columns from the first, so left padding would shift each window's positions
    by its padding and make its logits depend on its batch."""

    pad_token_id: int = 0
    pad_token_type_id: int = 0
    token_type_ids: bool = True  # qa_core.modeling.takes_token_type_ids says why a model gets them or not
    max_length: int | None = None  # the most tokens the model takes (modeling.max_positions): padding stops there


def collate(features: Sequence[Feature], batch_format: BatchFormat = BatchFormat(), pad_to: int | None = None,
            multiple_of: int = 1) -> dict[str, torch.Tensor]:
    """Pad a batch on the right to its longest window (or to pad_to), rounded up to a multiple for tensor cores (or
    AMX) but not past the model's positions."""
    length = pad_to or max(len(f.input_ids) for f in features)
    rounded = -(-length // multiple_of) * multiple_of
    length = rounded if batch_format.max_length is None else min(rounded, max(length, batch_format.max_length))
    # filled in numpy, one tensor per field at the end: a torch op per window and field cost more than the copies
    input_ids = np.full((len(features), length), batch_format.pad_token_id, dtype=np.int64)  # (batch, seq)
    token_type_ids = np.full((len(features), length), batch_format.pad_token_type_id, dtype=np.int64)  # (batch, seq)
    attention_mask = np.zeros((len(features), length), dtype=np.int64)  # (batch, seq)
    for row, f in enumerate(features):
        input_ids[row, :len(f.input_ids)] = f.input_ids
        token_type_ids[row, :len(f.input_ids)] = f.token_type_ids
        attention_mask[row, :len(f.input_ids)] = 1
    batch = {"input_ids": input_ids, "attention_mask": attention_mask}
    if batch_format.token_type_ids:
        batch["token_type_ids"] = token_type_ids
    batch["start_positions"] = np.array([f.start_position for f in features], dtype=np.int64)
    batch["end_positions"] = np.array([f.end_position for f in features], dtype=np.int64)
    return {name: torch.from_numpy(values) for name, values in batch.items()}


def padding_multiple(device: torch.device, model: torch.nn.Module | None = None) -> int:
    """Tensor cores want lengths in multiples of 8. On a CPU with AMX, where oneDNN builds a kernel for each new
    shape (keeping only a few: runtime.ONEDNN_CACHE_CAPACITY), fewer distinct lengths (multiples of 16, a tile's
    rows) save more than the padding costs (bench/results/profile-step-amx.json), and so they do for a model that
    attends in bf16 products on any CPU (attention.bf16_products_attention: two such kernels per window length,
    bench/README.md, "On an AMD Zen 5 CPU"); other CPUs and models gain nothing from it."""
    if device.type == "cuda":
        return 8
    attention = getattr(getattr(model, "config", None), "_attn_implementation", None)
    return 16 if amx_cpu() or attention == BF16_PRODUCTS_ATTENTION else 1


def unpad_logits(logits: np.ndarray, lengths: Sequence[int]) -> np.ndarray:
    """Logits of a collated batch (batch, seq), -inf past each window's end (the model scores padding too)."""
    return np.where(np.arange(logits.shape[1]) < np.asarray(lengths)[:, None], logits, -np.inf)  # (batch, seq)
