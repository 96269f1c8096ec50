"""What the Errors tab shows: the question table, its summary, and a SQuAD 2.0 run's threshold and abstentions."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from qa_core.answer_views import odds_against
from qa_core.error_analysis import (QuestionRecord, RecordFilter, filter_records, is_score, on_grid,
                                    scored_odds)
from qa_core.plots import PASSED_OVER
from qa_core.run_files import read_run_info
from qa_core.run_list import evaluated_again
from qa_core.run_picker import evaluated_on_training_data
from qa_core.wording import count

# prediction, EM and F1 before the long gold column, so they stay in view on a narrow screen
TABLE_COLUMNS = ["id", "word", "question", "prediction", "EM", "F1", "gold"]
TABLE_WIDTHS = ["9%", "7%", "29%", "22%", "6%", "7%", "20%"]
SORTS = ("F1, lowest first", "F1, highest first", "question word", "id")
SLIDER_MARGIN = 1.0  # beyond the lowest and the highest null odds: room to abstain everywhere, answer everywhere
THRESHOLD_HELP = "abstain where null score − best span score is above it; re-scores the run"


@dataclass(frozen=True)
class ThresholdSlider:
    """The null-score threshold slider of a SQuAD 2.0 run: its range, where it starts (the records as evaluated),
    the evaluation's best-F1 threshold (None where its metrics have none) and what it says of both."""

    minimum: float
    maximum: float
    evaluated: float
    best: float | None
    info: str


def threshold_slider(records: Sequence[QuestionRecord], evaluated: float, best: float | None,
                     asked: float | None) -> ThresholdSlider:
    """The slider over the records' null odds that are scores: a context without any span stores the largest
    float, which made a 309-digit maximum that no JSON could carry. asked: the threshold the Ask tab answers the
    run's model at (None: the folder has no model). Thresholds are put on the slider's grid where that
    re-scores the same (on_grid), so the slider shows them and can reach them again."""
    evaluated = on_grid(records, evaluated)
    best, asked = (on_grid(records, t) if is_score(t) else None for t in (best, asked))
    points = [*scored_odds(records), *(t for t in (evaluated, best, asked) if is_score(t))] or [0.0]
    low, high = math.floor(min(points)) - SLIDER_MARGIN, math.ceil(max(points)) + SLIDER_MARGIN
    return ThresholdSlider(low, high, min(max(evaluated, low), high), best, threshold_info(evaluated, best, asked))


def threshold_info(evaluated: float, best: float | None, asked: float | None) -> str:
    """The slider's help, and where it starts against where the Ask tab answers: a row sent there is answered at
    the Ask tab's threshold, so it may flip."""
    said = [f"starts where the run was evaluated, {evaluated:.2f}"]
    if asked is not None and asked == best:
        said.append(f"the Ask tab answers at {asked:.2f} (best F1)")
    else:
        said += [f"best F1 at {best:.2f}"] if best is not None else []
        said += [f"the Ask tab answers at {asked:.2f}"] if asked is not None else []
    return f"{THRESHOLD_HELP}. It {'; '.join(said)}"


def sent_flip(shown: QuestionRecord, asked: QuestionRecord | None, threshold: float, asked_at: float | None) -> str:
    """One line for the Ask tab when a row sent there is decided the other way: shown at the slider's threshold
    (answered or abstained), and as the Ask tab answers it: at its threshold (asked, at asked_at), or, where both
    are None, with a model that answers every question (wherever the context has a span); '' where both agree."""
    if shown.null_odds is None:
        return ""
    answers = shown.best_span is not None if asked is None else asked.span is not None
    if (shown.span is not None) == answers:
        return ""
    if asked is None or asked_at is None:
        return (f"⚠ Abstained in the Errors tab at threshold {threshold:.2f} (null odds {shown.null_odds:.2f}); this "
                f"tab answers every question with this model (it has no SQuAD 2.0 threshold of its own).")
    was, will = ("Abstained", "answers") if shown.span is None else ("Answered", "abstains")
    return (f"⚠ {was} in the Errors tab at threshold {threshold:.2f}; this tab answers at threshold {asked_at:.2f}, "
            f"where it {will} (null odds {shown.null_odds:.2f}).")


