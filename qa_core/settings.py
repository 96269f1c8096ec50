"""Server settings from the QA_* environment variables: request limits, training caps, what a server offers."""

from __future__ import annotations

import contextlib
import contextvars
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TypeVar

from qa_core.config import DEFAULT_MODEL

T = TypeVar("T")

# Defaults of the request limits; bench/results/limits.json holds the measurements behind them.
MAX_CONTEXT_CHARS = 15_000
MAX_CONTEXT_WINDOWS = 32
MAX_QUESTION_CHARS = 500
MAX_UPLOAD_MB = 50
MAX_UPLOADS_MB = 500  # all uploads the server holds at once (until the sweep deletes them)
# Windows of training data take memory per question (bench/README.md, Limits and memory).
PUBLIC_MAX_TRAIN_EXAMPLES = 10_000
MODEL_WAIT_S = 20.0
PUBLIC_MAX_RUNS = 8  # run folders a public server's web jobs keep (web_runs.py): each holds a model and a checkpoint
MAX_CALLER_REQUESTS = 4  # questions (apart: analyses, explanations) a public server's visitor may have in flight
# Events one address may send a public server's queue a second, on average (an open page's training poll is one);
# five seconds' worth at once (a page load, a picked run)
MAX_ADDRESS_EVENTS_PER_S = 20


def _flag(name: str, default: bool) -> bool:
    value = os.environ.get(name, "").strip().lower()
    return default if not value else value in ("1", "true", "yes", "on")


