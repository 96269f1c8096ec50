"""Compare two runs on the same evaluation data: `python -m qa_core.compare RUN_A RUN_B` prints the summary as JSON."""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from qa_core.error_analysis import (PAIR_OUTCOMES, QuestionRecord, answer_length_bucket, answerable_slice, group_scores,
                                    pair_outcome, read_records)
from qa_core.eval_settings import read_evaluated
from qa_core.run_files import RECORDS_FILE, read_run_info

RESAMPLES = 1000  # paired bootstrap resamples of the questions
SEED = 0
SLICES: dict[str, Callable[[QuestionRecord], str]] = {
    "question word": lambda r: r.question_word, "answer length": answer_length_bucket,
    "answerability": answerable_slice}


@dataclass(frozen=True)
class DataCheck:
    """How the two runs were shown to share their evaluation data."""

    method: str  # "fingerprint" (eval_settings.json, else run.json) or "question ids + text hash" (neither has one)
    same: bool
    detail: str


@dataclass(frozen=True)
class MetricDelta:
    name: str  # "exact_match" or "f1"
    a: float  # percent
    b: float
    difference: float  # b - a, percentage points
    low: float  # 95% paired bootstrap interval of the difference
    high: float


@dataclass(frozen=True)
class SliceRow:
    slice: str  # "question word", "answer length" or "answerability"
    group: str
    questions: int
    exact_a: float
    exact_b: float
    f1_a: float
    f1_b: float


@dataclass(frozen=True)
class PairedRecord:
    a: QuestionRecord
    b: QuestionRecord
    outcome: str  # one of PAIR_OUTCOMES


@dataclass(frozen=True)
class Comparison:
    run_a: str
    run_b: str
    check: DataCheck
    questions: int
    metrics: tuple[MetricDelta, ...]
    outcomes: dict[str, int]  # counts per PAIR_OUTCOMES entry
    slices: tuple[SliceRow, ...]
    resamples: int
    seed: int
    pairs: tuple[PairedRecord, ...]

    def summary(self) -> dict:
        """Everything but the per-question pairs, as JSON-ready values."""
        return {"run_a": self.run_a, "run_b": self.run_b, "check": asdict(self.check), "questions": self.questions,
                "metrics": [asdict(m) for m in self.metrics], "outcomes": dict(self.outcomes),
                "slices": [asdict(s) for s in self.slices], "resamples": self.resamples, "seed": self.seed}


def records_hash(records: Sequence[QuestionRecord]) -> str:
    """A hash of the question ids with their question and context text, independent of record order."""
    digest = hashlib.sha256()
    for record in sorted(records, key=lambda r: r.example_id):
        digest.update(json.dumps([record.example_id, record.question, record.context]).encode())
    return digest.hexdigest()[:16]


def data_check(run_a: str | Path, run_b: str | Path, records_a: Sequence[QuestionRecord],
               records_b: Sequence[QuestionRecord]) -> DataCheck:
    """The same fingerprint of the data each folder's records were evaluated on (eval_settings.json; a run from
    before it was recorded: run.json's validation data); else the same ids and text."""
    fingerprints = [_validation_fingerprint(run) for run in (run_a, run_b)]
    if all(fingerprints):
        return DataCheck("fingerprint", fingerprints[0] == fingerprints[1],
                         f"validation fingerprints {fingerprints[0]} and {fingerprints[1]}")
    hashes = records_hash(records_a), records_hash(records_b)
    return DataCheck("question ids + text hash", hashes[0] == hashes[1],
                     f"{len(records_a)} and {len(records_b)} questions, hashes {hashes[0]} and {hashes[1]}")


def _validation_fingerprint(run: str | Path) -> str | None:
    """A run evaluated again into its own folder keeps its training's fingerprint in run.json: the records'
    evaluation says what they were evaluated on."""
    if (evaluated := read_evaluated(Path(run))) is not None and evaluated.fingerprint:
        return evaluated.fingerprint
    try:
        return read_run_info(Path(run)).data_fingerprint.get("validation") or None
    except ValueError:
        return None


