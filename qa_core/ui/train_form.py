"""The Train tab's form: model, data and an input per QAConfig option it offers (train.py builds the tab)."""

from __future__ import annotations

import typing
from typing import Any

import gradio as gr

from qa_core.config import HINTS, QAConfig, help_of
from qa_core.config_options import form_fields
from qa_core.service import QAService
from qa_core.settings import Settings
from qa_core.train_policy import compiles
from qa_core.ui.common import model_picker

DATA_CHOICES = ("Bundled sample", "Upload a SQuAD JSON file", "Path on the server or hub name")
OPTION_WIDTH = 260  # px: the longest field name (per_device_train_batch_size) on one line


def data_controls(service: QAService) -> dict[str, Any]:
    """The model to start from, the training data (the sample, an upload where the server trains, or on a private
    server a path or hub name) and the evaluation data."""
    public, uploads = service.settings.public, service.settings.training_enabled
    form = {"model": model_picker(service, "Start from model")}
    # Where no job can run the server refuses uploads (request_limit), so the form offers none.
    choices = [DATA_CHOICES[0]] + [DATA_CHOICES[1]] * uploads + [DATA_CHOICES[2]] * (not public)
    with gr.Row():
        form["choice"] = gr.Radio(choices, value=DATA_CHOICES[0], label="Training data", elem_id="train-choice")
        with gr.Column(visible=uploads):
            form["upload"] = gr.File(label="SQuAD JSON file", file_types=[".json", ".jsonl"], type="filepath",
                                     elem_id="train-upload")
            form["note"] = gr.Textbox(label="Uploaded file", interactive=False, lines=2, max_lines=4, visible=False,
                                      elem_id="train-upload-note")
        form["path"] = gr.Textbox(label="Data path or hub name", placeholder="data/train.json or rajpurkar/squad",
                                  visible=not public)
    form["eval_data"] = gr.Textbox(label="Evaluation data", placeholder="empty: the training data itself; "
                                   "or a path, or a hub name such as rajpurkar/squad:validation", visible=not public)
    return form


def option_controls(settings: Settings) -> list[Any]:
    """The QAConfig fields of the form, one input each, in the order form_fields gives."""
    # Closed at first: open, its dozens of fields put Start screens below the upload box on a phone; the label
    # says what it holds, so on a desktop the options are as easy to find (each field shows its default). One
    # line at 390 px: a label that wraps pushes the arrow out of the box, which then scrolls sideways.
    defaults, shown = QAConfig(), {name: offered_option(name, settings) for name in form_fields()}
    with gr.Accordion(f"Options ({sum(shown.values())} settings)", open=False, elem_id="train-options"):
        with gr.Row():
            return [option_cell(name, getattr(defaults, name), visible) for name, visible in shown.items()]


def option_input(name: str, default: Any) -> Any:
    """One Train-form input for a QAConfig field, labelled and explained by the field's help."""
    hint, info = HINTS[name], help_of(name)
    look = {"label": name, "info": info, "elem_id": f"train-{name}"}
    if hint is bool:
        return gr.Checkbox(default, **look)
    if hint is str:
        return gr.Textbox(default, **look)
    if bool in typing.get_args(hint):  # bool | None: auto
        return gr.Dropdown(["auto", "on", "off"], value="auto", **look)
    optional_count = int in typing.get_args(hint)
    shown = 0 if default is None and optional_count else default  # 0 stands for "all" in the sample limits
    return gr.Number(shown, **{**look, "info": info + (" 0 = all." if optional_count else "")})


def option_cell(name: str, default: Any, visible: bool = True) -> Any:
    """An option in a column of its own: a row of them wraps instead of squeezing each below its width."""
    with gr.Column(min_width=OPTION_WIDTH, visible=visible):
        return option_input(name, default)


def offered_option(name: str, settings: Settings) -> bool:
    """Whether the form shows an option: not one the server refuses whatever its value (torch_compile where it
    does not compile); hidden, it still sends its default."""
    return name != "torch_compile" or compiles(settings)