def record_marks(record: QuestionRecord) -> dict[str, list[tuple[int, int]]]:
    """The spans to mark in a row's context: its gold answers, and its prediction or, where a SQuAD 2.0 run
    abstained, the best span it passed over (which Why this answer? explains)."""
    marks = {"gold": list(record.gold_spans)}
    if record.span:
        marks["predicted"] = [record.span]
    elif record.abstained and record.best_span:
        marks[PASSED_OVER] = [record.best_span]
    return marks


def passed_over(record: QuestionRecord) -> tuple[int, int] | None:
    """The best span of a SQuAD 2.0 row that abstained, else None."""
    return record.best_span if record.abstained else None


def record_scores(evaluated: QuestionRecord) -> tuple[float, float] | None:
    """(null score, best span score) of a SQuAD 2.0 record as evaluated, whose score is its answer's: the best
    span's, or the null score where it abstained. None where either is no score."""
    if not (is_score(evaluated.null_odds) and is_score(evaluated.score)):
        return None
    if evaluated.span is None:
        return evaluated.score, evaluated.score - evaluated.null_odds
    return evaluated.score + evaluated.null_odds, evaluated.score


def record_verdict(shown: QuestionRecord, evaluated: QuestionRecord, threshold: float) -> str:
    """Why a SQuAD 2.0 row is answered or not at the threshold: its null odds against it (in the Ask tab's words),
    with the null score and the best span's score; '' for a SQuAD v1.1 row."""
    if shown.null_odds is None:
        return ""
    if not is_score(shown.null_odds) or shown.best_span is None:
        return "No answer possible: the context has no span the model could choose."
    scores = record_scores(evaluated)
    odds = odds_against(shown.null_odds, threshold) + (
        f" (null score {scores[0]:.2f} − best span score {scores[1]:.2f})" if scores else "")
    if shown.span is None:
        return f"Abstained: {odds}; “{PASSED_OVER}” marks the span it passed over."
    return f"Answered: {odds}."


def summary_text(records: Sequence[QuestionRecord]) -> str:
    em = sum(r.exact_match for r in records) / len(records)
    f1 = sum(r.f1 for r in records) / len(records)
    wrong = sum(r.exact_match < 100 for r in records)
    return f"{count(len(records), 'question')} · EM {em:.1f} · F1 {f1:.1f} · {wrong} not exactly right"


def evaluation_caveat(run: str) -> str:
    """A warning for runs evaluated on the data they trained on (the quick fine-tune): memorisation, not skill."""
    try:
        info = read_run_info(Path(run))
    except ValueError:
        return ""
    if evaluated_again(Path(run), info):  # its records are no longer those of its training's evaluation
        return ""
    if evaluated_on_training_data(info.config):
        return ("  ⚠ This run was evaluated on its own training data, so these figures show memorisation, "
                "not how it does on new questions. Train with separate evaluation data for honest figures.")
    return ""


def matched_note(shown: int, total: int) -> str:
    """Above the question table: how many questions its filters let through (an empty table said nothing)."""
    if shown == total:
        return ""
    return f"{'None' if shown == 0 else f'{shown:,}'} of {total:,} questions match the filters"


def record_table(records: Sequence[QuestionRecord], chosen: RecordFilter = RecordFilter(),
                 sort: str = SORTS[0]) -> pd.DataFrame:
    """The filtered, sorted question table of the Errors tab; the id column finds the record again."""
    keys = {SORTS[0]: lambda r: r.f1, SORTS[1]: lambda r: -r.f1, SORTS[2]: lambda r: r.question_word}
    rows = [[r.example_id, r.question_word, r.question, shown_prediction(r), round(r.exact_match), round(r.f1, 1),
             shown_gold(r)]
            for r in sorted(filter_records(records, chosen), key=keys.get(sort, lambda r: r.example_id))]
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def shown_prediction(record: QuestionRecord) -> str:
    """The prediction, or '(no answer)' where a SQuAD 2.0 run abstained."""
    return "(no answer)" if record.abstained else record.prediction


def shown_gold(record: QuestionRecord) -> str:
    """The gold answers, or '(unanswerable)' for a SQuAD 2.0 question without one (not a blank cell)."""
    return " | ".join(record.gold_answers) or "(unanswerable)"


def is_squad_v2(records: Sequence[QuestionRecord]) -> bool:
    """Records of a SQuAD 2.0 evaluation (null odds stored), which a threshold can re-score."""
    return any(r.null_odds is not None for r in records)
