"""SQuAD exact match and F1, computed exactly as the official evaluate-v1.1.py and evaluate-v2.0.py do."""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_PUNCTUATION = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


@dataclass(frozen=True)
class Metrics:
    exact_match: float  # percent
    f1: float  # percent
    count: int  # questions scored
    squad_v2: SquadV2Metrics | None = None  # the official v2.0 figures, for runs with unanswerable questions

    def to_dict(self) -> dict[str, float]:
        v2 = self.squad_v2.to_dict() if self.squad_v2 else {}
        return {"exact_match": self.exact_match, "f1": self.f1, **v2}


@dataclass(frozen=True)
class SquadV2Metrics:
    """What evaluate-v2.0.py prints; a slice is None where the script leaves its keys out."""

    exact: float  # percent, over the questions with a prediction
    f1: float
    total: int
    has_ans: tuple[float, float, int] | None = None  # (exact, f1, total) of answerable questions
    no_ans: tuple[float, float, int] | None = None  # the same for unanswerable questions
    best_exact: tuple[float, float] | None = None  # (score, null odds threshold); only with null odds
    best_f1: tuple[float, float] | None = None

    def to_dict(self) -> dict[str, float]:
        """The official key names, in the official order."""
        out: dict[str, float] = {"exact": self.exact, "f1": self.f1, "total": self.total}
        for prefix, part in (("HasAns", self.has_ans), ("NoAns", self.no_ans)):
            if part is not None:
                out.update({f"{prefix}_exact": part[0], f"{prefix}_f1": part[1], f"{prefix}_total": part[2]})
        if self.best_exact is not None and self.best_f1 is not None:
            out.update({"best_exact": self.best_exact[0], "best_exact_thresh": self.best_exact[1],
                        "best_f1": self.best_f1[0], "best_f1_thresh": self.best_f1[1]})
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> SquadV2Metrics:
        """The figures back from to_dict's keys (a run's eval_metrics.json); ValueError naming a missing or
        non-numeric figure. A slice or a best score whose keys are missing is None, as to_dict leaves it out."""
        return cls(_figure(values, "exact"), _figure(values, "f1"), int(_figure(values, "total")),
                   _slice(values, "HasAns"), _slice(values, "NoAns"), _best(values, "exact"), _best(values, "f1"))


def _figure(values: Mapping[str, Any], key: str) -> float:
    value = values.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"SQuAD 2.0 metrics: {key} must be a number, got {value!r}")
    return float(value)


def _slice(values: Mapping[str, Any], prefix: str) -> tuple[float, float, int] | None:
    """(exact, f1, total) of the HasAns or NoAns questions; None where the figures leave the slice out."""
    keys = (f"{prefix}_exact", f"{prefix}_f1", f"{prefix}_total")
    if not all(k in values for k in keys):
        return None
    return _figure(values, keys[0]), _figure(values, keys[1]), int(_figure(values, keys[2]))


def _best(values: Mapping[str, Any], name: str) -> tuple[float, float] | None:
    """(best score, its null odds threshold) of best_exact or best_f1; None where the figures have none."""
    keys = (f"best_{name}", f"best_{name}_thresh")
    if not all(k in values for k in keys):
        return None
    return _figure(values, keys[0]), _figure(values, keys[1])


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


def best_over_golds(metric: Callable[[str, str], float], prediction: str, golds: Iterable[str]) -> float:
    """The official script scores a prediction against its closest gold answer."""
    return max((metric(prediction, gold) for gold in golds), default=0.0)


def compute_metrics(predictions: Mapping[str, str], golds: Mapping[str, list[str]]) -> Metrics:
    """EM and F1 in percent over every question in golds; a missing prediction scores 0, as officially."""
    if not golds:
        raise ValueError("no gold answers to score against")
    scores = [answer_scores(predictions[k], answers) for k, answers in golds.items() if k in predictions]
    exact, f1 = sum(e for e, _ in scores), sum(f for _, f in scores)
    return Metrics(100.0 * exact / len(golds), 100.0 * f1 / len(golds), len(golds))


