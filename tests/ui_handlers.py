"""Every tab's handlers over one service, as the app builds them, and the question, texts and runs the tests of the
tabs share (tests/test_ui_*.py, tests/test_app.py); the fixtures over them are in tests/conftest.py."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from qa_core.config import QAConfig
from qa_core.config_options import form_fields
from qa_core.service import QAService
from qa_core.settings import Settings
from qa_core.training import train
from qa_core.ui.ask import AskHandlers
from qa_core.ui.errors import ErrorsHandlers
from qa_core.ui.train import TrainHandlers

CONTEXT = "The lighthouse lens was designed by Augustin Fresnel in the early nineteenth century."
QUESTION = "Who designed the lens?"


@dataclass(frozen=True)
class UI:
    """Every tab's handlers over one service, as the app builds them."""

    service: QAService
    ask: AskHandlers
    train: TrainHandlers
    errors: ErrorsHandlers


def handlers(settings: Settings) -> UI:
    service = QAService(settings)
    return UI(service, AskHandlers(service), TrainHandlers(service), ErrorsHandlers(service))


def form(**values) -> list:
    """Train-form values in form_fields() order; None keeps QAConfig's default."""
    return [values.get(name) for name in form_fields()]


LONG = " ".join(["The keeper wound the clockwork every night and trimmed the wick."] * 40)
LATE = LONG + " The last keeper was Abbie Burgess, who left in 1875."


def copy_run(run: Path, folder: Path) -> Path:
    shutil.copytree(run, folder)
    return folder


def cancel_at_once(settings, run: Path, **sizes: int) -> None:
    """A run of the sample cancelled before its first step: a checkpoint, no final model."""
    train(QAConfig(model_name_or_path=settings.default_model, train_file="sample", validation_file="sample",
                   output_dir=str(run), per_device_train_batch_size=4, max_seq_length=128, doc_stride=32, **sizes),
          should_stop=lambda: True)
