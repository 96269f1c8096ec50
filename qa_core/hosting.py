"""Server settings and the public-host policy: which models, runs and data a caller may name, request limits."""

from __future__ import annotations

import os
import re
import typing
from dataclasses import dataclass, fields
from pathlib import Path

from qa_core.config import DEFAULT_MODEL, QAConfig
from qa_core.data_sources import looks_like_a_path
from qa_core.run_files import (RECORDS_FILE, RUN_FILE, evaluation_folder_refusal, has_model, is_evaluation_folder,
                               read_run_info)

# Defaults of the request limits; bench/results/limits.json holds the measurements behind them.
MAX_CONTEXT_CHARS = 15_000
MAX_CONTEXT_WINDOWS = 32
MAX_QUESTION_CHARS = 500
MAX_UPLOAD_MB = 50
# Windows of training data take memory per question (bench/README.md, Limits and memory).
PUBLIC_MAX_TRAIN_EXAMPLES = 10_000
MODEL_WAIT_S = 20.0
PUBLIC_MAX_RUNS = 8  # run folders a public server's web jobs keep (web_runs.py): each holds a model and a checkpoint
MAX_CALLER_REQUESTS = 4  # questions (and, apart, explanations) one visitor of a public server may have in flight
# A Hugging Face Space (SPACE_ID set) reaches the app through proxies at private addresses, which append the
# visitor's address to X-Forwarded-For. Trusting the private networks lets uvicorn take the last address no proxy
# of ours wrote (what a visitor writes in the header comes before it), so fair turns go by visitor, not by proxy.
PRIVATE_NETWORKS = "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,127.0.0.0/8,::1,fc00::/7"
MAX_NAME_CHARS = 4096  # a model or run name: Linux's PATH_MAX; hub ids are far shorter


def _flag(name: str, default: bool) -> bool:
    value = os.environ.get(name, "").strip().lower()
    return default if not value else value in ("1", "true", "yes", "on")


def _number(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    try:
        return float(value) if value else default
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a number") from None


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
    model_wait_s: float = MODEL_WAIT_S  # a question waits this long for its model to load, then is told to retry
    max_caller_requests: int = MAX_CALLER_REQUESTS  # applied on a public server only (fairness.FairWorker)
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
                        model_wait_s=_number("QA_MODEL_WAIT_S", MODEL_WAIT_S),
                        max_caller_requests=int(_number("QA_MAX_CALLER_REQUESTS", MAX_CALLER_REQUESTS)),
                        max_train_examples=int(_number("QA_MAX_TRAIN_EXAMPLES",
                                                       PUBLIC_MAX_TRAIN_EXAMPLES if public else 0)) or None,
                        train_limits=TrainLimits.from_env(),
                        max_runs=int(_number("QA_MAX_RUNS", PUBLIC_MAX_RUNS if public else 0)) or None)


def find_run(name: str, settings: Settings, marks: tuple[str, ...] = (RUN_FILE,),
             operator: bool = False) -> Path | None:
    """The run folder directly under the runs folder that `name` names, holding one of `marks` (run.json: a run;
    an evaluation's records also mark a folder the Errors tab can read). Its folder name, or its path where the
    name is no stranger's: a local server's user, or the operator's settings (operator=True)."""
    if settings.public and not operator and ("/" in name or "\\" in name):
        return None  # a stranger never names a server path, not even one inside the runs folder
    root = settings.runs_root.resolve()
    candidate = Path(name)
    folder = (root / candidate.name) if candidate.name and candidate.name not in (".", "..") else None
    try:
        if folder is None or (candidate.parent != Path(".") and candidate.resolve().parent != root):
            return None
        return folder if any((folder / mark).is_file() for mark in marks) else None
    except OSError:  # a name the file system cannot look up (too long, say) names no run
        return None


def check_name(name: str, what: str) -> str:
    """Refuse a name no folder or hub id could have before it reaches the file system (or an error message)."""
    if len(name) > MAX_NAME_CHARS:
        raise ValueError(f"{what} name has {len(name):,} characters; a folder path or hub id has at most "
                         f"{MAX_NAME_CHARS:,}")
    return name


def check_model(name: str | None, settings: Settings) -> str:
    """The model to load for a caller's choice; on a public server only the default model, runs under the runs
    folder and QA_ALLOWED_MODELS, refused without touching the disk for anything else."""
    asked, folder = (name or "").strip(), default_folder(settings)
    if folder is not None and asked in ("", folder.name):
        return settings.default_model
    name = check_name(asked or settings.default_model, "model")
    if name == DEFAULT_MODEL and not (settings.public and settings.default_model != DEFAULT_MODEL):
        return name  # the packaged model needs no checks; a public server offers it only as its default
    # First: QA_DEFAULT_MODEL may name a run as any caller does; an evaluation folder is found too, so that the
    # caller hears it holds no model (check_model_folder), not that no folder has its name.
    run = find_run(name, settings, (RUN_FILE, RECORDS_FILE), operator=name == settings.default_model)
    if run is not None:
        return str(run)
    if name in settings.allowed_models or (name == settings.default_model and folder is None):
        return name
    if settings.public and _names_a_path(name, hub_ids=True):
        raise ValueError(f"a model path is not offered on this server: name the model as its list shows it; "
                         f"choose {offered(settings)}")
    if settings.public:
        raise ValueError(f"model {shorten(name)!r} is not offered on this server: choose {offered(settings)}")
    return name


