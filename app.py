"""Gradio app: ask a model, fine-tune one in the background, and browse its errors question by question."""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # starts offline without telemetry calls

import functools
import logging
import typing
from collections.abc import Callable
from typing import Any

import gradio as gr
import pandas as pd

from qa_core import plots, views
from qa_core.config import QAConfig, help_of
from qa_core.error_analysis import ANSWER_LENGTHS, QUESTION_WORDS, answer_length_bucket, group_scores
from qa_core.hosting import Settings
from qa_core.inference import answer_note
from qa_core.jobs import QUICK_EXPECTED_S, JobBusyError
from qa_core.runtime import configure_process
from qa_core.service import HINTS, QAService, form_fields

logger = logging.getLogger(__name__)

QUICK_MINUTES = -(-QUICK_EXPECTED_S // 60)
HUB_HINT = "distilbert/distilbert-base-cased-distilled-squad"
ANSWER_COLORS = {"answer": "#ffb347"}
ERROR_COLORS = {"gold": "#7dd87d", "predicted": "#ffb347", "gold + predicted": "#7fb3ff"}
NO_HEAD_NOTICE = (f"**This model has no fine-tuned question answering head yet, so its answers are close to "
                  f"random.** Fine-tune it first: the quick fine-tune trains it on the bundled sample in about "
                  f"{QUICK_MINUTES} minutes on a laptop CPU. Online, you can also type the hub id of a "
                  f"model fine-tuned on SQuAD in the model box, e.g. `{HUB_HINT}`.")
DATA_CHOICES = ("Bundled sample", "Upload a SQuAD JSON file", "Path on the server or hub name")
SWITCHED_OFF = "Training is switched off on this server."
ANSWER_CONCURRENCY = 16  # questions wait for their model in request threads; one model thread computes
QUEUE_SIZE = 256
CACHE_SWEEP = (900, 3600)  # every 15 min, delete uploads older than an hour (used or refused)
Outputs = dict[str, Any]


def by_name(handler: Callable[..., Outputs], outputs: dict[str, Any]) -> Callable[..., dict]:
    """Wire a handler that returns {output name: value} to the components of those names."""
    @functools.wraps(handler)  # Gradio reads the handler's signature (gr.SelectData) through __wrapped__
    def wired(*args: Any) -> dict:
        return {outputs[name]: value for name, value in handler(*args).items()}
    return wired


def as_api(service: QAService, call: Callable[..., Any]) -> Callable[..., Any]:
    """An API endpoint: a refused call raises gr.Error with a one-line message (no server paths when public)."""
    @functools.wraps(call)
    def endpoint(*args: Any, **kwargs: Any) -> Any:
        try:
            return call(*args, **kwargs)
        except (ValueError, OSError, RuntimeError) as err:
            raise gr.Error(service.explain(err), print_exception=False) from None
    return endpoint


class Handlers:
    """The UI's event handlers: each calls the service and returns its outputs by name."""

    def __init__(self, service: QAService) -> None:
        self.service = service
        self.settings = service.settings

    # ---- Ask --------------------------------------------------------------------------------------------
    def ask(self, model: str, question: str, context: str) -> Outputs:
        try:
            result, loaded, seconds = self.service.answer(model, question, context)
        except (ValueError, OSError, RuntimeError) as err:
            return {"answer": None, "score": "", "alternatives": views.alternatives_table(None), "plot": None,
                    "message": f"Cannot answer: {self.service.explain(err)}", "notice": gr.update(visible=False)}
        top = result.prediction.alternatives[0] if result.prediction.alternatives else None
        marks = {"answer": [result.prediction.span]} if result.prediction.span else {}
        timing = f"{result.windows} window(s) · {seconds * 1000:.0f} ms"
        score = (f"{answer_note(result.prediction)} · {timing}" if result.prediction.abstained or not top else
                 f"score {top.score:.2f} · probability {top.probability:.0%} · {timing}")
        return {"answer": views.highlight(result.context, marks), "score": score,
                "alternatives": views.alternatives_table(result),
                "plot": plots.logit_figure(result.logits, result.prediction.span), "message": "",
                "notice": gr.update(visible=not loaded.has_qa_head)}

    # ---- Train ------------------------------------------------------------------------------------------
    def data_source(self, choice: str, upload: str | None, path: str) -> str:
        if choice == DATA_CHOICES[1]:
            if not upload:
                raise ValueError("no file uploaded: drop a SQuAD JSON file in the upload box first")
            return self.service.check_data(upload, "training data", upload=True)
        if choice == DATA_CHOICES[2]:
            if not (path or "").strip():
                raise ValueError("no data path or hub name given")
            return self.service.check_data(path, "training data")
        return "sample"

    def check_upload(self, upload: str | None) -> Outputs:
        return {"message": self.service.check_upload(upload)}

    def start_training(self, model: str, choice: str, upload: str | None, path: str, eval_data: str,
                       *values: Any) -> Outputs:
        """values: the Train form's inputs, in form_fields() order."""
        try:
            train_file = self.data_source(choice, upload, path)
            eval_file = self.service.check_data(eval_data, "evaluation data")
            config = self.service.train_config(model, train_file, eval_file, dict(zip(form_fields(), values)))
            snapshot = self.service.start(config, upload if choice == DATA_CHOICES[1] else None)
        except (ValueError, JobBusyError) as err:
            return {"message": f"Not started: {self.service.explain(err)}"}
        return {"message": f"Started job {snapshot.job_id}: {self.service.explain(snapshot.output_dir)}"}

    def start_quick(self) -> Outputs:
        try:
            snapshot = self.service.start(self.service.quick_config())
        except (ValueError, JobBusyError) as err:
            return {"message": f"Not started: {self.service.explain(err)}"}
        return {"message": f"Started the quick fine-tune (about {QUICK_MINUTES} min): "
                           f"{self.service.explain(snapshot.output_dir)}"}

    def cancel(self) -> Outputs:
        active = self.service.jobs.cancel().active
        return {"message": "Cancelling after the current step." if active else "No training job is running."}

    def poll(self, seen_version: int) -> Outputs:
        """Timer tick: redraw the job's bar, status and loss curve only when the job changed."""
        s = self.service.jobs.snapshot()
        if s.version == seen_version and not s.active:
            return {"bar": gr.skip(), "status": gr.skip(), "loss": gr.skip(), "version": seen_version}
        loss = plots.loss_figure(s.losses, s.total_steps) if s.version != seen_version else gr.skip()
        return {"bar": views.progress_html(s), "status": self.service.explain(views.job_text(s)), "loss": loss,
                "version": s.version}

    def pickers(self, run: str | None = None) -> Outputs:
        """New choices for the model pickers and the Errors run picker; the run picker keeps its run, or takes
        the newest one (its change event then loads it)."""
        models, runs = self.service.model_choices(), self.service.record_choices()
        kept = run if run in {value for _, value in runs} else (runs[0][1] if runs else None)
        return {"ask_model": gr.update(choices=models), "train_model": gr.update(choices=models),
                "run": gr.update(choices=runs, value=kept)}

    # ---- Errors -----------------------------------------------------------------------------------------
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


# ---- Layout -----------------------------------------------------------------------------------------------

def model_picker(service: QAService, label: str, info: str) -> gr.Dropdown:
    return gr.Dropdown(service.model_choices(), value=service.settings.default_model, label=label, info=info,
                       allow_custom_value=True, interactive=True)


def option_input(name: str, default: Any) -> Any:
    """One Train-form input for a QAConfig field, labelled and explained by the field's help."""
    hint, info = HINTS[name], help_of(name)
    if hint is bool:
        return gr.Checkbox(default, label=name, info=info, elem_id=f"train-{name}")
    if hint is str:
        return gr.Textbox(default, label=name, info=info, elem_id=f"train-{name}")
    if bool in typing.get_args(hint):  # bool | None: auto
        return gr.Dropdown(["auto", "on", "off"], value="auto", label=name, info=info, elem_id=f"train-{name}")
    optional_count = int in typing.get_args(hint)
    shown = 0 if default is None and optional_count else default  # 0 stands for "all" in the sample limits
    return gr.Number(shown, label=name, info=info + (" 0 = all." if optional_count else ""), elem_id=f"train-{name}")


def build_ask_tab(service: QAService, ui: Handlers) -> dict[str, Any]:
    with gr.Tab("Ask", id="ask"):
        model = model_picker(service, "Model", f"The default model, a finished run, or a hub id (online) such as "
                                               f"{HUB_HINT}")
        with gr.Row():
            with gr.Column(scale=3):
                context = gr.Textbox(label="Context", lines=8, max_lines=20, elem_id="ask-context",
                                     max_length=service.settings.max_context_chars)
                question = gr.Textbox(label="Question", lines=1, elem_id="ask-question",
                                      max_length=service.settings.max_question_chars)
                button = gr.Button("Answer", variant="primary", elem_id="ask-button")
            with gr.Column(scale=2):
                outputs = {"answer": gr.HighlightedText(label="Answer in the context", color_map=ANSWER_COLORS,
                                                        show_legend=False, elem_id="ask-answer"),
                           "score": gr.Textbox(label="Score", interactive=False, elem_id="ask-score"),
                           "message": gr.Textbox(label="Message", interactive=False, elem_id="ask-message")}
                with gr.Group(visible=False) as outputs["notice"]:
                    gr.Markdown(NO_HEAD_NOTICE)
                    quick = gr.Button(f"Quick fine-tune in the Train tab (about {QUICK_MINUTES} min)")
        outputs["alternatives"] = gr.Dataframe(views.alternatives_table(None), label="Top 5 answers",
                                               interactive=False)
        outputs["plot"] = gr.Plot(label="Start and end logits per token")
        rows, titles = views.sample_examples()
        gr.Examples(rows, [context, question], example_labels=titles, label="Examples (the bundled sample)",
                    api_visibility="private", api_name="ui_example")
    event = dict(fn=by_name(ui.ask, outputs), inputs=[model, question, context], outputs=list(outputs.values()),
                 concurrency_limit=ANSWER_CONCURRENCY, concurrency_id="answer", api_visibility="private")
    button.click(**event, api_name="ui_ask")
    question.submit(**event, api_name="ui_ask_submit")
    return {"model": model, "question": question, "context": context, "quick": quick}


def build_train_tab(service: QAService, ui: Handlers) -> dict[str, Any]:
    enabled, defaults = service.settings.training_enabled, QAConfig()
    with gr.Tab("Train", id="train"):
        if not enabled:
            gr.Markdown(f"**{SWITCHED_OFF}** The Ask and Errors tabs work as usual.")
        model = model_picker(service, "Start from model", "The default model, a finished run, or a hub id (online)")
        with gr.Row():
            choices = DATA_CHOICES[:2] if service.settings.public else DATA_CHOICES
            choice = gr.Radio(list(choices), value=DATA_CHOICES[0], label="Training data")
            upload = gr.File(label="SQuAD JSON file", file_types=[".json", ".jsonl"], type="filepath")
            path = gr.Textbox(label="Data path or hub name", placeholder="data/train.json or rajpurkar/squad",
                              visible=not service.settings.public)
        eval_data = gr.Textbox(label="Evaluation data", placeholder="empty: the training data itself; "
                               "or a path, or a hub name such as rajpurkar/squad:validation",
                               visible=not service.settings.public)
        with gr.Accordion("Options (defaults from QAConfig)", open=True):
            names = form_fields()
            with gr.Row():
                options = [option_input(name, getattr(defaults, name)) for name in names]
        with gr.Row():
            start = gr.Button("Start training", variant="primary", interactive=enabled, elem_id="train-start")
            quick = gr.Button(f"Quick fine-tune: default model on the sample (about {QUICK_MINUTES} min)",
                              interactive=enabled, elem_id="train-quick")
            cancel = gr.Button("Cancel", variant="stop", interactive=enabled)
        shown = {"message": gr.Textbox(label="Message", interactive=False, elem_id="train-message"),
                 "bar": gr.HTML(views.progress_html(service.jobs.snapshot())),
                 "status": gr.Textbox(label="Training job", lines=4, interactive=False, elem_id="train-status"),
                 "loss": gr.Plot(label="Loss")}
    message = {"message": shown["message"]}
    private = dict(api_visibility="private")
    upload.upload(by_name(ui.check_upload, message), upload, shown["message"], api_name="ui_check_upload", **private)
    start.click(by_name(ui.start_training, message), [model, choice, upload, path, eval_data, *options],
                shown["message"], api_name="ui_start_training", **private)
    quick.click(by_name(ui.start_quick, message), None, shown["message"], api_name="ui_start_quick", **private)
    cancel.click(by_name(ui.cancel, message), None, shown["message"], api_name="ui_cancel", **private)
    return {"model": model, **shown}


def build_errors_tab(service: QAService, ui: Handlers) -> dict[str, Any]:
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
    private = dict(api_visibility="private")
    run.change(by_name(ui.summarize, summary), run, list(summary.values()), api_name="ui_summarize", **private)
    for n, control in enumerate(filters):
        control.change(by_name(ui.filter_table, table), filters, table["table"], api_name=f"ui_filter_{n}", **private)
    table["table"].select(by_name(ui.select_record, detail), run, list(detail.values()), api_name="ui_select_record",
                          **private)
    return {"run": run, "send": send, "selected": detail["selected"]}


def api_endpoints(service: QAService) -> dict[str, Callable[..., Any]]:
    """The endpoints meant for programs (README: The API), by api_name: plain values in, JSON-shaped values out."""
    return {"answer": service.answer_json, "list_runs": service.runs_json, "start_training": service.start_json,
            "cancel_training": service.cancel_json, "training_status": service.job_json,
            "run_records": service.records_json}


def add_api(service: QAService) -> None:
    for name, call in api_endpoints(service).items():
        limits = dict(concurrency_limit=ANSWER_CONCURRENCY, concurrency_id="answer") if name == "answer" else {}
        gr.api(as_api(service, call), api_name=name, **limits)


def build_app(settings: Settings) -> gr.Blocks:
    """The whole app for these settings: its model cache and training job are made here, not at import."""
    service = QAService(settings)
    ui = Handlers(service)
    with gr.Blocks(title="Extractive QA", delete_cache=CACHE_SWEEP) as demo:
        gr.Markdown("# Extractive question answering\nAsk a model, fine-tune one, and see where it fails.")
        with gr.Tabs(selected="ask") as tabs:
            ask_tab, train_tab, errors_tab = (build_ask_tab(service, ui), build_train_tab(service, ui),
                                              build_errors_tab(service, ui))
        version, timer = gr.State(-1), gr.Timer(1.0)
        polled = {"bar": train_tab["bar"], "status": train_tab["status"], "loss": train_tab["loss"], "version": version}
        pickers = {"ask_model": ask_tab["model"], "train_model": train_tab["model"], "run": errors_tab["run"]}
        private = dict(api_visibility="private", show_progress="hidden")
        timer.tick(by_name(ui.poll, polled), version, list(polled.values()), api_name="ui_poll", **private)
        # Refreshed on tab switches, not by the timer: a timer output would fight the user's own picking.
        tabs.select(by_name(ui.pickers, pickers), errors_tab["run"], list(pickers.values()), api_name="ui_pickers",
                    **private)
        ask_tab["quick"].click(lambda: gr.Tabs(selected="train"), None, tabs, api_name="ui_to_train", **private).then(
            by_name(ui.start_quick, {"message": train_tab["message"]}), None, train_tab["message"],
            api_name="ui_start_quick_from_ask", **private)
        sent = {"tabs": tabs, "model": ask_tab["model"], "question": ask_tab["question"], "context": ask_tab["context"]}
        errors_tab["send"].click(by_name(ui.send_to_ask, sent), [errors_tab["run"], errors_tab["selected"]],
                                 list(sent.values()), api_name="ui_send_to_ask", **private)
        demo.load(by_name(ui.pickers, pickers), errors_tab["run"], list(pickers.values()), api_name="ui_load",
                  **private)
        add_api(service)
    service.preload_default()  # a visitor's first question finds the default model loaded (or loading)
    return demo


THEME = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])


def main() -> None:
    configure_process()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings.from_env()
    build_app(settings).queue(default_concurrency_limit=2, max_size=QUEUE_SIZE).launch(
        theme=THEME, max_file_size=settings.max_upload_bytes)


if __name__ == "__main__":
    main()
