"""Turn start/end logits of every window into answer spans cut from the original context."""

from __future__ import annotations

import math
import sys
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from qa_core.config import QAConfig
from qa_core.data import Example

if TYPE_CHECKING:  # types only: features imports transformers, which readers of records never need
    from qa_core.features import Feature

# A "word" longer than this is not a word (a hash, a run of digits): its span keeps the token boundary.
MAX_WORD_CHARS = 64
# Scripts written without spaces between words: each character counts as a word of its own, so snapping never
# grows a span over a whole sentence of Chinese, Japanese or Thai.
_UNSPACED_SCRIPTS = ((0x0E00, 0x0EFF), (0x1000, 0x109F), (0x1780, 0x17FF), (0x3040, 0x30FF), (0x31F0, 0x31FF),
                     (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0xFF66, 0xFF9F), (0x20000, 0x3FFFF))
_NUMBER_SEPARATORS = ",."
# Distinct texts an answer lists: the Ask tab's top answers, predict's alternatives, and those a question record
# keeps (error_analysis), on which a run's temperature is fitted; an answer's probabilities are scaled as one
# vector at that temperature (calibration.rescale_prediction), so what is fitted and what is shown must be the same.
ANSWER_TOP_K = 5


@dataclass(frozen=True)
class SpanSearch:
    """How spans are chosen; SpanSearch.from_config reads it from a QAConfig, whose defaults are these."""

    n_best_size: int = QAConfig.n_best_size  # start and end candidates per window, and spans kept per example
    max_answer_length: int = QAConfig.max_answer_length  # tokens
    whole_words: bool = QAConfig.whole_word_spans  # snap span borders to word boundaries of the context
    null_threshold: float | None = None  # SQuAD 2.0: abstain when null score - best span score > this; None: never

    @classmethod
    def from_config(cls, config: QAConfig, top_k: int = 0) -> SpanSearch:
        null = config.null_score_diff_threshold if config.version_2_with_negative else None
        return cls(max(config.n_best_size, top_k), config.max_answer_length, config.whole_word_spans, null)


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
    text: str  # "" when no valid span exists, or when a SQuAD 2.0 search abstains
    span: tuple[int, int] | None  # None when text is ""
    score: float  # score of the answer: the best span's, or the null score when abstaining
    alternatives: tuple[Span, ...]  # n-best spans, best first; kept when abstaining
    null_score: float | None = None  # SQuAD 2.0 only: start + end logit of CLS, lowest over the windows

    @property
    def abstained(self) -> bool:
        return self.null_score is not None and self.span is None

    @property
    def null_odds(self) -> float | None:
        """Null score minus the best span's score (what the threshold is compared with); None outside SQuAD 2.0."""
        if self.null_score is None:
            return None
        return self.null_score - self.alternatives[0].score if self.alternatives else math.inf


def window_candidates(offsets: Sequence[tuple[int, int] | None], start_logits: np.ndarray, end_logits: np.ndarray,
                      n_best_size: int, max_answer_length: int) -> list[tuple[int, int, float]]:
    """Best (start char, end char, score) spans of one window: top-k starts x top-k ends, end >= start."""
    spans = span_array(offsets)  # (seq, 2)
    in_context = spans[:, 0] >= 0  # (seq,)
    if not in_context.any():
        return []
    start_logits = np.where(in_context, start_logits[:len(spans)], -np.inf)  # (seq,)
    end_logits = np.where(in_context, end_logits[:len(spans)], -np.inf)  # (seq,)
    k = min(n_best_size, int(in_context.sum()))
    starts = np.argpartition(-start_logits, k - 1)[:k]  # (k,)
    ends = np.argpartition(-end_logits, k - 1)[:k]  # (k,)
    scores = start_logits[starts][:, None] + end_logits[ends][None, :]  # (k, k)
    length = ends[None, :] - starts[:, None]  # (k, k)
    scores = np.where((length >= 0) & (length < max_answer_length), scores, -np.inf)
    rows, columns = np.unravel_index(np.argsort(-scores, axis=None)[:n_best_size], scores.shape)  # (n,), (n,)
    best = scores[rows, columns]  # (n,)
    kept = np.isfinite(best)
    return list(zip(spans[starts[rows[kept]], 0].tolist(), spans[ends[columns[kept]], 1].tolist(),
                    best[kept].tolist()))


