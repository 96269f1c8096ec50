"""What the comparison panel shows, as plain values: the two runs' scores, their slices and their paired answers."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from qa_core.error_analysis import PAIR_OUTCOMES
from qa_core.answer_views import highlight
from qa_core.errors_views import shown_gold, shown_prediction
from qa_core.wording import count

if TYPE_CHECKING:
    from qa_core.compare import Comparison, PairedRecord


def comparison_text(comparison: Comparison) -> str:
    """Both runs' EM and F1 with the difference and its paired bootstrap interval, and the outcome counts."""
    a, b = Path(comparison.run_a).name, Path(comparison.run_b).name
    lines = [f"A = {a} · B = {b} · {count(comparison.questions, 'question')} "
             f"(same data: {comparison.check.method})", ""]
    for m in comparison.metrics:
        label = "EM" if m.name == "exact_match" else "F1"
        lines.append(f"{label}: A {m.a:.1f} · B {m.b:.1f} · B − A {m.difference:+.1f} "
                     f"(95% paired bootstrap interval {m.low:+.1f} to {m.high:+.1f}, {comparison.resamples} resamples)")
    lines.append(" · ".join(f"{name}: {count}" for name, count in comparison.outcomes.items()))
    return "\n".join(lines)


# Widths set, so the slices table fits beside its figure at 1400 px instead of scrolling sideways to "F1 B"; in the
# pairs table both answers and both F1s before the long gold column, so they stay in view (as
# errors_views.TABLE_COLUMNS)
SLICE_COLUMNS = ["slice", "group", "questions", "EM A", "EM B", "F1 A", "F1 B"]
SLICE_WIDTHS = ["21%", "13%", "18%", "12%", "12%", "12%", "12%"]
PAIR_COLUMNS = ["id", "outcome", "question", "answer A", "answer B", "F1 A", "F1 B", "gold"]
PAIR_WIDTHS = ["8%", "8%", "25%", "17%", "17%", "5%", "5%", "15%"]


def slice_table(comparison: Comparison) -> pd.DataFrame:
    """The slices side by side: EM and F1 of run A and run B for every group."""
    rows = [[s.slice, s.group, s.questions, round(s.exact_a, 1), round(s.exact_b, 1), round(s.f1_a, 1),
             round(s.f1_b, 1)] for s in comparison.slices]
    return pd.DataFrame(rows, columns=SLICE_COLUMNS)


def pair_table(comparison: Comparison, only: str = "all") -> pd.DataFrame:
    """The pairs of one outcome ('all' for every pair), with the gold and both predictions as the question table
    words them (an abstention is '(no answer)', no gold '(unanswerable)', not blank cells); the id column finds the
    pair."""
    if only != "all" and only not in PAIR_OUTCOMES:
        raise ValueError(f"outcome {only!r} is not one of {('all', *PAIR_OUTCOMES)}")
    rows = [[p.a.example_id, p.outcome, p.a.question, shown_prediction(p.a), shown_prediction(p.b), round(p.a.f1, 1),
             round(p.b.f1, 1), shown_gold(p.a)]
            for p in comparison.pairs if only in ("all", p.outcome)]
    return pd.DataFrame(rows, columns=PAIR_COLUMNS)


def pair_highlight(pair: PairedRecord) -> list[tuple[str, str | None]]:
    """The context cut into pieces labelled 'A', 'B', 'gold' or their overlaps ('A + B + gold')."""
    marks = {"A": [pair.a.span] if pair.a.span else [], "B": [pair.b.span] if pair.b.span else [],
             "gold": list(pair.a.gold_spans)}
    return highlight(pair.a.context, marks)
