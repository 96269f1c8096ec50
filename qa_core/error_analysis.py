"""Per-question evaluation records and the summaries and filters used for error analysis."""

from __future__ import annotations

import functools
import json
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from qa_core.data import Example
from qa_core.metrics import answer_scores
from qa_core.postprocess import ANSWER_TOP_K, Prediction, distinct_texts, finite_floats
from qa_core.run_files import RECORDS_FILE

QUESTION_WORDS = ("who", "what", "when", "where", "why", "how", "which")
# The groups of answer_length_bucket, in order; an unanswerable (SQuAD 2.0) question has no gold length at all.
ANSWER_LENGTHS = ("1", "2-3", "4-6", "7+", "no answer")
# How a question went: the Errors tab's SQuAD 2.0 filter (every question, or one way of going wrong: v2_error),
# and one question in two runs, B relative to A by exact match (pair_outcome, for compare.py).
V2_ERRORS = ("all", "answered but should not", "abstained but should not")
PAIR_OUTCOMES = ("fixed", "broken", "both right", "both wrong")
# Null odds are differences of logits, tens at most. A value beyond this is no score but a stand-in: a context
# without any span stores the largest float (finite_floats), which abstains at every threshold.
SCORE_LIMIT = 1e4
# The Errors tab's threshold slider moves in steps of 0.01: fine enough to fall between close null odds.
THRESHOLD_DECIMALS = 2
THRESHOLD_STEP = 10.0 ** -THRESHOLD_DECIMALS


@dataclass(frozen=True)
class QuestionRecord:
    """Everything needed to inspect one evaluated question."""

    example_id: str
    question: str
    context: str
    gold_answers: tuple[str, ...]  # empty for an unanswerable (SQuAD 2.0) question
    gold_spans: tuple[tuple[int, int], ...]  # character spans of the gold answers found in the context
    prediction: str  # "" when the model abstained
    span: tuple[int, int] | None
    score: float
    exact_match: float  # 0 or 100
    f1: float  # 0..100
    alternatives: tuple[tuple[str, float], ...]  # top-k (text, probability); the best span first, even when abstaining
    # SQuAD 2.0 runs only (None otherwise, and in record files written before them):
    null_odds: float | None = None  # null score - best span score; the model abstains above the threshold
    best_span: tuple[int, int] | None = None  # the best span, answered or not
    span_exact: float | None = None  # EM and F1 the best span scores if answered
    span_f1: float | None = None

    @property
    def question_word(self) -> str:
        return question_word(self.question)

    @property
    def answerable(self) -> bool:
        return bool(self.gold_answers)

    @property
    def abstained(self) -> bool:
        """A SQuAD 2.0 run gave no answer (as Prediction.abstained); best_span is the span it passed over."""
        return self.null_odds is not None and self.span is None


def question_word(question: str) -> str:
    """The first wh-word in the question ('other' if none), e.g. 'In which year...' -> 'which'."""
    words = question.lower().replace("?", " ").split()
    return next((w for w in words if w in QUESTION_WORDS), "other")


def score_answer(prediction: str, golds: Sequence[str], squad_v2: bool) -> tuple[float, float]:
    """(EM, F1) in percent, as the official v1.1 or v2.0 script scores one answer."""
    exact, f1 = answer_scores(prediction, golds, squad_v2)
    return 100.0 * exact, 100.0 * f1


def build_record(example: Example, prediction: Prediction, top_k: int = ANSWER_TOP_K) -> QuestionRecord:
    golds = tuple(a.text for a in example.answers)
    spans = tuple((a.start, a.start + len(a.text)) for a in example.answers if a.start is not None)
    squad_v2 = prediction.null_score is not None
    exact, f1 = score_answer(prediction.text, golds, squad_v2)
    alternatives = tuple((s.text, s.probability) for s in distinct_texts(prediction.alternatives)[:top_k])
    record = QuestionRecord(example.example_id, example.question, example.context, golds, spans, prediction.text,
                            prediction.span, prediction.score, exact, f1, alternatives)
    if not squad_v2:
        return record
    best = prediction.alternatives[0] if prediction.alternatives else None
    span_exact, span_f1 = score_answer(best.text if best else "", golds, True)
    return replace(record, null_odds=prediction.null_odds, best_span=(best.start, best.end) if best else None,
                   span_exact=span_exact, span_f1=span_f1)


