"""Turn start/end logits of every window into answer spans cut from the original context."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from qa_core.data import Example
from qa_core.features import Feature


@dataclass(frozen=True)
class Span:
    start: int  # character offset into the context
    end: int  # exclusive character offset
    text: str
    score: float  # start logit + end logit
    probability: float = 0.0  # softmax of the score over the n-best spans


@dataclass(frozen=True)
class Prediction:
    example_id: str
    text: str
    span: tuple[int, int] | None  # None when no valid span exists
    score: float
    alternatives: tuple[Span, ...]  # n-best spans, best first (the first is the answer)


def window_candidates(offsets: Sequence[tuple[int, int] | None], start_logits: np.ndarray, end_logits: np.ndarray,
                      n_best_size: int, max_answer_length: int) -> list[tuple[int, int, float]]:
    """Best (start char, end char, score) spans of one window: top-k starts x top-k ends, end >= start."""
    in_context = np.array([o is not None for o in offsets])  # (seq,)
    if not in_context.any():
        return []
    start_logits = np.where(in_context, start_logits[:len(offsets)], -np.inf)  # (seq,)
    end_logits = np.where(in_context, end_logits[:len(offsets)], -np.inf)  # (seq,)
    k = min(n_best_size, int(in_context.sum()))
    starts = np.argpartition(-start_logits, k - 1)[:k]  # (k,)
    ends = np.argpartition(-end_logits, k - 1)[:k]  # (k,)
    scores = start_logits[starts][:, None] + end_logits[ends][None, :]  # (k, k)
    length = ends[None, :] - starts[:, None]  # (k, k)
    scores = np.where((length >= 0) & (length < max_answer_length), scores, -np.inf)
    candidates = []
    for flat in np.argsort(-scores, axis=None)[:n_best_size]:
        s, e = np.unravel_index(flat, scores.shape)
        if np.isfinite(scores[s, e]):
            candidates.append((offsets[starts[s]][0], offsets[ends[e]][1], float(scores[s, e])))
    return candidates


def best_spans(context: str, windows: Sequence[tuple[Sequence[tuple[int, int] | None], np.ndarray, np.ndarray]],
               n_best_size: int = 20, max_answer_length: int = 30) -> list[Span]:
    """n-best spans over all windows of one example; a span seen in two windows keeps its best score."""
    best: dict[tuple[int, int], float] = {}
    for offsets, start_logits, end_logits in windows:
        for start, end, score in window_candidates(offsets, start_logits, end_logits, n_best_size, max_answer_length):
            if score > best.get((start, end), -np.inf):
                best[(start, end)] = score
    ranked = sorted(best.items(), key=lambda item: -item[1])[:n_best_size]
    if not ranked:
        return []
    scores = np.array([score for _, score in ranked])
    probabilities = np.exp(scores - scores.max())
    probabilities /= probabilities.sum()
    return [Span(s, e, context[s:e], score, float(p)) for ((s, e), score), p in zip(ranked, probabilities)]


def predict_example(example: Example, windows: Sequence[tuple[Feature, np.ndarray, np.ndarray]],
                    n_best_size: int = 20, max_answer_length: int = 30) -> Prediction:
    spans = best_spans(example.context, [(f.offsets, s, e) for f, s, e in windows], n_best_size, max_answer_length)
    if not spans:
        return Prediction(example.example_id, "", None, float("-inf"), ())
    top = spans[0]
    return Prediction(example.example_id, top.text, (top.start, top.end), top.score, tuple(spans))


def postprocess_predictions(examples: Sequence[Example], features: Sequence[Feature], start_logits: np.ndarray,
                            end_logits: np.ndarray, n_best_size: int = 20,
                            max_answer_length: int = 30) -> dict[str, Prediction]:
    """One Prediction per example from the logits of all its features; logits are (features, seq) arrays."""
    assert len(features) == len(start_logits) == len(end_logits), "one logits row per feature"
    grouped: list[list[tuple[Feature, np.ndarray, np.ndarray]]] = [[] for _ in examples]
    for feature, s, e in zip(features, start_logits, end_logits):
        grouped[feature.example_index].append((feature, s, e))
    return {example.example_id: predict_example(example, windows, n_best_size, max_answer_length)
            for example, windows in zip(examples, grouped)}
