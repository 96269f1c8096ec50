"""Per-question evaluation records and the summaries and filters used for error analysis."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from qa_core.data import Example
from qa_core.metrics import best_over_golds, compute_exact, compute_f1
from qa_core.postprocess import Prediction

QUESTION_WORDS = ("who", "what", "when", "where", "why", "how", "which")
RECORDS_FILE = "eval_records.jsonl"


@dataclass(frozen=True)
class QuestionRecord:
    """Everything needed to inspect one evaluated question."""

    example_id: str
    question: str
    context: str
    gold_answers: tuple[str, ...]
    gold_spans: tuple[tuple[int, int], ...]  # character spans of the gold answers found in the context
    prediction: str
    span: tuple[int, int] | None
    score: float
    exact_match: float  # 0 or 100
    f1: float  # 0..100
    alternatives: tuple[tuple[str, float], ...]  # top-k (text, probability)

    @property
    def question_word(self) -> str:
        return question_word(self.question)


def question_word(question: str) -> str:
    """The first wh-word in the question ('other' if none), e.g. 'In which year...' -> 'which'."""
    words = question.lower().replace("?", " ").split()
    return next((w for w in words if w in QUESTION_WORDS), "other")


def build_records(examples: Sequence[Example], predictions: Mapping[str, Prediction],
                  top_k: int = 5) -> list[QuestionRecord]:
    records = []
    for example in examples:
        prediction = predictions[example.example_id]
        golds = tuple(a.text for a in example.answers)
        spans = tuple((a.start, a.start + len(a.text)) for a in example.answers if a.start is not None)
        records.append(QuestionRecord(
            example.example_id, example.question, example.context, golds, spans, prediction.text, prediction.span,
            prediction.score, 100.0 * best_over_golds(compute_exact, prediction.text, golds),
            100.0 * best_over_golds(compute_f1, prediction.text, golds),
            tuple((s.text, s.probability) for s in prediction.alternatives[:top_k])))
    return records


def write_records(path: Path, records: Iterable[QuestionRecord]) -> None:
    with path.open("w", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(asdict(record), ensure_ascii=False) + "\n")


def read_records(path: Path) -> list[QuestionRecord]:
    if not path.exists():
        raise FileNotFoundError(f"{path}: no evaluation records (evaluate the run first)")
    records = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            raw = json.loads(line)
            records.append(QuestionRecord(
                raw["example_id"], raw["question"], raw["context"], tuple(raw["gold_answers"]),
                tuple(tuple(s) for s in raw["gold_spans"]), raw["prediction"],
                tuple(raw["span"]) if raw["span"] else None, raw["score"], raw["exact_match"], raw["f1"],
                tuple(tuple(a) for a in raw["alternatives"])))
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ValueError(f"{path}: line {n} is not an evaluation record ({err})") from None
    return records


def answer_length_bucket(record: QuestionRecord) -> str:
    words = min(len(g.split()) for g in record.gold_answers) if record.gold_answers else 0
    return "1" if words <= 1 else "2-3" if words <= 3 else "4-6" if words <= 6 else "7+"


def group_scores(records: Iterable[QuestionRecord], key) -> dict[str, tuple[int, float, float]]:
    """For each group: (questions, mean EM, mean F1)."""
    groups: dict[str, list[QuestionRecord]] = defaultdict(list)
    for record in records:
        groups[key(record)].append(record)
    return {name: (len(rs), sum(r.exact_match for r in rs) / len(rs), sum(r.f1 for r in rs) / len(rs))
            for name, rs in sorted(groups.items())}


def filter_records(records: Iterable[QuestionRecord], only_wrong: bool = False, f1_range: tuple[float, float] = (0, 100),
                   word: str = "all", search: str = "") -> list[QuestionRecord]:
    """Records matching every filter; search looks in the question, the prediction and the gold answers."""
    needle = search.strip().lower()
    return [r for r in records
            if (not only_wrong or r.exact_match < 100)
            and f1_range[0] <= r.f1 <= f1_range[1]
            and (word == "all" or r.question_word == word)
            and (not needle or needle in " ".join((r.question, r.prediction, *r.gold_answers)).lower())]
