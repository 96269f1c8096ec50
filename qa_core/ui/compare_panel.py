"""The Errors tab's comparison panel: a second run on the same data, side by side with the first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from qa_core import charts, compare_views
from qa_core.compare import find_pair
from qa_core.error_analysis import PAIR_OUTCOMES
from qa_core.service import QAService
from qa_core.ui.common import ANALYSES, PRIVATE, Outputs, by_name, in_turns

PAIR_COLORS = {"A": "#ffb347", "B": "#c39bd3", "gold": "#7dd87d", "A + B": "#f5a3a3", "A + gold": "#7fb3ff",
               "B + gold": "#76d7c4", "A + B + gold": "#5dade2"}


def empty() -> Outputs:
    """No comparison: tables with their columns and no rows (None shows Gradio's placeholder columns '1 2 3')."""
    return {"comparison": "", "slices": None, "slice_table": pd.DataFrame(columns=compare_views.SLICE_COLUMNS),
            "pairs": pd.DataFrame(columns=compare_views.PAIR_COLUMNS)}


class CompareHandlers:
    """Run B against run A: figures, both predictions per question, one question's spans in its context."""

    def __init__(self, service: QAService) -> None:
        self.service = service

    def choices(self, run_a: str | None) -> Outputs:
        """Run A changed: run B is picked again among the other runs with records."""
        return {"run_b": gr.update(choices=self.others(run_a), value=None), **empty(), "detail": None,
                "pair_question": ""}

    def others(self, run_a: str | None) -> list[tuple[str, str]]:
        """The runs with records besides A, read when the run B list opens (runs finish while a page is open)."""
        return [(label, name) for label, name in self.service.record_choices() if name != run_a]

    def compare(self, run_a: str | None, run_b: str | None, only: str) -> Outputs:
        """EM/F1 of both with the paired bootstrap interval, outcome counts, slices, the pairs of one outcome."""
        if not run_b:
            return {**empty(), "comparison": "Pick run B to compare it with the run above (run A)."}
        try:
            comparison = self.service.compare(run_a, run_b)
        except (ValueError, OSError) as err:
            return {**empty(), "comparison": f"Cannot compare: {self.for_caller(err, run_a, run_b)}"}
        return {"comparison": compare_views.comparison_text(comparison),
                "slices": charts.compare_slices_figure(comparison.slices),
                "slice_table": compare_views.slice_table(comparison),
                "pairs": compare_views.pair_table(comparison, only)}

    def for_caller(self, err: BaseException, run_a: str | None, run_b: str | None) -> str:
        """A refused comparison as one line, each run named as the run pickers name it: the comparison reads their
        folders by path, which means nothing to a visitor (and a server never shows its own paths)."""
        message = str(err)
        try:
            paths = sorted((self.service.checked_run(run) for run in (run_a, run_b) if run), key=len, reverse=True)
        except ValueError:  # a run this server does not know: the error names it as given
            paths = []
        for path in paths:  # the longer first: one run's path may begin another's
            message = message.replace(path, Path(path).name)
        return self.service.for_caller(message)

    def filter_pairs(self, run_a: str | None, run_b: str | None, only: str) -> Outputs:
        try:
            return {"pairs": compare_views.pair_table(self.service.compare(run_a, run_b), only)}
        except (ValueError, OSError):
            return {"pairs": empty()["pairs"]}

    def select_pair(self, run_a: str | None, run_b: str | None, event: gr.SelectData) -> Outputs:
        """A row was clicked: both predicted spans and the gold in one context."""
        example_id = str((event.row_value or [""])[0])
        try:
            pair = find_pair(self.service.compare(run_a, run_b), example_id)
        except (ValueError, OSError) as err:
            return {"detail": None, "pair_question": self.for_caller(err, run_a, run_b)}
        return {"detail": compare_views.pair_highlight(pair),
                "pair_question": f"{pair.a.question}  ({pair.outcome}: F1 A {pair.a.f1:.1f}, B {pair.b.f1:.1f})"}


def build_compare_panel(service: QAService, run: gr.Dropdown) -> dict[str, Any]:
    ui = CompareHandlers(service)
    with gr.Accordion("Compare with another run", open=False, elem_id="compare-panel"):
        run_b = gr.Dropdown([], value=None, label="Run B", info="Another run evaluated on the same data "
                            "(checked by fingerprint); B is compared against the run above (A)", elem_id="compare-run")
        only = gr.Dropdown(["all", *PAIR_OUTCOMES], value="all", label="Questions",
                           info="B relative to A, by exact match", elem_id="compare-only")
        shown = {"comparison": gr.Textbox(label="A vs B", interactive=False, lines=4, elem_id="compare-summary")}
        with gr.Row():
            shown.update(slices=gr.Plot(label="A and B by slice", elem_id="compare-slices"),
                         slice_table=gr.Dataframe(empty()["slice_table"], label="Slices side by side",
                                                  interactive=False, max_height=340, wrap=True,
                                                  column_widths=compare_views.SLICE_WIDTHS,
                                                  elem_id="compare-slice-table"))
        shown["pairs"] = gr.Dataframe(empty()["pairs"], label="Both answers (click a row)",
                                      interactive=False, wrap=True, elem_id="compare-table",
                                      column_widths=compare_views.PAIR_WIDTHS)
        detail = {"pair_question": gr.Textbox(label="Selected question", interactive=False),
                  "detail": gr.HighlightedText(label="Context: A's and B's answers and the gold", color_map=PAIR_COLORS,
                                               show_legend=True, elem_id="compare-detail")}
    picked = {"run_b": run_b, **shown, **detail}
    run.change(by_name(ui.choices, picked), run, list(picked.values()), api_name="ui_compare_choices", **PRIVATE)
    run_b.focus(lambda run_a: gr.update(choices=ui.others(run_a)), run, run_b, api_name="ui_compare_others",
                show_progress="hidden", **PRIVATE)
    # the comparisons read both runs' records: in turns with the answers (in_turns)
    run_b.change(by_name(in_turns(service, ui.compare), shown), [run, run_b, only], list(shown.values()),
                 api_name="ui_compare", **ANALYSES, **PRIVATE)
    only.change(by_name(in_turns(service, ui.filter_pairs), {"pairs": shown["pairs"]}), [run, run_b, only],
                shown["pairs"], api_name="ui_compare_filter", **ANALYSES, **PRIVATE)
    shown["pairs"].select(by_name(in_turns(service, ui.select_pair), detail), [run, run_b], list(detail.values()),
                          api_name="ui_compare_select", **ANALYSES, **PRIVATE)
    return {"run_b": run_b, "handlers": ui}
