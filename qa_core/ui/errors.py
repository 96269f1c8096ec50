"""The Errors tab: a run's evaluation records, summarised, filtered, and inspected one question at a time."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr
import pandas as pd

from qa_core import answer_views, charts, errors_views, plots
from qa_core.error_analysis import (ANSWER_LENGTHS, QUESTION_WORDS, THRESHOLD_STEP, V2_ERRORS, QuestionRecord,
                                    RecordFilter, answer_length_bucket, answerable_slice, find_record, group_scores,
                                    rescore, rescore_record)
from qa_core.errors_views import passed_over, record_marks, record_verdict, sent_flip
from qa_core.fairness import Caller
from qa_core.service import QAService
from qa_core.ui.ask import no_answer
from qa_core.ui.calibration_panel import build_calibration_panel
from qa_core.ui.common import ANALYSES, ANSWERS, EXPLAIN, PRIVATE, Outputs, by_name, caller_of, in_turns
from qa_core.ui.compare_panel import build_compare_panel
from qa_core.ui.errors_layout import (ANSWERED_COLORS, ERROR_COLORS, attribution_outputs, filter_controls,
                                     question_outputs, summary_outputs, threshold_controls)
from qa_core.ui.style import unselect_js

if TYPE_CHECKING:  # types only: attributions imports captum, inference torch
    from qa_core.attributions import Attribution
    from qa_core.inference import TokenLogits

NO_ROW = "Click a row of the question table first: that question is what goes to the Ask tab."
REDRAWN = ("question", "detail", "plot", "attribution", "attribution_note")  # what a threshold changes of a row


@dataclass(frozen=True)
class SelectedRow:
    """The row a click selected, and its logits (None: no_plot says why), kept in the page's session to draw the
    row again at another threshold: the logits do not depend on it."""

    run: str | None
    example_id: str
    logits: TokenLogits | None
    no_plot: str = ""


@dataclass(frozen=True)
class ExplainedRow:
    """The row Why this answer? explained, and its attributions, kept to frame and note them at another threshold."""

    run: str | None
    example_id: str
    attribution: Attribution


class ErrorsHandlers:
    """The Errors tab's event handlers: each calls the service and returns its outputs by name.

    threshold: a SQuAD 2.0 run's records re-scored as if it abstained above these null odds (None: as evaluated).
    """

    def __init__(self, service: QAService) -> None:
        self.service = service

    def records(self, run: str | None, threshold: float | None = None) -> Sequence[QuestionRecord]:
        records = self.service.records(run)
        return rescore(records, threshold) if threshold is not None and errors_views.is_squad_v2(records) else records

    def pick_run(self, run: str | None) -> Outputs:
        """A run was picked: the SQuAD 2.0 controls shown (at the run's own threshold) or hidden, and its summary."""
        try:
            records = self.service.records(run)
        except (ValueError, OSError):
            records = ()
        if not errors_views.is_squad_v2(records):
            hidden = gr.update(visible=False)
            return {"threshold": hidden, "presets": hidden, "best": hidden,
                    "detail": gr.update(color_map=ANSWERED_COLORS),
                    "kind": gr.update(visible=False, value=V2_ERRORS[0]), **self.summarize(run, None)}
        slider = self.service.threshold_slider(run, records)
        return {"threshold": gr.update(visible=True, minimum=slider.minimum, maximum=slider.maximum,
                                       value=slider.evaluated, step=THRESHOLD_STEP, info=slider.info),
                "presets": gr.update(visible=True), "best": gr.update(visible=slider.best is not None),
                "detail": gr.update(color_map=ERROR_COLORS),
                "kind": gr.update(visible=True), **self.summarize(run, slider.evaluated)}

    def evaluated_threshold(self, run: str | None) -> Outputs:
        """The slider back where the run was evaluated: the figures of its eval_metrics.json."""
        try:
            return {"threshold": gr.update(value=self.service.threshold_slider(run).evaluated)}
        except (ValueError, OSError):
            return {"threshold": gr.skip()}

    def best_threshold(self, run: str | None) -> Outputs:
        """The slider at the evaluation's best-F1 threshold (exactly, or on the slider's grid where that re-scores
        the same), where the Ask tab answers with the run's model; its F1 is the evaluation's best_f1."""
        try:
            best = self.service.threshold_slider(run).best
        except (ValueError, OSError):
            best = None
        return {"threshold": gr.skip() if best is None else gr.update(value=best)}

    def summarize(self, run: str | None, threshold: float | None = None) -> Outputs:
        """Summary line, bars by question word, answer length and (SQuAD 2.0) HasAns/NoAns, F1 histogram."""
        try:
            records = self.records(run, threshold)
        except (ValueError, OSError) as err:
            return {"summary": self.service.for_caller(err), "words": None, "lengths": None, "histogram": None,
                    "answerable": gr.update(value=None, visible=False)}
        v2 = errors_views.is_squad_v2(records)
        by_word, by_length = (group_scores(records, lambda r: r.question_word),
                              group_scores(records, answer_length_bucket))
        caveat = errors_views.evaluation_caveat(self.service.checked_run(run))
        return {"summary": errors_views.summary_text(records) + caveat,
                "words": charts.group_figure(by_word, "By question word", (*QUESTION_WORDS, "other")),
                "lengths": charts.group_figure(by_length, "By gold answer length (words)", ANSWER_LENGTHS),
                "histogram": charts.f1_histogram([r.f1 for r in records]),
                "answerable": gr.update(visible=v2, value=charts.group_figure(
                    group_scores(records, answerable_slice), "HasAns / NoAns", ("HasAns", "NoAns")) if v2 else None)}

    def filter_table(self, run: str | None, only_wrong: bool, f1_min: float, f1_max: float, word: str, search: str,
                     sort: str, kind: str = V2_ERRORS[0], threshold: float | None = None) -> Outputs:
        try:
            records = self.records(run, threshold)
            low, high = sorted((f1_min, f1_max))  # sliders set "from 80 to 20" mean 20..80, not nothing
            chosen = RecordFilter(only_wrong, (low, high), word, search or "",
                                  kind if errors_views.is_squad_v2(records) else V2_ERRORS[0])
            table = errors_views.record_table(records, chosen, sort)
            return {"table": table, "matched": errors_views.matched_note(len(table), len(records))}
        except (ValueError, OSError):
            return {"table": pd.DataFrame(columns=errors_views.TABLE_COLUMNS), "matched": ""}

    async def select_record_in_turn(self, run: str | None, event: gr.SelectData, threshold: float | None = None,
                                    request: gr.Request | None = None) -> Outputs:
        """A table row was clicked: gold and predicted (or passed-over) spans in the context, why a SQuAD 2.0 row was
        answered or not, the logit plot, the question's id. The logits take the caller's turn on the model thread,
        as answers do, waiting for it holding no thread."""
        example_id = str((event.row_value or [""])[0])
        try:
            record = await asyncio.to_thread(self.record_of, run, example_id, None)
            shown = await self.row_logits(run, record, caller_of(request))
            return {**await asyncio.to_thread(self.draw_row, shown, threshold), "selected": example_id, "shown": shown}
        except (ValueError, OSError) as err:
            return {"detail": None, "plot": None, "selected": "", "shown": None,
                    "question": self.service.for_caller(err)}

    async def row_logits(self, run: str | None, record: QuestionRecord, caller: Caller) -> SelectedRow:
        """The row with its logits from the model that answered it, in the windows its evaluation cut, or why it has
        none (a cancelled run has only its checkpoint)."""
        try:
            logits = await self.service.record_logits_in_turn(run, record, caller)
        except (ValueError, OSError, RuntimeError) as err:
            return SelectedRow(run, record.example_id, None, self.service.for_caller(err))
        return SelectedRow(run, record.example_id, logits)

    def draw_row(self, shown: SelectedRow, threshold: float | None) -> Outputs:
        """A selected row at the threshold (None: as evaluated): its spans, its verdict and its logit plot."""
        record, evaluated = self.record_pair(shown.run, shown.example_id, threshold)
        at = threshold if threshold is not None else self.service.run_threshold(shown.run)
        title = f"{record.question}  (F1 {record.f1:.1f})"
        if shown.logits is None:
            title = f"{title}  · no logit plot: {shown.no_plot}"
        plot = None if shown.logits is None else plots.logit_figure(shown.logits, record.span, record.gold_spans,
                                                                    passed_over(record))
        return {"detail": answer_views.highlight(record.context, record_marks(record)), "plot": plot,
                "question": "\n".join(filter(None, (title, record_verdict(record, evaluated, at))))}

    def rescore(self, run: str | None, threshold: float | None, shown: SelectedRow | None,
                explained: ExplainedRow | None) -> Outputs:
        """The threshold moved: the summary and figures, and the selected row and its explanation, at it."""
        return {**self.summarize(run, threshold), **self.rethreshold(run, threshold, shown, explained)}

    def rethreshold(self, run: str | None, threshold: float | None, shown: SelectedRow | None,
                    explained: ExplainedRow | None) -> Outputs:
        """The selected row and its explanation drawn again at the threshold (verdict, marks, plot labels, note),
        from the logits and attributions already computed, which the threshold does not change. What was kept for
        a run picked before (or nothing kept) is left alone: picking a run clears it."""
        outputs: Outputs = {name: gr.skip() for name in REDRAWN}
        try:
            if shown is not None and shown.run == run:
                outputs.update(self.draw_row(shown, threshold))
            if explained is not None and explained.run == run:
                outputs.update(self.draw_explanation(explained, threshold))
        except (ValueError, OSError):  # the run's records changed under the page: the next click says so
            pass
        return outputs

    def record_of(self, run: str | None, example_id: str, threshold: float | None) -> QuestionRecord:
        """A question's record at the threshold (None: as evaluated); only it is re-scored, not the whole run."""
        return self.record_pair(run, example_id, threshold)[0]

    def record_pair(self, run: str | None, example_id: str,
                    threshold: float | None) -> tuple[QuestionRecord, QuestionRecord]:
        """A question's record at the threshold, and as evaluated (whose score says the null and span scores)."""
        evaluated = find_record(self.service.records(run), example_id)
        return (evaluated if threshold is None else rescore_record(evaluated, threshold)), evaluated

    async def attribute_in_turn(self, run: str | None, example_id: str, threshold: float | None = None,
                                request: gr.Request | None = None) -> Outputs:
        """Why this answer: a heat map of token attributions for the selected row, and the time it took; where the
        row abstains at the slider's threshold, the note says the explained span is the one passed over."""
        if not example_id:
            return {"attribution": None, "explained": None,
                    "attribution_note": "Click a row of the question table first."}
        try:
            explained = ExplainedRow(run, example_id,
                                     await self.service.attribute_record(run, example_id, caller_of(request)))
            return {**await asyncio.to_thread(self.draw_explanation, explained, threshold), "explained": explained}
        except (ValueError, OSError, RuntimeError) as err:
            return {"attribution": None, "explained": None,
                    "attribution_note": f"No attributions: {self.service.for_caller(err)}"}

    def draw_explanation(self, explained: ExplainedRow, threshold: float | None) -> Outputs:
        """A row's attributions at the threshold: framed and noted as the answer, or as the span passed over."""
        record, attribution = self.record_of(explained.run, explained.example_id, threshold), explained.attribution
        passed = passed_over(record)
        note = answer_views.explained_note(record.context, passed) + answer_views.attribution_text(attribution,
                                                                                    self.service.explain_budget_s())
        return {"attribution": plots.attribution_figure(attribution, passed is not None), "attribution_note": note}

    def send_to_ask(self, run: str | None, example_id: str, threshold: float | None = None) -> Outputs:
        """The row's question and context to the Ask tab, with the run's model where it has one; the Ask tab's
        message says when the row, shown at the slider's threshold, is decided the other way at the Ask tab's."""
        skip = dict.fromkeys(("tabs", "model", "question", "context", "message", *no_answer()), gr.skip())
        if not example_id:
            gr.Warning(NO_ROW)
            return skip
        try:
            record = find_record(self.service.records(run), example_id)
            model, kept = self.service.sent_model(run)
            asked = self.service.model_threshold(model) if model else None  # None: it answers every question
            flips = "" if model is None or threshold is None else sent_flip(
                self.record_of(run, example_id, threshold),
                None if asked is None else self.record_of(run, example_id, asked), threshold, asked)
        except (ValueError, OSError) as err:
            gr.Warning(self.service.for_caller(err))
            return skip
        return {**no_answer(), "tabs": gr.Tabs(selected="ask"),
                "model": gr.skip() if model is None else gr.update(value=model),
                "question": record.question, "context": record.context, "message": kept or flips}

    def pick_run_again(self, run: str | None) -> Outputs:
        """After a job: the picked run read again if the job wrote it (its picker kept its value: no change event)."""
        job_run = Path(self.service.jobs.snapshot().output_dir).name
        return {**self.pick_run(run), **self.forget_selection()} if run and Path(run).name == job_run else {}

    @staticmethod
    def forget_selection() -> Outputs:
        """Another run was picked: the selected question, its spans, plots and attributions were the last run's."""
        return {"question": "", "detail": None, "plot": None, "selected": "", "shown": None, "attribution": None,
                "attribution_note": "", "explained": None}


def build_errors_tab(service: QAService) -> dict[str, Any]:
    ui = ErrorsHandlers(service)
    with gr.Tab("Errors", id="errors"):
        run = gr.Dropdown(service.record_choices(), value=None, label="Run",
                          info="Runs with evaluation records, and evaluations (train.py evaluate --output_dir)",
                          elem_id="errors-run")
        summary = summary_outputs()
        threshold, presets = threshold_controls()
        controls = filter_controls()
        filters = [run, *controls.values(), threshold]  # filter_table's arguments, in its order
        table = {"matched": gr.Markdown(elem_id="errors-matched"),
                 "table": gr.Dataframe(pd.DataFrame(columns=errors_views.TABLE_COLUMNS),
                                       label="Dev questions (click a row)",
                                       interactive=False, wrap=True, column_widths=errors_views.TABLE_WIDTHS,
                                       elem_id="errors-table")}
        detail = question_outputs()
        with gr.Row():
            send = gr.Button("Send to the Ask tab (edit and ask again)", elem_id="errors-send")
            explain = gr.Button("Why this answer? (token attributions)", elem_id="errors-explain")
        why = attribution_outputs()
        build_compare_panel(service, run)
        build_calibration_panel(service, run)
    picked = {**summary, "threshold": threshold, "presets": presets["row"], "best": presets["best"],
              "kind": controls["kind"], "detail": detail["detail"]}
    # the handlers reading the run's records take turns with the answers (in_turns)
    run.change(by_name(in_turns(service, ui.pick_run), picked), run, list(picked.values()), api_name="ui_summarize",
               **ANALYSES, **PRIVATE)
    selection = {**detail, **why}
    run.change(by_name(ui.forget_selection, selection), None, list(selection.values()),
               api_name="ui_forget_selection", show_progress="hidden", **PRIVATE)
    run.change(None, js=unselect_js("errors-run"), api_name="ui_unselect", **PRIVATE)  # in the page only
    # One listener for the figures and the selected row: a third on the slider kept Gradio's page re-sending a
    # typed value in a loop, the question table's update pending all the while
    rescored = {**summary, **{name: selection[name] for name in REDRAWN}}
    threshold.change(by_name(in_turns(service, ui.rescore), rescored), [run, threshold, detail["shown"],
                     why["explained"]], list(rescored.values()), api_name="ui_rescore", show_progress="hidden",
                     **ANALYSES, **PRIVATE)
    for name, handler in (("evaluated", ui.evaluated_threshold), ("best", ui.best_threshold)):
        presets[name].click(by_name(in_turns(service, handler), {"threshold": threshold}), run, threshold,
                            api_name=f"ui_threshold_{name}", **ANALYSES, **PRIVATE)
    for n, control in enumerate(filters):
        control.change(by_name(in_turns(service, ui.filter_table), table), filters, list(table.values()),
                       api_name=f"ui_filter_{n}", **ANALYSES, **PRIVATE)
    table["table"].select(by_name(ui.select_record_in_turn, detail), [run, threshold], list(detail.values()),
                          api_name="ui_select_record", **ANSWERS, **PRIVATE)
    explain.click(by_name(ui.attribute_in_turn, why), [run, detail["selected"], threshold], list(why.values()),
                  api_name="ui_attribute", **EXPLAIN, **PRIVATE)
    return {"run": run, "send": send, "selected": detail["selected"], "threshold": threshold, "handlers": ui,
            "picked": {**picked, **selection}}

