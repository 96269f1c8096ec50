"""Calibration of answer probabilities: reliability bins, ECE and temperature scaling per run."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from qa_core.error_analysis import QuestionRecord
from qa_core.postprocess import ANSWER_TOP_K, Prediction, distinct_texts
from qa_core.run_files import CALIBRATION_FILE, NULL_ODDS_FILE, run_folder

logger = logging.getLogger(__name__)

BINS = 10
LOG_TEMPERATURES = np.linspace(-3.0, 3.0, 241)  # temperatures from e^-3 to e^3 searched by the fit
MIN_CALIBRATION_QUESTIONS = 50  # answered questions a temperature needs: on a few, one answer sets it to an edge


@dataclass(frozen=True)
class ReliabilityBin:
    low: float  # probability range [low, high) of the bin (the last bin includes 1)
    high: float
    questions: int
    mean_probability: float  # 0..1; 0 for an empty bin
    exact_fraction: float  # 0..1: fraction exactly right
    mean_f1: float  # 0..1


@dataclass(frozen=True)
class Calibration:
    """A temperature fitted on one run's evaluation records, stored in the run folder as calibration.json.

    ece_after is measured on the records the temperature was fitted on (one parameter, so it overfits little).
    A SQuAD 2.0 run is fitted on its answered questions only (see answered_records). unfitted says why no
    temperature was fitted (too few answered questions, or a fit that kept sharpening to the edge of the searched
    range): then temperature is 1 and the bins and ECE after are those before.
    """

    temperature: float
    ece_before: float  # expected calibration error at temperature 1, 0..1
    ece_after: float  # at the fitted temperature
    questions: int  # the questions fitted on
    bins_before: tuple[ReliabilityBin, ...]
    bins_after: tuple[ReliabilityBin, ...]
    abstentions: int | None = None  # a SQuAD 2.0 run's, left out; None: a file from before they were left out
    unfitted: str | None = None  # why no temperature was fitted; None: fitted


def answered_records(records: Sequence[QuestionRecord]) -> list[QuestionRecord]:
    """The records whose answer probability is one of an answer given: all of a SQuAD v1.1 run's, a SQuAD 2.0
    run's answered ones. An abstention carries its best span's probability, of a span it did not give, while its
    score (100 on an unanswerable question) is that of saying 'no answer': the two do not belong on one scale."""
    return [r for r in records if not r.abstained]


def probability_matrix(records: Sequence[QuestionRecord]) -> np.ndarray:
    """(questions, top-k + 1): the stored top-k probabilities, zero-padded, then the remainder 1 - sum."""
    width = max((len(r.alternatives) for r in records), default=0)
    matrix = np.zeros((len(records), width + 1))  # (questions, k + 1)
    for row, record in enumerate(records):
        matrix[row, :len(record.alternatives)] = [p for _, p in record.alternatives]
    matrix[:, -1] = np.clip(1.0 - matrix[:, :-1].sum(axis=1), 0.0, 1.0)
    return matrix


def scale_probabilities(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Temperature-scaled probabilities along the last axis: p_i ∝ p_i^(1/T), since p = softmax(score).

    The stored probabilities are a softmax over the n-best spans, of which only the top k are kept; the
    remaining mass (1 - sum of the top k) is treated as one more alternative, so T = 1 changes nothing and the
    scaled top-k probabilities still sum to at most 1. Zeros (padding, or an empty remainder) stay zero.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    with np.errstate(divide="ignore"):
        logs = np.log(probabilities) / temperature
    logs = logs - logs.max(axis=-1, keepdims=True)
    scaled = np.exp(logs)
    return scaled / scaled.sum(axis=-1, keepdims=True)


def confidences(records: Sequence[QuestionRecord], temperature: float = 1.0) -> np.ndarray:
    """(questions,) probability of each predicted answer (the first alternative); 0 when there is none."""
    if not records:
        return np.zeros(0)
    matrix = probability_matrix(records)
    if matrix.shape[1] == 1:
        return np.zeros(len(records))
    return scale_probabilities(matrix, temperature)[:, 0]  # a row without alternatives is all remainder: 0


def reliability_bins(confidence: np.ndarray, exact: np.ndarray, f1: np.ndarray,
                     bins: int = BINS) -> tuple[ReliabilityBin, ...]:
    """Equal-width probability bins; exact and f1 are per question in 0..1."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)  # (questions,)
    counts = np.bincount(index, minlength=bins)
    means = [np.bincount(index, weights=values, minlength=bins) / np.maximum(counts, 1)
             for values in (confidence, exact, f1)]
    return tuple(ReliabilityBin(float(edges[b]), float(edges[b + 1]), int(counts[b]), float(means[0][b]),
                                float(means[1][b]), float(means[2][b])) for b in range(bins))