def span_array(offsets: Sequence[tuple[int, int] | None]) -> np.ndarray:
    """A window's offsets as a (seq, 2) array, start -1 where a token has none; features.Offsets, as windows hold
    them, give theirs without a copy."""
    if hasattr(offsets, "as_array"):
        return offsets.as_array()
    return np.array([(-1, -1) if o is None else o for o in offsets], dtype=np.int64).reshape(-1, 2)


def _unspaced(ch: str) -> bool:
    code = ord(ch)
    return any(low <= code <= high for low, high in _UNSPACED_SCRIPTS)


def _word_char(ch: str) -> bool:
    return ch.isalnum() or unicodedata.category(ch).startswith("M")


def inside_word(context: str, i: int) -> bool:
    """Whether the boundary before context[i] cuts a word: letters/digits on both sides (of a spaced script),
    a combining mark after its base, or a separator inside a number such as 1,000 or 3.5."""
    if not 0 < i < len(context):
        return False
    before, after = context[i - 1], context[i]
    if before.isascii() and after.isascii():  # no marks, no unspaced scripts: the common case, without lookups
        if before.isalnum() and after.isalnum():
            return True
    elif unicodedata.category(after).startswith("M"):
        return _word_char(before)
    elif _word_char(before) and _word_char(after):
        return not (_unspaced(before) or _unspaced(after))
    return (before.isdigit() and after in _NUMBER_SEPARATORS and context[i + 1:i + 2].isdigit()) or (
        before in _NUMBER_SEPARATORS and after.isdigit() and context[i - 2:i - 1].isdigit())


def word_around(context: str, i: int) -> tuple[int, int] | None:
    """The word that boundary i cuts through, or None when it is longer than MAX_WORD_CHARS."""
    left, right = i - 1, i + 1
    while inside_word(context, left) and i - left <= MAX_WORD_CHARS:
        left -= 1
    while inside_word(context, right) and right - i <= MAX_WORD_CHARS:
        right += 1
    return (left, right) if right - left <= MAX_WORD_CHARS else None


def snap_to_words(context: str, start: int, end: int) -> tuple[int, int]:
    """Grow a character span so it neither starts nor ends inside a word ('Fres' -> 'Fresnel')."""
    if inside_word(context, start):
        start = (word_around(context, start) or (start,))[0]
    if inside_word(context, end):
        end = (word_around(context, end) or (0, end))[1]
    return start, end


def best_spans(context: str, scored: Sequence[tuple[Sequence[tuple[int, int] | None], np.ndarray, np.ndarray]],
               search: SpanSearch = SpanSearch()) -> list[Span]:
    """n-best spans over all windows of one example; a span found twice (in two windows, or two token spans
    that snap to the same words) keeps its best score."""
    best: dict[tuple[int, int], float] = {}
    for offsets, start_logits, end_logits in scored:
        for start, end, score in window_candidates(offsets, start_logits, end_logits, search.n_best_size,
                                                   search.max_answer_length):
            if search.whole_words:
                start, end = snap_to_words(context, start, end)
            if score > best.get((start, end), -np.inf):
                best[(start, end)] = score
    ranked = sorted(best.items(), key=lambda item: -item[1])[:search.n_best_size]
    if not ranked:
        return []
    scores = np.array([score for _, score in ranked])
    probabilities = np.exp(scores - scores.max())
    probabilities /= probabilities.sum()
    return [Span(s, e, context[s:e], score, float(p)) for ((s, e), score), p in zip(ranked, probabilities)]


def distinct_texts(spans: Sequence[Span]) -> tuple[Span, ...]:
    """The spans, best first, with each text once: its best occurrence, probability not summed (it stays one
    span's, as the Ask tab shows it and calibration fits it). For lists that show no span (predict's alternatives,
    the records'), where two occurrences of one word would read as one answer listed twice."""
    seen: set[str] = set()
    return tuple(s for s in spans if not (s.text in seen or seen.add(s.text)))


def leading_spans(spans: Sequence[Span], texts: int) -> tuple[Span, ...]:
    """The spans, best first, through the one that brings the texts-th distinct text: what an answer keeps, so that
    its list shows that many texts once repeats are dropped, and its probabilities scale as its record's were
    fitted (calibration.rescale_prediction)."""
    seen: set[str] = set()
    for kept, span in enumerate(spans, start=1):
        seen.add(span.text)
        if len(seen) == texts:
            return tuple(spans[:kept])
    return tuple(spans)