def _number(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    try:
        number = float(value) if value else default
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a number") from None
    if not math.isfinite(number):  # "nan", "inf", or more digits than a float holds: no limit, no count
        raise ValueError(f"{name}={value!r} is not a finite number")
    return number


# The variable that sets each TrainLimits field on a public server; messages about a limit name it.
LIMIT_VARIABLES = {"max_steps": "QA_MAX_TRAIN_STEPS", "batch_size": "QA_MAX_BATCH_SIZE", "epochs": "QA_MAX_EPOCHS",
                   "max_seq_length": "QA_MAX_SEQ_LENGTH", "dataloader_workers": "QA_MAX_DATALOADER_WORKERS",
                   "window_cost": "QA_MAX_WINDOW_COST", "n_best_size": "QA_MAX_N_BEST_SIZE",
                   "max_answer_length": "QA_MAX_ANSWER_LENGTH", "checkpoints": "QA_MAX_CHECKPOINTS",
                   "loss_reports": "QA_MAX_LOSS_REPORTS", "torch_compile": "QA_ALLOW_TORCH_COMPILE",
                   "windows": "QA_MAX_TRAIN_WINDOWS", "eval_windows": "QA_MAX_EVAL_WINDOWS"}


@dataclass(frozen=True)
class TrainLimits:
    """Caps on a public server's training options (README: Hosting a public Space), each set by its variable of
    LIMIT_VARIABLES; a larger value is refused. Without them one visitor's request could hold the machine for days
    or ask for more memory than it has."""

    max_steps: int = 2_000
    batch_size: int = 64  # training and evaluation windows per step
    epochs: float = 20.0  # the quick fine-tune's preset takes 15 over the small sample
    max_seq_length: int = 512  # BERT-family position tables end there
    dataloader_workers: int = 2  # each is a process with its own memory
    # Tokens computed per context token (train_policy.window_cost); a stride close to the window's context room
    # advances each window by a few tokens and multiplies the windows of every question
    window_cost: float = 8.0
    # The span search takes the top n_best_size starts and ends of every window and keeps the pairs shorter than
    # max_answer_length: large ones multiply the work of each evaluation and of every answer the run gives.
    n_best_size: int = 50
    max_answer_length: int = 100  # tokens; SQuAD's answers are a few words
    checkpoints: int = 20  # written by save_steps in a job (each is the model and its optimizer)
    loss_reports: int = 500  # by logging_steps in a job (each redraws every watcher's plot)
    torch_compile: bool = False  # allowed or not: compiling holds the CPU for minutes before the first step
    # Windows a job cuts from each data source (features.window_limits); each question makes every window of its
    # context, so questions sharing a long context multiply the memory past max_train_examples
    windows: int = 30_000
    eval_windows: int = 5_000  # windows a job cuts from its evaluation data, which it runs over after every epoch

    @staticmethod
    def from_env() -> TrainLimits:
        return TrainLimits(**{f.name: _limit(LIMIT_VARIABLES[f.name], f.default) for f in fields(TrainLimits)})


def _limit(variable: str, default: bool | int | float) -> bool | int | float:
    """A limit from its variable, of its default's type."""
    if isinstance(default, bool):
        return _flag(variable, default)
    number = _number(variable, default)
    return int(number) if isinstance(default, int) else number


# Each bounded QAConfig option: the TrainLimits field that caps it.
LIMITED_OPTIONS = {"max_steps": "max_steps", "per_device_train_batch_size": "batch_size",
                   "per_device_eval_batch_size": "batch_size", "num_train_epochs": "epochs",
                   "max_seq_length": "max_seq_length", "dataloader_num_workers": "dataloader_workers",
                   "n_best_size": "n_best_size", "max_answer_length": "max_answer_length"}
# Options that say every how many steps a job does something: the TrainLimits field bounding how many times a job
# may, and what the job does (for the message).
PER_JOB_OPTIONS = {"save_steps": ("checkpoints", "writes a checkpoint"),
                   "logging_steps": ("loss_reports", "reports the loss")}


@dataclass(frozen=True)
class Settings:
    """How this server runs; from_env() reads them from QA_* environment variables (README: The web app)."""

    runs_root: Path = Path("runs")
    default_model: str = DEFAULT_MODEL
    training_enabled: bool = True
    fast_inference: bool = True  # compiled int8 copies for answering, on x86 CPUs with VNNI or AMX
    public: bool = False  # a public host: only offered models and runs, no server paths, no paths in messages
    allowed_models: tuple[str, ...] = ()  # hub ids a public server also offers
    max_context_chars: int = MAX_CONTEXT_CHARS
    max_context_windows: int = MAX_CONTEXT_WINDOWS
    max_question_chars: int = MAX_QUESTION_CHARS
    max_upload_bytes: int = MAX_UPLOAD_MB * 1_000_000
    max_uploads_bytes: int = MAX_UPLOADS_MB * 1_000_000  # all uploads held at once, until the sweep
    model_wait_s: float = MODEL_WAIT_S  # a question waits this long for its model to load, then is told to retry
    max_caller_requests: int = MAX_CALLER_REQUESTS  # applied on a public server only (fairness.FairWorker)
    max_address_events_per_s: float = MAX_ADDRESS_EVENTS_PER_S  # a public server's only (ui/event_limit.py)
    max_train_examples: int | None = None  # questions a training job reads from each data source; None: all
    train_limits: TrainLimits = TrainLimits()  # applied on a public server only
    max_runs: int | None = None  # runs of web jobs kept, the oldest removed before a job starts; None: all

    @staticmethod
    def from_env() -> Settings:
        public = _flag("QA_PUBLIC", False)
        training = _flag("QA_ENABLE_TRAINING", not public and not _flag("QA_DISABLE_TRAINING", False))
        allowed = tuple(m.strip() for m in os.environ.get("QA_ALLOWED_MODELS", "").split(",") if m.strip())
        default = os.environ.get("QA_DEFAULT_MODEL", "").strip() or DEFAULT_MODEL
        return Settings(runs_root=Path(os.environ.get("QA_RUNS_DIR", "runs")), default_model=default,
                        training_enabled=training, fast_inference=_flag("QA_FAST_INFERENCE", True), public=public,
                        allowed_models=allowed,
                        max_context_chars=int(_number("QA_MAX_CONTEXT_CHARS", MAX_CONTEXT_CHARS)),
                        max_context_windows=int(_number("QA_MAX_CONTEXT_WINDOWS", MAX_CONTEXT_WINDOWS)),
                        max_question_chars=int(_number("QA_MAX_QUESTION_CHARS", MAX_QUESTION_CHARS)),
                        max_upload_bytes=int(_number("QA_MAX_UPLOAD_MB", MAX_UPLOAD_MB) * 1_000_000),
                        max_uploads_bytes=int(_number("QA_MAX_UPLOADS_MB", MAX_UPLOADS_MB) * 1_000_000),
                        model_wait_s=_number("QA_MODEL_WAIT_S", MODEL_WAIT_S),
                        max_caller_requests=int(_number("QA_MAX_CALLER_REQUESTS", MAX_CALLER_REQUESTS)),
                        max_address_events_per_s=_number("QA_MAX_ADDRESS_EVENTS_PER_S", MAX_ADDRESS_EVENTS_PER_S),
                        max_train_examples=int(_number("QA_MAX_TRAIN_EXAMPLES",
                                                       PUBLIC_MAX_TRAIN_EXAMPLES if public else 0)) or None,
                        train_limits=TrainLimits.from_env(),
                        max_runs=int(_number("QA_MAX_RUNS", PUBLIC_MAX_RUNS if public else 0)) or None)


@contextlib.contextmanager
def limits_within(variable: contextvars.ContextVar[T], value: T) -> Iterator[None]:
    """A limit set for this block in this thread of work only (a context variable), not for the process: the web
    app's training job sets its limits around its training call while the server answers under none."""
    token = variable.set(value)
    try:
        yield
    finally:
        variable.reset(token)