def build_records(examples: Sequence[Example], predictions: Mapping[str, Prediction],
                  top_k: int = ANSWER_TOP_K) -> list[QuestionRecord]:
    return [build_record(example, predictions[example.example_id], top_k) for example in examples]


def is_score(value: float | None) -> bool:
    """Whether a stored score or null odds is one: finite and within SCORE_LIMIT, not the stand-in of a context
    without any span (finite_floats)."""
    return value is not None and math.isfinite(value) and abs(value) < SCORE_LIMIT


def record_json(record: QuestionRecord) -> dict[str, Any]:
    """A record for JSON readers (/run_records): a score or null odds that is no score (is_score) is None. The file
    keeps its stand-in, the largest float, which abstains at any threshold as infinite null odds would; read as a
    number it would pass for the most confident abstention of all."""
    values = asdict(record)
    return {**values, **{k: None for k in ("score", "null_odds") if not is_score(values[k])}}


def scored_odds(records: Iterable[QuestionRecord]) -> list[float]:
    """The null odds of SQuAD 2.0 records that are scores (is_score): a threshold can only fall between these."""
    return [r.null_odds for r in records if is_score(r.null_odds)]


def evaluated_threshold(records: Sequence[QuestionRecord], stated: float) -> float:
    """A null-score threshold at which rescore() gives back the records as evaluated: `stated` (the evaluation's or
    the run's setting) where it does, else one read off the records, between the highest null odds answered and the
    lowest abstained (a folder `train.py evaluate` wrote before eval_settings.json kept its threshold; a run
    evaluated again may not have used its training setting), on the slider's grid where that still fits (on_grid)."""
    answered = [r.null_odds for r in records if is_score(r.null_odds) and r.span is not None]
    abstained = [r.null_odds for r in records if is_score(r.null_odds) and r.abstained]
    low, high = max(answered, default=-math.inf), min(abstained, default=math.inf)
    if low <= stated < high:
        return stated
    if math.isinf(low):  # everything abstained: any threshold below the lowest odds
        return math.floor(high) - 1.0 if math.isfinite(high) else stated
    return on_grid(records, low)


def on_grid(records: Iterable[QuestionRecord], threshold: float) -> float:
    """The threshold rounded up to THRESHOLD_DECIMALS where that re-scores the records the same (no null odds from
    the threshold up to the rounded value), so that a slider in steps of THRESHOLD_STEP shows and reaches it; else
    the threshold itself."""
    scale = 10 ** THRESHOLD_DECIMALS
    rounded = math.ceil(threshold * scale) / scale
    if rounded < threshold or any(threshold < odds <= rounded for odds in scored_odds(records)):
        return threshold
    return rounded


def rescore(records: Sequence[QuestionRecord], threshold: float) -> list[QuestionRecord]:
    """The records as if the run had abstained where null odds > threshold (rescore_record)."""
    return [rescore_record(r, threshold) for r in records]


def rescore_record(r: QuestionRecord, threshold: float) -> QuestionRecord:
    """A record as if the run had abstained where null odds > threshold (evaluate-v2.0.py's rule: an abstention
    scores 100 on an unanswerable question, 0 on an answerable one); a record without null odds stays as it is."""
    if r.null_odds is None:
        return r
    if r.null_odds > threshold:
        no_answer = 100.0 * (not r.answerable)
        return replace(r, prediction="", span=None, exact_match=no_answer, f1=no_answer)
    text = r.context[r.best_span[0]:r.best_span[1]] if r.best_span else ""
    return replace(r, prediction=text, span=r.best_span, exact_match=r.span_exact, f1=r.span_f1)


def write_records(path: Path, records: Iterable[QuestionRecord]) -> None:
    with path.open("w", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(finite_floats(asdict(record)), ensure_ascii=False, allow_nan=False) + "\n")


def _pair(value: list | None) -> tuple[int, int] | None:
    return tuple(value) if value else None