def pair_records(records_a: Sequence[QuestionRecord], records_b: Sequence[QuestionRecord]) -> tuple[PairedRecord, ...]:
    """Records of the same question side by side, in run A's order, with the outcome of B relative to A."""
    by_id = {r.example_id: r for r in records_b}
    missing = [r.example_id for r in records_a if r.example_id not in by_id]
    if missing or len(by_id) != len(records_a):
        raise ValueError(f"the runs scored different questions (e.g. {missing[:3]} only in run A)")
    return tuple(PairedRecord(a, by_id[a.example_id], pair_outcome(a, by_id[a.example_id])) for a in records_a)


def paired_bootstrap(a: np.ndarray, b: np.ndarray, resamples: int = RESAMPLES, seed: int = SEED,
                     chunk: int = 100) -> tuple[float, float]:
    """95% percentile interval of mean(b - a) over questions resampled with replacement (the same draw for both
    runs); resamples are drawn in chunks so memory stays at chunk x questions."""
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    if len(a) != len(b) or len(a) == 0:
        raise ValueError(f"paired bootstrap needs two equally long, non-empty score lists, got {len(a)} and {len(b)}")
    difference = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)  # (questions,)
    rng = np.random.default_rng(seed)
    means = np.concatenate([difference[rng.integers(0, len(difference), (min(chunk, resamples - done),
                                                                        len(difference)))].mean(axis=1)
                            for done in range(0, resamples, chunk)])  # (resamples,)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def metric_deltas(pairs: Sequence[PairedRecord], resamples: int, seed: int) -> tuple[MetricDelta, ...]:
    deltas = []
    for name in ("exact_match", "f1"):
        a = np.array([getattr(p.a, name) for p in pairs])
        b = np.array([getattr(p.b, name) for p in pairs])
        low, high = paired_bootstrap(a, b, resamples, seed)
        deltas.append(MetricDelta(name, float(a.mean()), float(b.mean()), float(b.mean() - a.mean()), low, high))
    return tuple(deltas)


def slice_rows(pairs: Sequence[PairedRecord]) -> tuple[SliceRow, ...]:
    rows = []
    for name, key in SLICES.items():
        scores_a = group_scores((p.a for p in pairs), key)
        scores_b = group_scores((p.b for p in pairs), key)
        rows.extend(SliceRow(name, group, count, em_a, scores_b[group][1], f1_a, scores_b[group][2])
                    for group, (count, em_a, f1_a) in scores_a.items())
    return tuple(rows)


def compare_records(run_a: str, run_b: str, records_a: Sequence[QuestionRecord], records_b: Sequence[QuestionRecord],
                    resamples: int = RESAMPLES, seed: int = SEED) -> Comparison:
    """The comparison of two runs' records; ValueError when they were not evaluated on the same data."""
    check = data_check(run_a, run_b, records_a, records_b)
    if not check.same:
        raise ValueError(f"{run_a} and {run_b} were not evaluated on the same data ({check.method}: {check.detail})")
    pairs = pair_records(records_a, records_b)
    counts = {name: sum(p.outcome == name for p in pairs) for name in PAIR_OUTCOMES}
    return Comparison(str(run_a), str(run_b), check, len(pairs), metric_deltas(pairs, resamples, seed), counts,
                      slice_rows(pairs), resamples, seed, pairs)


def compare_runs(run_a: str | Path, run_b: str | Path, resamples: int = RESAMPLES, seed: int = SEED) -> Comparison:
    return compare_records(str(run_a), str(run_b), read_records(Path(run_a) / RECORDS_FILE),
                           read_records(Path(run_b) / RECORDS_FILE), resamples, seed)


def find_pair(comparison: Comparison, example_id: str) -> PairedRecord:
    found = next((p for p in comparison.pairs if p.a.example_id == str(example_id)), None)
    if found is None:
        raise ValueError(f"question {example_id!r} is not in the comparison of {comparison.run_a} and "
                         f"{comparison.run_b}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Compare two runs evaluated on the same data (B relative to A).")
    parser.add_argument("run_a", help="run folder with eval_records.jsonl (the baseline)")
    parser.add_argument("run_b", help="run folder with eval_records.jsonl (compared against A)")
    parser.add_argument("--resamples", type=int, default=RESAMPLES, help="paired bootstrap resamples")
    parser.add_argument("--seed", type=int, default=SEED, help="seed of the bootstrap draws")
    args = parser.parse_args(argv)
    try:
        comparison = compare_runs(args.run_a, args.run_b, args.resamples, args.seed)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(comparison.summary(), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
