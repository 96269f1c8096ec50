"""What the web UI shows, as plain values: highlighted pieces, tables and status lines (no Gradio here)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from qa_core.checkpoints import read_run_info
from qa_core.data import load_examples
from qa_core.error_analysis import RECORDS_FILE, QuestionRecord, filter_records, read_records
from qa_core.inference import AnswerResult

if TYPE_CHECKING:  # a type only: importing jobs would import training
    from qa_core.jobs import JobSnapshot

TABLE_COLUMNS = ["id", "word", "question", "gold", "prediction", "EM", "F1"]
SORTS = ("F1, lowest first", "F1, highest first", "question word", "id")


def highlight(context: str, marks: dict[str, list[tuple[int, int]]]) -> list[tuple[str, str | None]]:
    """Cut the context into (text, label) pieces; a piece inside spans of several labels gets 'a + b'."""
    cuts = sorted({0, len(context), *(p for spans in marks.values() for span in spans for p in span)})
    pieces: list[tuple[str, str | None]] = []
    for begin, end in zip(cuts, cuts[1:]):
        names = [n for n, spans in marks.items() if any(s <= begin and end <= e for s, e in spans)]
        label = " + ".join(names) or None
        if pieces and pieces[-1][1] == label:
            pieces[-1] = (pieces[-1][0] + context[begin:end], label)
        elif end > begin:
            pieces.append((context[begin:end], label))
    return pieces


def alternatives_table(result: AnswerResult | None) -> pd.DataFrame:
    spans = result.prediction.alternatives if result else ()
    return pd.DataFrame({"rank": range(1, len(spans) + 1), "answer": [s.text for s in spans],
                         "probability": [round(s.probability, 4) for s in spans]})


def sample_examples() -> tuple[list[list[str]], list[str]]:
    """The first question of each bundled passage, as [context, question] rows and their titles."""
    firsts: dict[str, Any] = {}
    for example in load_examples("sample").examples:
        firsts.setdefault(example.context, example)
    return [[e.context, e.question] for e in firsts.values()], [e.title.replace("_", " ") for e in firsts.values()]


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def job_text(s: JobSnapshot) -> str:
    if s.status == "idle":
        return "No training job has run since the server started."
    lines = [f"Job {s.job_id}: {s.status} · {s.message}", f"Run folder: {s.output_dir}",
             f"Step {s.step}/{s.total_steps} · epoch {s.epoch:.2f} · elapsed {duration(s.elapsed_s)}"]
    if s.active and s.features_per_s:
        lines.append(f"{s.features_per_s:.1f} windows/s · ETA {duration(s.eta_s)}")
    if s.metrics:
        lines.append(f"Evaluation: EM {s.metrics['exact_match']:.1f} · F1 {s.metrics['f1']:.1f}")
    return "\n".join(lines)


def progress_html(s: JobSnapshot) -> str:
    percent = int(round(s.fraction * 100))  # numbers only: no user text reaches this HTML
    return f'<progress value="{percent}" max="100" style="width:100%;height:1.2em"></progress> {percent}%'


def summary_text(records: Sequence[QuestionRecord]) -> str:
    em = sum(r.exact_match for r in records) / len(records)
    f1 = sum(r.f1 for r in records) / len(records)
    wrong = sum(r.exact_match < 100 for r in records)
    return f"{len(records)} questions · EM {em:.1f} · F1 {f1:.1f} · {wrong} not exactly right"


def evaluation_caveat(run: str) -> str:
    """A warning for runs evaluated on the data they trained on (the quick fine-tune): memorisation, not skill."""
    try:
        config = read_run_info(Path(run)).config
    except ValueError:
        return ""
    if config.get("validation_file") and config.get("validation_file") == config.get("train_file"):
        return ("  ⚠ This run was evaluated on its own training data, so these figures show memorisation, "
                "not how it does on new questions. Train with separate evaluation data for honest figures.")
    return ""


def record_table(records: Sequence[QuestionRecord], only_wrong: bool = False, f1_range: tuple[float, float] = (0, 100),
                 word: str = "all", search: str = "", sort: str = SORTS[0]) -> pd.DataFrame:
    """The filtered, sorted question table of the Errors tab; the id column finds the record again."""
    chosen = filter_records(records, only_wrong, f1_range, word, search)
    keys = {SORTS[0]: lambda r: r.f1, SORTS[1]: lambda r: -r.f1, SORTS[2]: lambda r: r.question_word}
    rows = [[r.example_id, r.question_word, r.question, " | ".join(r.gold_answers), r.prediction,
             round(r.exact_match), round(r.f1, 1)] for r in sorted(chosen, key=keys.get(sort, lambda r: r.example_id))]
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


@lru_cache(maxsize=8)
def _records(path: str, modified_ns: int) -> tuple[QuestionRecord, ...]:
    return tuple(read_records(Path(path)))


def run_records(run: str | None) -> tuple[QuestionRecord, ...]:
    """The evaluation records of a run folder, read once per version of the file."""
    if not run:
        raise ValueError("pick a run first (train one in the Train tab if the list is empty)")
    path = Path(run) / RECORDS_FILE
    if not path.exists():
        raise ValueError(f"{run} has no evaluation records ({RECORDS_FILE}); train it with evaluation data")
    return _records(str(path), path.stat().st_mtime_ns)


def find_record(records: Sequence[QuestionRecord], example_id: str) -> QuestionRecord:
    found = next((r for r in records if r.example_id == str(example_id)), None)
    if found is None:
        raise ValueError(f"question {example_id!r} is not in this run")
    return found
