"""The Errors tab: a run's evaluation records, summarised, filtered, and inspected one question at a time."""

from __future__ import annotations

from typing import Any

import gradio as gr
import pandas as pd

from qa_core import plots, views
from qa_core.error_analysis import ANSWER_LENGTHS, QUESTION_WORDS, answer_length_bucket, group_scores
from qa_core.service import QAService
from qa_core.ui.common import PRIVATE, Outputs, by_name

ERROR_COLORS = {"gold": "#7dd87d", "predicted": "#ffb347", "gold + predicted": "#7fb3ff"}


class ErrorsHandlers:
    """The Errors tab's event handlers: each calls the service and returns its outputs by name."""

    def __init__(self, service: QAService) -> None:
        self.service = service

    def summarize(self, run: str | None) -> Outputs:
        """Summary line, bars by question word and answer length, F1 histogram."""
        try:
            records = self.service.records(run)
        except (ValueError, OSError) as err:
            return {"summary": self.service.explain(err), "words": None, "lengths": None, "histogram": None}
        return {"summary": views.summary_text(records) + views.evaluation_caveat(self.service.run_path(run)),
                "words": plots.group_figure(group_scores(records, lambda r: r.question_word), "By question word",
                                            (*QUESTION_WORDS, "other")),
                "lengths": plots.group_figure(group_scores(records, answer_length_bucket),
                                              "By gold answer length (words)", ANSWER_LENGTHS),
                "histogram": plots.f1_histogram([r.f1 for r in records])}

    def filter_table(self, run: str | None, only_wrong: bool, f1_min: float, f1_max: float, word: str, search: str,
                     sort: str) -> Outputs:
        try:
            records = self.service.records(run)
        except (ValueError, OSError):
            return {"table": pd.DataFrame(columns=views.TABLE_COLUMNS)}
        return {"table": views.record_table(records, only_wrong, (f1_min, f1_max), word, search or "", sort)}

    def select_record(self, run: str | None, event: gr.SelectData) -> Outputs:
        """A table row was clicked: gold and predicted spans in the context, the logit plot, the question's id."""
        example_id = str((event.row_value or [""])[0])
        try:
            record = views.find_record(self.service.records(run), example_id)
        except (ValueError, OSError) as err:
            return {"detail": None, "plot": None, "selected": "", "question": self.service.explain(err)}
        marks = {"gold": list(record.gold_spans), "predicted": [record.span] if record.span else []}
        shown = {"detail": views.highlight(record.context, marks), "selected": example_id}
        title = f"{record.question}  (F1 {record.f1:.1f})"
        try:  # the logits need the run's model; a cancelled run has only its checkpoint
            result, *_ = self.service.answer(run, record.question, record.context, exact=True)
        except (ValueError, OSError, RuntimeError) as err:
            return {**shown, "plot": None, "question": f"{title}  · no logit plot: {self.service.explain(err)}"}
        return {**shown, "plot": plots.logit_figure(result.logits, record.span, record.gold_spans), "question": title}

    def send_to_ask(self, run: str | None, example_id: str) -> Outputs:
        try:
            record = views.find_record(self.service.records(run), example_id)
        except (ValueError, OSError):
            return {"tabs": gr.skip(), "model": gr.skip(), "question": gr.skip(), "context": gr.skip()}
        return {"tabs": gr.Tabs(selected="ask"), "model": gr.update(value=run), "question": record.question,
                "context": record.context}


def build_errors_tab(service: QAService) -> dict[str, Any]:
    ui = ErrorsHandlers(service)
    with gr.Tab("Errors", id="errors"):
        run = gr.Dropdown(service.record_choices(), value=None, label="Run", info="Runs that wrote evaluation records",
                          elem_id="errors-run")
        summary = {"summary": gr.Textbox(label="Summary", interactive=False, elem_id="errors-summary")}
        with gr.Row():
            summary.update(words=gr.Plot(), lengths=gr.Plot(), histogram=gr.Plot())
        with gr.Row():
            filters = [run, gr.Checkbox(label="Only wrong answers"), gr.Slider(0, 100, 0, step=1, label="F1 from"),
                       gr.Slider(0, 100, 100, step=1, label="F1 to"),
                       gr.Dropdown(["all", *QUESTION_WORDS, "other"], value="all", label="Question word"),
                       gr.Textbox(label="Search", placeholder="words in the question, gold or prediction"),
                       gr.Dropdown(list(views.SORTS), value=views.SORTS[0], label="Sort")]
        table = {"table": gr.Dataframe(pd.DataFrame(columns=views.TABLE_COLUMNS), label="Dev questions (click a row)",
                                       interactive=False, wrap=True, elem_id="errors-table")}
        detail = {"question": gr.Textbox(label="Selected question", interactive=False),
                  "detail": gr.HighlightedText(label="Context: gold and predicted answers", color_map=ERROR_COLORS,
                                               show_legend=True, elem_id="errors-detail"),
                  "plot": gr.Plot(label="Start and end logits per token"), "selected": gr.State("")}
        send = gr.Button("Send to the Ask tab (edit and ask again)")
    run.change(by_name(ui.summarize, summary), run, list(summary.values()), api_name="ui_summarize", **PRIVATE)
    for n, control in enumerate(filters):
        control.change(by_name(ui.filter_table, table), filters, table["table"], api_name=f"ui_filter_{n}", **PRIVATE)
    table["table"].select(by_name(ui.select_record, detail), run, list(detail.values()), api_name="ui_select_record",
                          **PRIVATE)
    return {"run": run, "send": send, "selected": detail["selected"], "handlers": ui}