def read_records(path: Path) -> list[QuestionRecord]:
    """Records of a run; files written before SQuAD 2.0 support read with the v2 fields left None."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: no evaluation records (evaluate the run first)")
    records = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            raw = json.loads(line)
            records.append(QuestionRecord(
                raw["example_id"], raw["question"], raw["context"], tuple(raw["gold_answers"]),
                tuple(tuple(s) for s in raw["gold_spans"]), raw["prediction"], _pair(raw["span"]), raw["score"],
                raw["exact_match"], raw["f1"], tuple(tuple(a) for a in raw["alternatives"]),
                raw.get("null_odds"), _pair(raw.get("best_span")), raw.get("span_exact"), raw.get("span_f1")))
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ValueError(f"{path}: line {n} is not an evaluation record ({err})") from None
    return records


@lru_cache(maxsize=8)
def _records(path: str, modified_ns: int) -> tuple[QuestionRecord, ...]:
    return tuple(read_records(Path(path)))


def run_records(run: str | None) -> tuple[QuestionRecord, ...]:
    """The evaluation records of a run folder, read once per version of the file."""
    if not run:
        raise ValueError(f"run_records needs a run folder, got {run!r}")  # the app's wording: hosting.check_run
    path = Path(run) / RECORDS_FILE
    if not path.exists():
        raise ValueError(f"{run} has no evaluation records ({RECORDS_FILE}): it was trained without evaluation "
                         f"data, or not evaluated yet")
    return _records(str(path), path.stat().st_mtime_ns)


def find_record(records: Sequence[QuestionRecord], example_id: str) -> QuestionRecord:
    found = next((r for r in records if r.example_id == str(example_id)), None)
    if found is None:
        raise ValueError(f"question {example_id!r} is not in this run")
    return found


def answer_length_bucket(record: QuestionRecord) -> str:
    """The words of the shortest gold answer, as one of ANSWER_LENGTHS."""
    if not record.answerable:
        return ANSWER_LENGTHS[-1]
    words = min(len(g.split()) for g in record.gold_answers)
    return ANSWER_LENGTHS[0 if words <= 1 else 1 if words <= 3 else 2 if words <= 6 else 3]


def group_scores(records: Iterable[QuestionRecord],
                 key: Callable[[QuestionRecord], str]) -> dict[str, tuple[int, float, float]]:
    """For each group: (questions, mean EM, mean F1)."""
    groups: dict[str, list[QuestionRecord]] = defaultdict(list)
    for record in records:
        groups[key(record)].append(record)
    return {name: (len(rs), sum(r.exact_match for r in rs) / len(rs), sum(r.f1 for r in rs) / len(rs))
            for name, rs in sorted(groups.items())}


def answerable_slice(record: QuestionRecord) -> str:
    """The official script's slices: HasAns (answerable) and NoAns questions."""
    return "HasAns" if record.answerable else "NoAns"


def v2_error(record: QuestionRecord) -> str:
    """Which way a SQuAD 2.0 answer went wrong, if it did: one of V2_ERRORS, else 'other'."""
    if record.prediction and not record.answerable:
        return V2_ERRORS[1]
    if record.abstained and record.answerable:
        return V2_ERRORS[2]
    return "other"


def pair_outcome(a: QuestionRecord, b: QuestionRecord) -> str:
    """One of PAIR_OUTCOMES: run B's record of a question relative to run A's."""
    right_a, right_b = a.exact_match == 100, b.exact_match == 100
    return ("both right" if right_b else "broken") if right_a else ("fixed" if right_b else "both wrong")


@dataclass(frozen=True)
class RecordFilter:
    """Which questions the Errors tab lists; the defaults let every one through."""

    only_wrong: bool = False  # only answers not exactly right
    f1_range: tuple[float, float] = (0.0, 100.0)  # F1 from, to (both included)
    word: str = "all"  # the question word ('all': any)
    search: str = ""  # text in the question, the prediction or a gold answer, in any case
    kind: str = V2_ERRORS[0]  # one of V2_ERRORS

    def __post_init__(self) -> None:
        if self.kind not in V2_ERRORS:
            raise ValueError(f"kind must be one of {V2_ERRORS}, got {self.kind!r}")

    @functools.cached_property
    def needle(self) -> str:
        """The search text as matched: stripped, lower case."""
        return self.search.strip().lower()

    def matches(self, record: QuestionRecord) -> bool:
        needle = self.needle
        return ((not self.only_wrong or record.exact_match < 100)
                and self.f1_range[0] <= record.f1 <= self.f1_range[1]
                and (self.word == "all" or record.question_word == self.word)
                and (self.kind == V2_ERRORS[0] or v2_error(record) == self.kind)
                and (not needle or needle in " ".join((record.question, record.prediction,
                                                       *record.gold_answers)).lower()))


def filter_records(records: Iterable[QuestionRecord], chosen: RecordFilter = RecordFilter()) -> list[QuestionRecord]:
    """The records the filter lets through, in their order."""
    return [r for r in records if chosen.matches(r)]