def answer_scores(prediction: str, golds: Sequence[str], squad_v2: bool = False) -> tuple[float, float]:
    """(EM, F1) in 0..1 of one answer against its gold answers, as the official v1.1 or v2.0 script scores it."""
    if squad_v2:
        golds = v2_golds(golds)
        return best_over_golds(compute_exact, prediction, golds), best_over_golds(compute_f1_v2, prediction, golds)
    return best_over_golds(compute_exact, prediction, golds), best_over_golds(compute_f1, prediction, golds)


def compute_f1_v2(prediction: str, gold: str) -> float:
    """v2.0 token F1: as v1.1, except that an empty answer scores 1 against an empty gold (no answer)."""
    predicted, expected = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not predicted or not expected:
        return float(predicted == expected)
    return compute_f1(prediction, gold)


def v2_golds(golds: Sequence[str]) -> list[str]:
    """Gold texts as v2.0 scores them: answers that normalize to nothing are dropped; none left means ''."""
    return [g for g in golds if normalize_answer(g)] or [""]


def raw_scores_v2(predictions: Mapping[str, str],
                  golds: Mapping[str, Sequence[str]]) -> tuple[dict[str, float], dict[str, float]]:
    """EM and F1 (0..1) of each question with a prediction, before any no-answer threshold."""
    scores = {k: answer_scores(predictions[k], answers, squad_v2=True) for k, answers in golds.items()
              if k in predictions}
    return {k: e for k, (e, _) in scores.items()}, {k: f for k, (_, f) in scores.items()}


def _mean(scores: Mapping[str, float], ids: Sequence[str]) -> float:
    return 100.0 * sum(scores[k] for k in ids) / len(ids)


def best_threshold(predictions: Mapping[str, str], scores: Mapping[str, float], na_probs: Mapping[str, float],
                   has_answer: Mapping[str, bool]) -> tuple[float, float]:
    """(best score, its null odds threshold) of evaluate-v2.0.py's sweep: start from abstaining everywhere, answer
    questions in increasing order of null odds, keep the best running total."""
    current = best = sum(1 for k in has_answer if not has_answer[k])
    threshold = 0.0
    for question_id in sorted(na_probs, key=lambda k: na_probs[k]):
        if question_id not in scores:
            continue
        current += scores[question_id] if has_answer[question_id] else -1 if predictions[question_id] else 0
        if current > best:
            best, threshold = current, na_probs[question_id]
    return 100.0 * best / len(scores), threshold


def compute_metrics_v2(predictions: Mapping[str, str], golds: Mapping[str, Sequence[str]],
                       na_probs: Mapping[str, float] | None = None, na_prob_thresh: float = 1.0) -> SquadV2Metrics:
    """evaluate-v2.0.py's figures; golds has an empty list for unanswerable questions. A question whose null odds
    (na_probs) exceed na_prob_thresh counts as abstained; best_* are searched only when na_probs is given."""
    if not golds:
        raise ValueError("no questions to score")
    missing = [k for k in golds if k not in predictions]
    if missing:
        raise ValueError(f"{len(missing)} questions have no prediction (first: {missing[0]!r}); "
                         "SQuAD 2.0 scoring needs one per question ('' for no answer)")
    odds = na_probs if na_probs is not None else {k: 0.0 for k in predictions}
    unscored = [k for k in golds if k not in odds]
    if unscored:
        raise ValueError(f"{len(unscored)} questions have no null odds (first: {unscored[0]!r})")
    has_answer = {k: bool(v) for k, v in golds.items()}
    exact_raw, f1_raw = raw_scores_v2(predictions, golds)
    exact = {k: float(not has_answer[k]) if odds[k] > na_prob_thresh else s for k, s in exact_raw.items()}
    f1 = {k: float(not has_answer[k]) if odds[k] > na_prob_thresh else s for k, s in f1_raw.items()}
    ids = list(golds)
    has_ids, no_ids = [k for k in ids if has_answer[k]], [k for k in ids if not has_answer[k]]
    searched = na_probs is not None
    return SquadV2Metrics(
        _mean(exact, ids), _mean(f1, ids), len(ids),
        (_mean(exact, has_ids), _mean(f1, has_ids), len(has_ids)) if has_ids else None,
        (_mean(exact, no_ids), _mean(f1, no_ids), len(no_ids)) if no_ids else None,
        best_threshold(predictions, exact_raw, odds, has_answer) if searched else None,
        best_threshold(predictions, f1_raw, odds, has_answer) if searched else None)