def expected_calibration_error(bins: Sequence[ReliabilityBin]) -> float:
    """Sum over bins of (share of questions) x |fraction exactly right - mean probability|."""
    total = sum(b.questions for b in bins)
    if total == 0:
        return 0.0
    return sum(b.questions / total * abs(b.exact_fraction - b.mean_probability) for b in bins)


def record_bins(records: Sequence[QuestionRecord], temperature: float = 1.0,
                bins: int = BINS) -> tuple[ReliabilityBin, ...]:
    """The reliability bins of a run's records, with probabilities scaled by temperature."""
    exact, f1 = outcomes(records)
    return reliability_bins(confidences(records, temperature), exact, f1, bins)


def fit_temperature(records: Sequence[QuestionRecord]) -> float:
    """The temperature minimising the log loss of 'the answer is exactly right' given its probability.

    A grid search over log T, so the fit is deterministic and needs no optimiser.
    """
    if not records:
        raise ValueError("no evaluation records to fit a temperature on")
    matrix = probability_matrix(records)
    exact, _ = outcomes(records)
    losses = [_log_loss(scale_probabilities(matrix, float(np.exp(t)))[:, 0], exact) for t in LOG_TEMPERATURES]
    return float(np.exp(LOG_TEMPERATURES[int(np.argmin(losses))]))


def _log_loss(probability: np.ndarray, outcome: np.ndarray) -> float:
    probability = np.clip(probability, 1e-7, 1 - 1e-7)
    return float(-(outcome * np.log(probability) + (1 - outcome) * np.log(1 - probability)).mean())


def fit_calibration(records: Sequence[QuestionRecord], bins: int = BINS) -> Calibration:
    """The temperature and reliability bins of a run's answered questions; T = 1 (the probabilities as the model
    gives them) where judged_calibration finds the fit not to be applied."""
    if not records:
        raise ValueError("no evaluation records to fit a temperature on")
    answers = answered_records(records)
    temperature = fit_temperature(answers) if len(answers) >= MIN_CALIBRATION_QUESTIONS else 1.0
    before, after = record_bins(answers, 1.0, bins), record_bins(answers, temperature, bins)
    fitted = Calibration(temperature, expected_calibration_error(before), expected_calibration_error(after),
                         len(answers), before, after, len(records) - len(answers))
    judged = judged_calibration(fitted)
    if judged.unfitted is not None:
        logger.warning("no temperature fitted, probabilities kept as the model gives them: %s", judged.unfitted)
    return judged


def judged_calibration(calibration: Calibration) -> Calibration:
    """The calibration, or unfitted (T = 1) with the reason where its temperature is not to be applied."""
    why = unfitted_reason(calibration)
    return calibration if why is None else unfitted(calibration, why)


def unfitted_reason(calibration: Calibration) -> str | None:
    """Why a fitted temperature is not to be applied; None when it is.

    Fewer than MIN_CALIBRATION_QUESTIONS answered (a SQuAD 2.0 run abstaining almost everywhere): one answer sets
    it. A fit at the low end of LOG_TEMPERATURES: sharpening kept helping (every answer right, say), the records
    do not pin a temperature down, and the edge would show every answer as certain; the high end stays, since a
    confidently wrong model's log loss still falls there. A fit whose ECE is above T = 1's on the very questions it
    was fitted on: the log loss fitted is not the error shown, and "calibrated" must not read worse than none.
    """
    questions, temperature = calibration.questions, calibration.temperature
    if questions < MIN_CALIBRATION_QUESTIONS:
        return (f"too few evaluation questions to calibrate ({questions} answered, "
                f"{MIN_CALIBRATION_QUESTIONS} needed)")
    if np.isclose(np.log(temperature), LOG_TEMPERATURES[0]):
        return (f"the temperature fit kept sharpening to the edge of its search range (T = {temperature:.3g}), so "
                f"these evaluation questions do not settle a temperature")
    if calibration.ece_after > calibration.ece_before:
        return (f"scaling at the fitted temperature (T = {temperature:.3g}) did not lower the calibration error "
                f"on these evaluation questions (ECE {calibration.ece_before:.3f} -> {calibration.ece_after:.3f})")
    return None


def unfitted(calibration: Calibration, why: str) -> Calibration:
    """The calibration with no temperature applied: T = 1, the bins and ECE after those before."""
    return replace(calibration, temperature=1.0, ece_after=calibration.ece_before,
                   bins_after=calibration.bins_before, unfitted=why)


