"""The run pickers of the web app: which runs each offers, and the label that says what each run is."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from qa_core.config import DEFAULT_MODEL
from qa_core.eval_settings import read_evaluated
from qa_core.run_files import QUICK_DATA, has_model, read_run_info, run_of
from qa_core.run_lock import INTERRUPTED
from qa_core.run_list import EVALUATION, RunSummary, list_runs


def evaluated_on_training_data(config: dict) -> bool:
    """Whether a run (its run.json's config) was evaluated on the data it trained on: its figures then show
    memorisation, not how it does on new questions."""
    evaluated = config.get("validation_file")
    return bool(evaluated) and evaluated == config.get("train_file")


def measured_on(config: dict) -> str:
    """What a run's evaluation figures were measured on, for a label: held-out data or its own training data."""
    evaluated = config.get("validation_file") or ""
    if not evaluated or evaluated_on_training_data(config):
        return "on its training data"
    name = Path(evaluated).name
    return "on held-out sample passages" if name == QUICK_DATA[1] else f"on {name}"


def run_label(run: RunSummary) -> str:
    """A run as pickers list it: its F1 first, then its name, what the F1 was measured on, and why a run without a
    model has none; an evaluation-only folder says it is one (no run.json tells what it was measured on). The F1
    leads because a phone's closed picker shows a label's first thirty-odd characters, which a run's name (a
    timestamp and a model) fills."""
    f1 = run.metrics.get("f1")
    name = Path(run.path).name
    score = [] if f1 is None else [f"F1 {f1:.1f}"]
    if run.status == EVALUATION:
        return " · ".join([*score, name, "evaluation only"])
    try:
        config = read_run_info(Path(run.path)).config
    except ValueError:
        config = {}
    measured = (evaluated_again_on(Path(run.path), config) if run.evaluated_again
                else f"measured {measured_on(config)}")
    status = [] if run.status == "finished" and has_model(run.path) else [f"{stopped_status(run)}, no final model"]
    return " · ".join([*score, name, *([measured] if score else []), *status])


def evaluated_again_on(folder: Path, config: dict) -> str:
    """A run evaluated again (`train.py evaluate` into its folder), with the data its eval_settings.json records,
    which need not be its training's validation_file."""
    evaluated = read_evaluated(folder)
    if evaluated is None or not evaluated.data:
        return "evaluated again (train.py evaluate)"
    return f"evaluated again {measured_on({**config, 'validation_file': evaluated.data})}"


def stopped_status(run: RunSummary) -> str:
    """The status of a run without its final model, with the step an interrupted one resumes from."""
    return f"{INTERRUPTED} at step {run.step}" if run.status == INTERRUPTED else run.status


def model_choices(root: Path, default: str = DEFAULT_MODEL) -> list[tuple[str, str]]:
    """(label, value) for a model picker: the default model, then every finished run with its final model under
    root, newest first."""
    first = ("MiniLM-L6, no QA head yet (embedded)" if default == DEFAULT_MODEL else default, default)
    return [first] + [(run_label(r), r.path) for r in list_runs(root) if r.status == "finished" and has_model(r.path)]


def model_key(model: str) -> str:
    """What a model name loads, to tell two names of one model apart from two models: a local folder as its run
    folder resolved (a run and its model/ are one model), a hub id or 'embedded' as named."""
    path = Path(model).expanduser()
    return str(run_of(path)) if path.is_dir() else model


def offered_choice(model: str, offered: Mapping[str, str]) -> str | None:
    """The value of a model picker that loads `model`, None where none does; offered: each value and what it loads."""
    key = model_key(model)
    return next((value for value, loads in offered.items() if model_key(loads) == key), None)


def run_choices(root: Path) -> list[tuple[str, str]]:
    """(label, value) for the Train tab's run picker: every run, newest first (a stopped one can be resumed)."""
    return [(run_label(r), r.path) for r in list_runs(root)]


def record_choices(root: Path) -> list[tuple[str, str]]:
    """(label, value) for the run pickers of error analysis (Errors, compare): runs that wrote evaluation records
    and evaluation-only folders (`train.py evaluate --output_dir`), newest first."""
    return [(run_label(r), r.path) for r in list_runs(root, evaluations=True) if r.has_records]