def default_name(settings: Settings) -> str:
    """The default model as callers see it: a run or, on a public server, a model folder by its name (never a
    server path), else as configured."""
    run = find_run(settings.default_model, settings, operator=True)
    if run is not None:
        return run.name
    return Path(settings.default_model).name if _default_is_a_path(settings) else settings.default_model


def default_folder(settings: Settings) -> Path | None:
    """QA_DEFAULT_MODEL on a public server when it is a model folder named by path (not a run, a hub id or
    'embedded'): callers see it and name it by its folder name alone."""
    if not _default_is_a_path(settings) or find_run(settings.default_model, settings, operator=True) is not None:
        return None
    return Path(settings.default_model)


def _default_is_a_path(settings: Settings) -> bool:
    """A public server's QA_DEFAULT_MODEL written as a path, which callers must never see."""
    default = settings.default_model
    return settings.public and default != DEFAULT_MODEL and looks_like_a_path(default)


def offered(settings: Settings, default: bool = True) -> str:
    """What a public server offers as a model (default: the default model among it), as one list: "or" before its
    last item, "one of" before several hub ids."""
    allowed = settings.allowed_models
    choices = ["the default model"] * default + ["a finished run from the list"]
    if allowed:
        choices.append(allowed[0] if len(allowed) == 1 else f"one of {', '.join(allowed)}")
    return f"{', '.join(choices[:-1])} or {choices[-1]}" if len(choices) > 1 else choices[0]


def check_run(run: str | None, settings: Settings) -> str:
    """A run folder for the Errors tab; on a public server only one under the runs folder."""
    if not run:
        raise ValueError("pick a run first (train one in the Train tab if the list is empty)")
    # `train.py evaluate` folders hold no run.json
    found = find_run(check_name(run, "run"), settings, (RUN_FILE, RECORDS_FILE))
    if found is not None:
        return str(found)
    if settings.public and _names_a_path(run, hub_ids=False):
        raise ValueError("a path is not a run on this server: name the run as the run list shows it")
    if settings.public:
        raise ValueError(f"run {shorten(run)!r} is not a run on this server")
    if not Path(run).is_dir():  # else its records' message would advise training a run that is not there
        raise ValueError(f"no run folder {run!r}" if _names_a_path(run, hub_ids=False)
                         else f"no run named {run!r} in {settings.runs_root}")
    return run


def _names_a_path(name: str, hub_ids: bool) -> bool:
    """A caller's name written as a path (hub_ids: 'org/model' is a hub id, not a path). A public server says so
    rather than echo it: scrub would cut it to its last part, which may name what the server does offer."""
    return ("\\" in name or name.startswith((".", "/", "~")) or re.match(r"[A-Za-z]:", name) is not None
            or (not hub_ids and "/" in name) or name.count("/") > 1)


def check_request(question: str, context: str, settings: Settings) -> None:
    """Refuse, before any tokenizing, a question or context over the server's character limits."""
    if len(question) > settings.max_question_chars:
        raise ValueError(f"the question has {len(question):,} characters; this server answers questions of up to "
                         f"{settings.max_question_chars:,}")
    if len(context) > settings.max_context_chars:
        raise ValueError(f"the context has {len(context):,} characters; this server answers contexts of up to "
                         f"{settings.max_context_chars:,}")


def shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


# An absolute path (/x/y, ~/x, C:\x), not a hub id such as org/model: its last part is group 1.
_PATH = re.compile(r"(?<![\w.~-])(?:[A-Za-z]:[/\\]|~?[/\\])(?:[^\s'\"()<>,;:]+[/\\])*([^\s'\"()<>,;:/\\]*)")


def scrub(message: str, settings: Settings) -> str:
    """On a public server, a message with every absolute path cut to its last part (a file or run name), so no
    server folder shows; unchanged for a local server."""
    if not settings.public:
        return message
    return _PATH.sub(lambda m: m.group(1) or "…", message)


def trusted_proxies(environ: typing.Mapping[str, str]) -> str | None:
    """The addresses whose X-Forwarded-For uvicorn should believe (FORWARDED_ALLOW_IPS): the operator's when set,
    the private networks on a Hugging Face Space, else None (uvicorn's own default: this machine only)."""
    if environ.get("FORWARDED_ALLOW_IPS", "").strip():
        return environ["FORWARDED_ALLOW_IPS"]
    return PRIVATE_NETWORKS if environ.get("SPACE_ID", "").strip() else None


def answer_limits(config: QAConfig, settings: Settings) -> QAConfig:
    """A run's settings as this server answers with them: on a public server its span search (n_best_size,
    max_answer_length) within the caps a job trained here gets, whoever put the run in the runs folder."""
    if not settings.public:
        return config
    caps = settings.train_limits
    return config.replace(n_best_size=min(config.n_best_size, caps.n_best_size),
                          max_answer_length=min(config.max_answer_length, caps.max_answer_length))


def check_model_folder(name: str, can_resume: bool = True) -> str:
    """A run folder, an evaluation folder (or any local folder) without a model is refused with why, not 'no
    config.json'; the advice to resume a stopped run only where this server trains."""
    folder = Path(name)
    if not folder.is_dir() or has_model(folder):
        return name
    if is_evaluation_folder(folder):
        raise ValueError(evaluation_folder_refusal(folder).web)
    try:
        status = read_run_info(folder).status
    except ValueError:
        return name  # not a run: the loader names what is missing
    if not can_resume:
        advice = ""
    elif status == "running":  # training now, or killed before run.json could say otherwise
        advice = " yet (if its training was killed, resume it in the Train tab)"
    else:
        advice = "; resume it in the Train tab to finish it"
    raise ValueError(f"run {folder.name} is {status} and has no final model{advice}")