def current_calibration(stored: Calibration | None, records: Sequence[QuestionRecord]) -> Calibration:
    """The stored calibration, unless there is none or it was fitted with a SQuAD 2.0 run's abstentions mixed in
    (a file from before they were left out): then one fitted on the records here."""
    if stored is not None and (stored.abstentions is not None or not any(r.abstained for r in records)):
        return stored
    return fit_calibration(records)


def write_calibration(run: str | Path, calibration: Calibration) -> Path:
    path = Path(run) / CALIBRATION_FILE
    path.write_text(json.dumps(asdict(calibration), indent=1), encoding="utf-8")
    return path


def read_calibration(run: str | Path) -> Calibration | None:
    """The run's stored calibration, or None when it has none."""
    path = Path(run) / CALIBRATION_FILE
    if not path.exists():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        stored = Calibration(raw["temperature"], raw["ece_before"], raw["ece_after"], raw["questions"],
                             tuple(ReliabilityBin(**b) for b in raw["bins_before"]),
                             tuple(ReliabilityBin(**b) for b in raw["bins_after"]), raw.get("abstentions"),
                             raw.get("unfitted"))
        # A file from before a rule of unfitted_reason is judged here, as the fit now would.
        return stored if stored.unfitted is not None else judged_calibration(stored)
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: not a calibration file ({err})") from None


def run_calibration(source: str | Path | None) -> Calibration | None:
    """The calibration of the run a model folder belongs to (a run's model/, or an older run), if it has one."""
    return read_calibration(run_folder(Path(source))) if source and Path(source).is_dir() else None


def rescale_prediction(prediction: Prediction, temperature: float, texts: int = ANSWER_TOP_K) -> Prediction:
    """The prediction with its alternatives' probabilities temperature-scaled (see scale_probabilities).

    The vector scaled is the one a question record keeps and the temperature was fitted on: the spans of the
    first `texts` distinct texts (each at its best occurrence) and the rest of the mass. Any other span (a text's
    second occurrence, or a span after them) is part of that rest, and gets its share of the rest's scaled mass
    by the same rule, p^(1/T) / Z, so that every span has the probability the answer that shows it gives.
    """
    if temperature == 1.0 or not prediction.alternatives:
        return prediction
    stored = np.array([s.probability for s in prediction.alternatives])
    fitted = {id(s) for s in distinct_texts(prediction.alternatives)[:texts]}
    head = np.array([id(s) in fitted for s in prediction.alternatives])  # (spans,)
    rest = max(0.0, 1.0 - stored[head].sum())
    scaled = scale_probabilities(np.append(stored[head], rest), temperature)
    probabilities = np.zeros_like(stored)
    probabilities[head] = scaled[:-1]
    if rest > 0:
        probabilities[~head] = scaled[-1] * (stored[~head] / rest) ** (1.0 / temperature)
    return replace(prediction, alternatives=tuple(replace(s, probability=float(p))
                                                  for s, p in zip(prediction.alternatives, probabilities)))


def calibrate_prediction(prediction: Prediction, source: str) -> tuple[Prediction, float | None, str | None]:
    """The prediction with probabilities at its run's fitted temperature (the Ask tab, /answer and predict alike),
    that temperature (None: the run has no calibration), and why none was fitted where the run has a calibration
    without one (too few evaluation questions). source: the loaded model's."""
    temperature, uncalibrated = answer_calibration(source)
    scaled = prediction if temperature is None else rescale_prediction(prediction, temperature)
    return scaled, temperature, uncalibrated


def outcomes(records: Sequence[QuestionRecord]) -> tuple[np.ndarray, np.ndarray]:
    """(questions,) exactly right and F1, each in 0..1."""
    return (np.array([r.exact_match / 100 for r in records], dtype=float),
            np.array([r.f1 / 100 for r in records], dtype=float))


def answer_calibration(source: str) -> tuple[float | None, str | None]:
    """The temperature of a run's calibration.json and, where the run has one but no temperature was fitted, why
    (to say beside the answer). None (probabilities as the model gives them) without a usable one (a fitted
    temperature may be exactly 1), or with a SQuAD 2.0 run's file from before abstentions were left out, checked
    by the null odds file beside it rather than by reading every record at every answer."""
    try:
        calibration = run_calibration(source)
    except (ValueError, OSError) as err:  # a broken calibration file must not stop answering
        logger.warning("answering with uncalibrated probabilities: %s", err)
        return None, None
    if calibration is None:
        return None, None
    if calibration.unfitted is not None:
        return None, calibration.unfitted
    if calibration.abstentions is None and (run_folder(Path(source)) / NULL_ODDS_FILE).exists():
        logger.warning("answering with uncalibrated probabilities: the calibration of %s was fitted with its "
                       "abstentions mixed in (an older version); evaluate the run again to refit it", source)
        return None, None
    return calibration.temperature, None
