"""SQuAD v1.1 exact match and F1, computed exactly as the official evaluate-v1.1.py does."""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

_PUNCTUATION = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


@dataclass(frozen=True)
class Metrics:
    exact_match: float  # percent
    f1: float  # percent
    count: int  # questions scored

    def to_dict(self) -> dict[str, float]:
        return {"exact_match": self.exact_match, "f1": self.f1}


def normalize_answer(text: str) -> str:
    """Lower-case, drop punctuation and articles, collapse whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def compute_exact(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def compute_f1(prediction: str, gold: str) -> float:
    predicted, expected = normalize_answer(prediction).split(), normalize_answer(gold).split()
    common = Counter(predicted) & Counter(expected)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(predicted), overlap / len(expected)
    return 2 * precision * recall / (precision + recall)


def best_over_golds(metric, prediction: str, golds: Iterable[str]) -> float:
    """The official script scores a prediction against its closest gold answer."""
    return max((metric(prediction, gold) for gold in golds), default=0.0)


def compute_metrics(predictions: Mapping[str, str], golds: Mapping[str, list[str]]) -> Metrics:
    """EM and F1 in percent over every question in golds; a missing prediction scores 0, as officially."""
    if not golds:
        raise ValueError("no gold answers to score against")
    exact = f1 = 0.0
    for question_id, answers in golds.items():
        if question_id not in predictions:
            continue
        exact += best_over_golds(compute_exact, predictions[question_id], answers)
        f1 += best_over_golds(compute_f1, predictions[question_id], answers)
    return Metrics(100.0 * exact / len(golds), 100.0 * f1 / len(golds), len(golds))
