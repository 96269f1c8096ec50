"""The public-host policy: which models, runs and data a caller may name; messages kept free of server paths."""

from __future__ import annotations

import re
import typing
from pathlib import Path

from qa_core.config import DEFAULT_MODEL, QAConfig
from qa_core.data_sources import looks_like_a_path
from qa_core.run_files import (RECORDS_FILE, RUN_FILE, evaluation_folder_refusal, has_model, is_evaluation_folder,
                               read_run_info)
from qa_core.run_lock import run_status
from qa_core.settings import Settings

# A Hugging Face Space (SPACE_ID set) reaches the app through proxies at private addresses, which append the
# visitor's address to X-Forwarded-For. Trusting the private networks lets uvicorn take the last address no proxy
# of ours wrote (what a visitor writes in the header comes before it), so fair turns go by visitor, not by proxy.
PRIVATE_NETWORKS = "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,127.0.0.0/8,::1,fc00::/7"
MAX_NAME_CHARS = 4096  # a model or run name: Linux's PATH_MAX; hub ids are far shorter


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


def check_name(name: str | None, what: str) -> str:
    """A caller's model or run name, trimmed as every name is ('' for none); refused, before it reaches the file
    system or a message, where no folder or hub id could have it: too long, or holding a character that does not
    print (its escape in a message would read as a path, which scrub cuts: '\\x00' as 'x00')."""
    name = (name or "").strip()
    if len(name) > MAX_NAME_CHARS:
        raise ValueError(f"{what} name has {len(name):,} characters; a folder path or hub id has at most "
                         f"{MAX_NAME_CHARS:,}")
    hidden = next((i for i, char in enumerate(name) if not char.isprintable()), None)
    if hidden is not None:
        raise ValueError(f"the {what} name holds a character that does not print (U+{ord(name[hidden]):04X} at "
                         f"character {hidden + 1})")
    return name


def check_model(name: str | None, settings: Settings) -> str:
    """The model to load for a caller's choice; on a public server only the default model, runs under the runs
    folder and QA_ALLOWED_MODELS, refused without touching the disk for anything else."""
    asked, folder = check_name(name, "model"), default_folder(settings)
    if folder is not None and asked in ("", folder.name):
        return settings.default_model
    name = asked or settings.default_model
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
    run = check_name(run, "run")
    if not run:
        raise ValueError("pick a run first" + (" (train one in the Train tab if the list is empty)"
                                               if settings.training_enabled else ""))
    # `train.py evaluate` folders hold no run.json
    found = find_run(run, settings, (RUN_FILE, RECORDS_FILE))
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
        status = run_status(folder, read_run_info(folder))
    except ValueError:
        return name  # not a run: the loader names what is missing
    if status == "running":  # a process trains it now
        advice = " yet"
    elif not can_resume:
        advice = ""
    else:
        advice = "; resume it in the Train tab to finish it"
    raise ValueError(f"run {folder.name} is {status} and has no final model{advice}")
