"""Coverage curves: how many questions a run answers, and how well, when it answers only above a confidence."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from qa_core.calibration import answered_records, confidences, outcomes
from qa_core.error_analysis import QuestionRecord

CURVE_POINTS = 200  # thresholds of a coverage curve at most: enough for a smooth line, few enough to send


@dataclass(frozen=True)
class CoveragePoint:
    threshold: float  # answer only when the answer probability is >= threshold
    answered: int
    coverage: float  # 0..1: fraction of questions answered
    exact_match: float  # percent, over the answered questions (0 when none)
    f1: float  # percent, over the answered questions


def curve_thresholds(confidence: np.ndarray, points: int = CURVE_POINTS) -> np.ndarray:
    """Thresholds at the confidences themselves, ascending, at most `points` of them spread by rank: each one a
    coverage a threshold can reach. A fixed grid of thresholds skipped over confidences that all fall in one
    narrow band: every step answered all the questions or none."""
    distinct = np.unique(confidence)
    if len(distinct) <= points:
        return distinct
    return np.unique(np.quantile(confidence, np.linspace(0.0, 1.0, points), method="inverted_cdf"))


def coverage_curve(records: Sequence[QuestionRecord], temperature: float = 1.0,
                   thresholds: np.ndarray | None = None) -> tuple[CoveragePoint, ...]:
    """'Answer only above confidence t': coverage and EM/F1 over the answered questions, for each t (by default
    at the questions' own confidences, see curve_thresholds). A SQuAD 2.0 run's abstentions count among the
    questions but are never answered: they have no answer probability to compare with t."""
    answers = answered_records(records)
    confidence = confidences(answers, temperature)
    thresholds = curve_thresholds(confidence) if thresholds is None else np.asarray(thresholds, dtype=float)
    exact, f1 = outcomes(answers)
    order = np.argsort(-confidence, kind="stable")
    answered = np.searchsorted(-confidence[order], -thresholds, side="right")  # (thresholds,) count >= t
    exact_sums, f1_sums = (np.concatenate(([0.0], np.cumsum(v[order]))) for v in (exact, f1))
    total = max(len(records), 1)
    return tuple(CoveragePoint(float(t), int(n), float(n / total), float(100 * exact_sums[n] / max(n, 1)),
                               float(100 * f1_sums[n] / max(n, 1))) for t, n in zip(thresholds, answered))


def coverage_at(records: Sequence[QuestionRecord], threshold: float, temperature: float = 1.0) -> CoveragePoint:
    """One point of the coverage curve: the threshold picker's readout."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    return coverage_curve(records, temperature, np.array([threshold]))[0]