def prediction_json(prediction: Prediction, spans: Sequence[Span], temperature: float | None,
                    uncalibrated: str | None) -> dict[str, Any]:
    """An answer for programs, by the same names from the app's /answer and `train.py predict` (here, not in the
    app's views, which predict does not load): text, character span, score and probability of the answer given (an
    abstention's score is its null score, and it has no probability: the probabilities are the spans'), null score
    and odds (None outside SQuAD 2.0), the spans listed as alternatives with theirs, and whether the probabilities
    are scaled at a run's temperature (uncalibrated: why its run has none fitted)."""
    given = prediction.alternatives[0] if prediction.alternatives and prediction.span else None
    return {"answer": prediction.text,
            "start": prediction.span[0] if prediction.span else None,
            "end": prediction.span[1] if prediction.span else None,
            "score": json_number(prediction.score), "probability": given.probability if given else None,
            "null_score": prediction.null_score, "null_odds": json_number(prediction.null_odds),
            "alternatives": [{"answer": s.text, "start": s.start, "end": s.end, "score": s.score,
                              "probability": s.probability} for s in spans],
            "abstained": prediction.abstained,  # SQuAD 2.0 runs: no answer in this context
            "calibrated": temperature is not None, "temperature": 1.0 if temperature is None else temperature,
            "uncalibrated_reason": uncalibrated}


def json_number(value: float | None) -> float | None:
    """None for what is no JSON number: the score of no span at all, the null odds of a context without any."""
    return value if value is not None and math.isfinite(value) else None


def finite_floats(value: Any, instead: Callable[[float], Any] | None = None) -> Any:
    """value with every infinite or NaN float replaced, for strict JSON readers: by instead(x), or by default an
    infinity by the largest float of its sign (a context with no span at all has infinite null odds, and the
    largest float compares the same way at any threshold) and NaN kept, so that writing it fails."""
    if isinstance(value, float) and not math.isfinite(value):
        if instead is not None:
            return instead(value)
        return math.copysign(sys.float_info.max, value) if math.isinf(value) else value
    if isinstance(value, dict):
        return {k: finite_floats(v, instead) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_floats(v, instead) for v in value]
    return value


def null_score(scored: Sequence[tuple[Feature, np.ndarray, np.ndarray]]) -> float:
    """Score of "no answer": start + end logit of the CLS token, lowest over the windows (as run_qa.py)."""
    return min(float(start[f.cls_index] + end[f.cls_index]) for f, start, end in scored)


def predict_example(example: Example, scored: Sequence[tuple[Feature, np.ndarray, np.ndarray]],
                    search: SpanSearch = SpanSearch()) -> Prediction:
    """The best span, or (SQuAD 2.0) "" when the null score beats it by more than the threshold."""
    spans = tuple(best_spans(example.context, [(f.offsets, s, e) for f, s, e in scored], search))
    null = null_score(scored) if search.null_threshold is not None and scored else None
    if not spans or (null is not None and null - spans[0].score > search.null_threshold):
        return Prediction(example.example_id, "", None, float("-inf") if null is None else null, spans, null)
    top = spans[0]
    return Prediction(example.example_id, top.text, (top.start, top.end), top.score, spans, null)


def prediction_texts(predictions: dict[str, Prediction]) -> dict[str, str]:
    """{example_id: answer text}, the official predictions format ("" where a SQuAD 2.0 search abstained)."""
    return {k: p.text for k, p in predictions.items()}


def postprocess_predictions(examples: Sequence[Example], features: Sequence[Feature], start_logits: np.ndarray,
                            end_logits: np.ndarray, search: SpanSearch = SpanSearch()) -> dict[str, Prediction]:
    """One Prediction per example from the logits of all its features; logits are (features, seq) arrays."""
    if not len(features) == len(start_logits) == len(end_logits):
        raise ValueError(f"one logits row per feature: {len(features)} features, {len(start_logits)} rows of start "
                         f"logits, {len(end_logits)} of end logits")
    grouped: list[list[tuple[Feature, np.ndarray, np.ndarray]]] = [[] for _ in examples]
    for feature, s, e in zip(features, start_logits, end_logits):
        grouped[feature.example_index].append((feature, s, e))
    return {example.example_id: predict_example(example, scored, search)
            for example, scored in zip(examples, grouped)}
