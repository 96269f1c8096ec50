"""Gradio app: ask a model, fine-tune one in the background, and browse its errors question by question."""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # starts offline without telemetry calls

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from qa_core import plots, views
from qa_core.config import DEFAULT_MODEL, QAConfig, help_of
from qa_core.data import DataError, load_examples
from qa_core.error_analysis import QUESTION_WORDS, answer_length_bucket, group_scores
from qa_core.inference import AnswerResult
from qa_core.jobs import (QUICK_EXPECTED_S, JobBusyError, JobManager, model_choices, new_run_dir, quick_config,
                          record_choices)
from qa_core.modeling import LoadedModel
from qa_core.runtime import configure_process
from qa_core.serving import ModelCache

logger = logging.getLogger(__name__)

MAX_CONTEXT_WORDS = 30_000  # 20,000 words made 224 windows: 4.5 s int8, 8.9 s fp32 on 2 cores; more would starve others
LENGTH_BUCKETS = ("1", "2-3", "4-6", "7+")
QUICK_MINUTES = -(-QUICK_EXPECTED_S // 60)
HUB_HINT = "distilbert/distilbert-base-cased-distilled-squad"
ANSWER_COLORS = {"answer": "#ffb347"}
ERROR_COLORS = {"gold": "#7dd87d", "predicted": "#ffb347", "gold + predicted": "#7fb3ff"}
NO_HEAD_NOTICE = (f"**This model has no fine-tuned question answering head yet, so its answers are close to "
                  f"random.** Fine-tune it first: the quick fine-tune trains it on the bundled sample in about "
                  f"{QUICK_MINUTES} minutes on a laptop CPU. Online, you can also type the hub id of a "
                  f"model fine-tuned on SQuAD in the model box, e.g. `{HUB_HINT}`.")


@dataclass(frozen=True)
class Settings:
    runs_root: Path
    default_model: str
    training_enabled: bool
    fast_inference: bool  # compiled int8 copies for answering, on x86 CPUs with VNNI or AMX

    @staticmethod
    def from_env() -> Settings:
        return Settings(Path(os.environ.get("QA_RUNS_DIR", "runs")), os.environ.get("QA_DEFAULT_MODEL", DEFAULT_MODEL),
                        os.environ.get("QA_DISABLE_TRAINING", "").lower() not in ("1", "true", "yes"),
                        os.environ.get("QA_FAST_INFERENCE", "1").lower() not in ("0", "false", "no"))


SETTINGS = Settings.from_env()
JOBS = JobManager()


MODELS = ModelCache(fast=SETTINGS.fast_inference)


def run_answer(model: str, question: str, context: str,
               exact: bool = False) -> tuple[AnswerResult, LoadedModel, float]:
    """The answer, the model that gave it, and the seconds answering took (not loading the model); exact: from
    the model as trained and evaluated, not its fast int8 copy."""
    words = len((context or "").split())
    if words > MAX_CONTEXT_WORDS:
        raise ValueError(f"the context has {words:,} words; this server answers up to {MAX_CONTEXT_WORDS:,}")
    return MODELS.answer(model or SETTINGS.default_model, question or "", context or "", exact)


def ask(model: str, question: str, context: str) -> tuple[Any, ...]:
    """Ask tab: highlighted answer, score line, alternatives, logit plot, message, no-head notice visibility."""
    try:
        result, loaded, seconds = run_answer(model, question, context)
    except (ValueError, OSError) as err:
        return None, "", views.alternatives_table(None), None, f"Cannot answer: {err}", gr.update(visible=False)
    top = result.prediction.alternatives[0] if result.prediction.alternatives else None
    marks = {"answer": [result.prediction.span]} if result.prediction.span else {}
    score = (f"score {top.score:.2f} · probability {top.probability:.0%} · {result.windows} window(s) · "
             f"{seconds * 1000:.0f} ms" if top else "no answer span found")
    figure = plots.logit_figure(result.logits, result.prediction.span)
    return (views.highlight(result.context, marks), score, views.alternatives_table(result), figure, "",
            gr.update(visible=not loaded.has_qa_head))


# ---- Train tab ----------------------------------------------------------------------------------------------

DATA_CHOICES = ("Bundled sample", "Upload a SQuAD JSON file", "Path on the server or hub name")
NUMBER_FIELDS = ("num_train_epochs", "max_steps", "learning_rate", "per_device_train_batch_size", "max_seq_length",
                 "doc_stride", "max_train_samples", "max_eval_samples")


def data_source(choice: str, upload: str | None, path: str) -> str:
    if choice == DATA_CHOICES[1]:
        if not upload:
            raise ValueError("no file uploaded: drop a SQuAD JSON file in the upload box first")
        return upload
    if choice == DATA_CHOICES[2]:
        if not (path or "").strip():
            raise ValueError("no data path or hub name given")
        return path.strip()
    return "sample"


def check_upload(upload: str | None) -> str:
    """Validate an uploaded file at once, so a wrong file is reported before any training starts."""
    if not upload:
        return ""
    try:
        report = load_examples(upload).report
    except DataError as err:
        return f"Not usable as training data: {err}"
    return f"{Path(upload).name}: {report.examples:,} questions ({report.unanswerable} unanswerable)"


def train_config(model: str, choice: str, upload: str | None, path: str, eval_data: str,
                 *numbers: float | None) -> QAConfig:
    """The QAConfig of a Train-tab run; numbers follow NUMBER_FIELDS, empty ones keep the defaults."""
    train_file = data_source(choice, upload, path)
    values = {k: v for k, v in zip(NUMBER_FIELDS, numbers) if v is not None}
    for name in ("max_steps", "max_seq_length", "doc_stride", "per_device_train_batch_size"):
        if name in values:
            values[name] = int(values[name])
    for name in ("max_train_samples", "max_eval_samples"):  # 0 means all
        values[name] = int(values[name]) if values.get(name) else None
    model = model or SETTINGS.default_model
    return QAConfig(model_name_or_path=model, train_file=train_file,
                    validation_file=(eval_data or "").strip() or train_file,
                    output_dir=str(new_run_dir(SETTINGS.runs_root, model)), **values)


def start_training(model: str, choice: str, upload: str | None, path: str, eval_data: str,
                   *numbers: float | None) -> str:
    if not SETTINGS.training_enabled:
        return "Training is switched off on this server (QA_DISABLE_TRAINING)."
    try:
        snapshot = JOBS.start(train_config(model, choice, upload, path, eval_data, *numbers))
    except (ValueError, JobBusyError) as err:
        return f"Not started: {err}"
    return f"Started job {snapshot.job_id}: {snapshot.output_dir}"


def start_quick() -> str:
    if not SETTINGS.training_enabled:
        return "Training is switched off on this server (QA_DISABLE_TRAINING)."
    output_dir = new_run_dir(SETTINGS.runs_root, SETTINGS.default_model)
    try:
        snapshot = JOBS.start(quick_config(SETTINGS.default_model, str(output_dir)))
    except JobBusyError as err:
        return f"Not started: {err}"
    return f"Started the quick fine-tune (about {QUICK_MINUTES} min): {snapshot.output_dir}"


def cancel_training() -> str:
    snapshot = JOBS.cancel()
    return "Cancelling after the current step." if snapshot.active else "No training job is running."


def poll(seen_version: int) -> tuple[Any, ...]:
    """Timer tick: redraw the job's bar, status and loss curve only when the job changed."""
    s = JOBS.snapshot()
    if s.version == seen_version and not s.active:
        return gr.skip(), gr.skip(), gr.skip(), seen_version
    figure = plots.loss_figure(s.losses, s.total_steps) if s.version != seen_version else gr.skip()
    return views.progress_html(s), views.job_text(s), figure, s.version


def picker_updates(run: str | None = None) -> tuple[Any, ...]:
    """New choices for the Ask and Train model pickers and the Errors run picker; the run picker keeps its run,
    or takes the newest one (its change event then loads it)."""
    models = model_choices(SETTINGS.runs_root, SETTINGS.default_model)
    runs = record_choices(SETTINGS.runs_root)
    kept = run if run in {value for _, value in runs} else (runs[0][1] if runs else None)
    return gr.update(choices=models), gr.update(choices=models), gr.update(choices=runs, value=kept)


# ---- Errors tab ---------------------------------------------------------------------------------------------

def summarize(run: str | None) -> tuple[Any, ...]:
    """Errors tab: summary line, bars by question word and answer length, F1 histogram."""
    try:
        records = views.run_records(run)
    except (ValueError, OSError) as err:
        return str(err), None, None, None
    words = plots.group_figure(group_scores(records, lambda r: r.question_word), "By question word",
                               (*QUESTION_WORDS, "other"))
    lengths = plots.group_figure(group_scores(records, answer_length_bucket), "By gold answer length (words)",
                                 LENGTH_BUCKETS)
    summary = views.summary_text(records) + views.evaluation_caveat(run or "")
    return summary, words, lengths, plots.f1_histogram([r.f1 for r in records])


def filter_table(run: str | None, only_wrong: bool, f1_min: float, f1_max: float, word: str, search: str,
                 sort: str) -> pd.DataFrame:
    try:
        records = views.run_records(run)
    except (ValueError, OSError):
        return pd.DataFrame(columns=views.TABLE_COLUMNS)
    return views.record_table(records, only_wrong, (f1_min, f1_max), word, search or "", sort)


def select_record(run: str | None, event: gr.SelectData) -> tuple[Any, ...]:
    """A table row was clicked: gold and predicted spans in the context, the logit plot, the question's id."""
    example_id = str((event.row_value or [""])[0])
    try:
        record = views.find_record(run, example_id)
    except (ValueError, OSError) as err:
        return None, None, "", str(err)
    marks = {"gold": list(record.gold_spans), "predicted": [record.span] if record.span else []}
    title = f"{record.question}  (F1 {record.f1:.1f})"
    try:  # the logits need the run's model; a cancelled run has only its checkpoint
        result, *_ = run_answer(run or "", record.question, record.context, exact=True)
    except (ValueError, OSError) as err:
        return views.highlight(record.context, marks), None, example_id, f"{title}  · no logit plot: {err}"
    figure = plots.logit_figure(result.logits, record.span, record.gold_spans)
    return views.highlight(record.context, marks), figure, example_id, title


def send_to_ask(run: str | None, example_id: str) -> tuple[Any, ...]:
    try:
        record = views.find_record(run, example_id)
    except (ValueError, OSError):
        return gr.skip(), gr.skip(), gr.skip(), gr.skip()
    return gr.Tabs(selected="ask"), gr.update(value=run), record.question, record.context


# ---- Layout -------------------------------------------------------------------------------------------------

def model_picker(label: str, info: str) -> gr.Dropdown:
    return gr.Dropdown(model_choices(SETTINGS.runs_root, SETTINGS.default_model), value=SETTINGS.default_model,
                       label=label, info=info, allow_custom_value=True, interactive=True)


def number_field(name: str, default: Any) -> gr.Number:
    shown = 0 if default is None else default  # 0 stands for "all" in the sample-limit fields
    return gr.Number(shown, label=name, info=help_of(name) + (" 0 = all." if default is None else ""),
                     elem_id=f"train-{name}")


def build_ask_tab() -> dict[str, Any]:
    with gr.Tab("Ask", id="ask"):
        model = model_picker("Model", f"The embedded default, a finished run, or a hub id (online) such as {HUB_HINT}")
        with gr.Row():
            with gr.Column(scale=3):
                context = gr.Textbox(label="Context", lines=8, max_lines=20, elem_id="ask-context")
                question = gr.Textbox(label="Question", lines=1, elem_id="ask-question")
                button = gr.Button("Answer", variant="primary", elem_id="ask-button")
            with gr.Column(scale=2):
                answer = gr.HighlightedText(label="Answer in the context", color_map=ANSWER_COLORS,
                                            show_legend=False, elem_id="ask-answer")
                score = gr.Textbox(label="Score", interactive=False, elem_id="ask-score")
                message = gr.Textbox(label="Message", interactive=False, elem_id="ask-message")
                with gr.Group(visible=False) as notice:
                    gr.Markdown(NO_HEAD_NOTICE)
                    quick = gr.Button(f"Quick fine-tune in the Train tab (about {QUICK_MINUTES} min)")
        alternatives = gr.Dataframe(views.alternatives_table(None), label="Top 5 answers", interactive=False)
        plot = gr.Plot(label="Start and end logits per token")
        rows, titles = views.sample_examples()
        gr.Examples(rows, [context, question], example_labels=titles, label="Examples (the bundled sample)")
    event = dict(fn=ask, inputs=[model, question, context],
                 outputs=[answer, score, alternatives, plot, message, notice], concurrency_limit=2)
    button.click(**event)
    question.submit(**event)
    return {"model": model, "question": question, "context": context, "quick": quick}


def build_train_tab() -> dict[str, Any]:
    defaults = QAConfig()
    with gr.Tab("Train", id="train"):
        if not SETTINGS.training_enabled:
            gr.Markdown("**Training is switched off on this server.** The Ask and Errors tabs work as usual.")
        model = model_picker("Start from model", "The embedded MiniLM, a finished run, or a hub id (online)")
        with gr.Row():
            choice = gr.Radio(list(DATA_CHOICES), value=DATA_CHOICES[0], label="Training data")
            upload = gr.File(label="SQuAD JSON file", file_types=[".json", ".jsonl"], type="filepath")
            path = gr.Textbox(label="Data path or hub name", placeholder="data/train.json or rajpurkar/squad")
        eval_data = gr.Textbox(label="Evaluation data", placeholder="empty: the training data itself; "
                               "or a path, or a hub name such as rajpurkar/squad:validation")
        with gr.Row():
            numbers = [number_field(n, getattr(defaults, n)) for n in NUMBER_FIELDS]
        with gr.Row():
            start = gr.Button("Start training", variant="primary", interactive=SETTINGS.training_enabled,
                              elem_id="train-start")
            quick = gr.Button(f"Quick fine-tune: embedded model on the sample (about {QUICK_MINUTES} min)",
                              interactive=SETTINGS.training_enabled, elem_id="train-quick")
            cancel = gr.Button("Cancel", variant="stop", interactive=SETTINGS.training_enabled)
        message = gr.Textbox(label="Message", interactive=False, elem_id="train-message")
        bar = gr.HTML(views.progress_html(JOBS.snapshot()))
        status = gr.Textbox(label="Training job", lines=4, interactive=False, elem_id="train-status")
        loss = gr.Plot(label="Loss")
    upload.upload(check_upload, upload, message)
    start.click(start_training, [model, choice, upload, path, eval_data, *numbers], message)
    quick.click(start_quick, None, message)
    cancel.click(cancel_training, None, message)
    return {"model": model, "bar": bar, "status": status, "loss": loss, "message": message}


def build_errors_tab() -> dict[str, Any]:
    with gr.Tab("Errors", id="errors"):
        run = gr.Dropdown(record_choices(SETTINGS.runs_root), value=None, label="Run",
                          info="Runs that wrote evaluation records", elem_id="errors-run")
        summary = gr.Textbox(label="Summary", interactive=False, elem_id="errors-summary")
        with gr.Row():
            words, lengths, histogram = gr.Plot(), gr.Plot(), gr.Plot()
        with gr.Row():
            only_wrong = gr.Checkbox(label="Only wrong answers")
            f1_min = gr.Slider(0, 100, 0, step=1, label="F1 from")
            f1_max = gr.Slider(0, 100, 100, step=1, label="F1 to")
            word = gr.Dropdown(["all", *QUESTION_WORDS, "other"], value="all", label="Question word")
            search = gr.Textbox(label="Search", placeholder="words in the question, gold or prediction")
            sort = gr.Dropdown(list(views.SORTS), value=views.SORTS[0], label="Sort")
        table = gr.Dataframe(pd.DataFrame(columns=views.TABLE_COLUMNS), label="Dev questions (click a row)",
                             interactive=False, wrap=True, elem_id="errors-table")
        selected_question = gr.Textbox(label="Selected question", interactive=False)
        detail = gr.HighlightedText(label="Context: gold and predicted answers", color_map=ERROR_COLORS,
                                    show_legend=True, elem_id="errors-detail")
        plot = gr.Plot(label="Start and end logits per token")
        send = gr.Button("Send to the Ask tab (edit and ask again)")
        selected = gr.State("")
    filters = [run, only_wrong, f1_min, f1_max, word, search, sort]
    run.change(summarize, run, [summary, words, lengths, histogram])
    for control in filters:
        control.change(filter_table, filters, table)
    table.select(select_record, run, [detail, plot, selected, selected_question])
    return {"run": run, "send": send, "selected": selected}


def build_app() -> gr.Blocks:
    with gr.Blocks(title="Extractive QA") as demo:
        gr.Markdown("# Extractive question answering\nAsk a model, fine-tune one, and see where it fails.")
        with gr.Tabs(selected="ask") as tabs:
            ask_tab, train_tab, errors_tab = build_ask_tab(), build_train_tab(), build_errors_tab()
        version = gr.State(-1)
        timer = gr.Timer(1.0)
        pickers = [ask_tab["model"], train_tab["model"], errors_tab["run"]]
        timer.tick(poll, version, [train_tab["bar"], train_tab["status"], train_tab["loss"], version],
                   show_progress="hidden")
        # Refreshed on tab switches, not by the timer: a timer output would fight the user's own picking.
        tabs.select(picker_updates, errors_tab["run"], pickers, show_progress="hidden")
        ask_tab["quick"].click(lambda: gr.Tabs(selected="train"), None, tabs).then(
            start_quick, None, train_tab["message"])
        errors_tab["send"].click(send_to_ask, [errors_tab["run"], errors_tab["selected"]],
                                 [tabs, ask_tab["model"], ask_tab["question"], ask_tab["context"]])
        demo.load(picker_updates, errors_tab["run"], pickers)
    return demo


THEME = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])

if __name__ == "__main__":
    configure_process()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    build_app().queue(default_concurrency_limit=2).launch(theme=THEME)
