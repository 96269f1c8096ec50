"""The Train tab: start, watch and cancel one background fine-tuning job."""

from __future__ import annotations

import typing
from typing import Any

import gradio as gr

from qa_core import plots, views
from qa_core.config import QAConfig, help_of
from qa_core.jobs import JobBusyError
from qa_core.service import HINTS, QAService, form_fields
from qa_core.ui.common import PRIVATE, QUICK_MINUTES, Outputs, by_name, model_picker

DATA_CHOICES = ("Bundled sample", "Upload a SQuAD JSON file", "Path on the server or hub name")
SWITCHED_OFF = "Training is switched off on this server."


class TrainHandlers:
    """The Train tab's event handlers: each calls the service and returns its outputs by name."""

    def __init__(self, service: QAService) -> None:
        self.service = service

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


def build_train_tab(service: QAService) -> dict[str, Any]:
    ui = TrainHandlers(service)
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
            with gr.Row():
                options = [option_input(name, getattr(defaults, name)) for name in form_fields()]
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
    upload.upload(by_name(ui.check_upload, message), upload, shown["message"], api_name="ui_check_upload", **PRIVATE)
    start.click(by_name(ui.start_training, message), [model, choice, upload, path, eval_data, *options],
                shown["message"], api_name="ui_start_training", **PRIVATE)
    quick.click(by_name(ui.start_quick, message), None, shown["message"], api_name="ui_start_quick", **PRIVATE)
    cancel.click(by_name(ui.cancel, message), None, shown["message"], api_name="ui_cancel", **PRIVATE)
    return {"model": model, "handlers": ui, **shown}
