"""The files of a run folder: their names, run.json's reader, the way from a run to its model and back."""
# Without torch, so listing runs (run_list.py) stays light. The training lock is in run_lock.py.

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from qa_core.wording import TwoWordings

logger = logging.getLogger(__name__)

# Local bookkeeping: the run's own record, its progress log and TensorBoard events.
RUN_FILE = "run.json"
HISTORY_FILE = "history.jsonl"
TENSORBOARD_DIR = "tensorboard"
# Resumable training state: a model folder plus the optimizer, scheduler and RNG state.
CHECKPOINT_DIR = "checkpoint"
STATE_FILE = "trainer_state.pt"
# The final model: config, weights, tokenizer and model card, ready for from_pretrained and the Hub.
MODEL_DIR = "model"
CARD_FILE = "README.md"
CONFIG_FILE = "config.json"
TOKENIZER_FILE = "tokenizer.json"  # a fast tokenizer's, which the tokenizers library reads without transformers
# Model files at the top of a folder: an older run's final model, or a plain model folder.
MODEL_FILES = ("model.safetensors", "pytorch_model.bin", CONFIG_FILE)
# The latest evaluation (eval_*): official predictions, metrics, per-question records, SQuAD 2.0 inputs.
EVAL_PREFIX = "eval_"
PREDICTIONS_FILE = "eval_predictions.json"
METRICS_FILE = "eval_metrics.json"
RECORDS_FILE = "eval_records.jsonl"
NULL_ODDS_FILE = "eval_null_odds.json"  # SQuAD 2.0: evaluate-v2.0.py's --na-prob-file
BEST_SPANS_FILE = "eval_best_spans.json"  # SQuAD 2.0: the best span of every question, abstaining or not
CALIBRATION_FILE = "calibration.json"  # a temperature fitted on the records
EVAL_MODEL_FILE = "eval_model.json"  # `train.py evaluate --output_dir`: the model it evaluated, named for later use
# What the evaluation used besides the model: data, fingerprint, threshold, windows (eval_settings.py)
EVAL_SETTINGS_FILE = "eval_settings.json"
# Held (flock) by the process training the run; the OS drops it when that process ends, killed or not.
TRAINING_LOCK = ".training.lock"
# Written by the web app into the run folder of each job it starts: the runs a public server may remove (web_runs.py)
WEB_JOB_MARK = ".web-job"
# Files that tell about a run folder without being any of its results: a folder holding only these was never written
BOOKKEEPING = frozenset({TRAINING_LOCK, WEB_JOB_MARK})
TMP_SUFFIX, OLD_SUFFIX = ".tmp", ".old"  # a folder being written; the one it replaces, until the swap is done
# An evaluation's files being written, laid out as in the folder they go to; moved in once all of them are.
EVAL_STAGING = "evaluation" + TMP_SUFFIX
# The quick fine-tune's split of the bundled sample: its training passages and the passages held out from them.
QUICK_DATA = ("quick-train.json", "quick-heldout.json")


class RunRefused(TwoWordings, ValueError):
    """Training a run folder refused before any step, in train.py's words and the web app's."""


def partial_names(name: str) -> tuple[str, str, str]:
    """A swapped-in file or folder and its two temporary names."""
    return name, name + TMP_SUFFIX, name + OLD_SUFFIX


# What a run leaves in its folder; a new run or evaluation refuses to write over any of them.
RUN_OUTPUTS = (*partial_names(RUN_FILE), HISTORY_FILE, TENSORBOARD_DIR, *partial_names(CHECKPOINT_DIR),
               *partial_names(MODEL_DIR), CALIBRATION_FILE, *MODEL_FILES)
# What a model is: the final model folder of a run, or model files at the top of a folder.
MODEL_OUTPUTS = (*partial_names(MODEL_DIR), *MODEL_FILES)
# What evaluating a run into its own folder replaces: its eval_* files and the calibration fitted on them.
EVAL_EXTRA_OUTPUTS = (CALIBRATION_FILE,)


def model_folder(folder: Path) -> Path:
    """The folder holding the model of `folder`: a run's model/ subfolder, else the folder itself (a plain
    model folder, or a run from before the model had its own subfolder)."""
    inner = folder / MODEL_DIR
    return inner if (inner / CONFIG_FILE).is_file() else folder


def has_model(folder: str | Path) -> bool:
    """A loadable model in the folder: a run's model/ subfolder, or the folder itself (a model or an older run)."""
    return (model_folder(Path(folder)) / CONFIG_FILE).is_file()


def run_folder(model: Path) -> Path:
    """The run a model folder belongs to: the parent of a run's model/ subfolder, else the folder itself."""
    if model.name == MODEL_DIR and (model.parent / RUN_FILE).is_file():
        return model.parent
    return model


def run_of(model: Path) -> Path:
    """The run a model folder or run folder stands for, resolved: R and R/model are one."""
    return run_folder(model_folder(model)).resolve()


def evaluates_own_run(output_dir: Path, model_name_or_path: str) -> bool:
    """Whether the model is the run (or plain model folder) output_dir itself: R or R/model into R."""
    model = Path(model_name_or_path)
    if not model.is_dir() or not output_dir.is_dir():
        return False
    return run_of(model) == output_dir.resolve()


def check_eval_output_dir(output_dir: Path, model_name_or_path: str, overwrite: bool) -> None:
    """Where an evaluation may write: not a run's model/ folder, flag or not (its eval files would sit beside the
    weights, in the folder pushed to the Hub); else as check_output_dir, where evaluating a run or plain model
    folder into its own folder replaces only its evaluation files."""
    from qa_core.run_lock import being_trained  # it reads this module's names

    run = run_folder(output_dir)
    if being_trained(run):  # the training's next evaluation would replace these files without a word
        raise ValueError(f"output_dir {output_dir}: run {run} is in use by another process right now (training "
                         f"or evaluating it); evaluate into another folder, or once it has ended")
    if run != output_dir:
        advice = (f"evaluate into the run folder {run}, which replaces only its evaluation files"
                  if evaluates_own_run(run, model_name_or_path) else "choose another output folder")
        raise ValueError(f"output_dir {output_dir} is the model folder of run {run}: evaluation files there would "
                         f"sit beside its weights, in the folder pushed to the Hub; {advice}")
    check_output_dir(output_dir, overwrite or evaluates_own_run(output_dir, model_name_or_path), can_resume=False)


def find_checkpoint(output_dir: Path) -> Path | None:
    """The latest complete checkpoint; a kill between the two renames leaves it under .old."""
    for name in (CHECKPOINT_DIR, CHECKPOINT_DIR + OLD_SUFFIX):
        if (output_dir / name / STATE_FILE).exists():
            return output_dir / name
    return None


def held_outputs(folder: Path, names: Iterable[str] = RUN_OUTPUTS) -> list[str]:
    """The run outputs and evaluation files already in folder."""
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.name in names or p.name.startswith(EVAL_PREFIX))


def check_output_dir(folder: Path, overwrite: bool, names: Iterable[str] = RUN_OUTPUTS,
                     can_resume: bool = True) -> None:
    """Refuse a file, or a folder holding a model, a run or evaluation files unless overwrite (then clear_outputs
    first). can_resume: the command could continue a stopped run there (train), so say so first: overwriting
    would delete its checkpoint."""
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"output_dir {folder} is a file, not a folder; choose another output folder")
    held = held_outputs(folder, names)
    if not held or overwrite:
        return
    if can_resume and stopped_run(folder):
        raise ValueError(f"{folder} holds a stopped run with a checkpoint ({', '.join(held)}); pass --resume to "
                         f"continue it, or --overwrite_output_dir to replace it (checkpoint included), or choose "
                         f"another output folder")
    raise ValueError(f"{folder} already holds {', '.join(held)}; pass --overwrite_output_dir to replace them, "
                     f"or choose another output folder")


def stopped_run(folder: Path) -> bool:
    """A checkpoint, and a run.json not saying finished (a finished run has nothing left to resume)."""
    if find_checkpoint(folder) is None:
        return False
    try:
        return read_run_info(folder).status != "finished"
    except ValueError:  # killed before run.json was first written: resume rebuilds it
        return True


def unwritten(folder: Path) -> bool:
    """Whether a run folder holds nothing but BOOKKEEPING files: a start refused or failed before writing."""
    return {p.name for p in folder.iterdir()} <= BOOKKEEPING


def drop_if_unwritten(folder: Path) -> None:
    """Remove a run folder a job claimed but never wrote to, with its BOOKKEEPING files: without a run.json it is no
    run, and no picker would ever show it. A folder with anything else in it is left as it is."""
    try:
        if unwritten(folder):
            for name in BOOKKEEPING:
                (folder / name).unlink(missing_ok=True)
            folder.rmdir()
    except OSError:  # gone already, or written meanwhile
        pass


@dataclass(frozen=True)
class RunInfo:
    """The contents of run.json."""

    status: str  # running | cancelled | failed | finished (run_lock.run_status: interrupted where none trains it)
    config: dict[str, Any]
    step: int = 0
    total_steps: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    data_fingerprint: dict[str, str] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)  # metrics after each epoch
    error: str = ""
    base_model: str = ""  # what was fine-tuned, by hub id where it has one (not 'embedded')
    train_seconds: float | None = None  # training time of all the sessions that made the final model
    hardware: str = ""  # where that session ran
    working_dir: str = ""  # where its trainer ran: what relative paths in its config are relative to


def read_run_info(output_dir: Path) -> RunInfo:
    """The one reader of run.json."""
    path = Path(output_dir) / RUN_FILE
    try:
        return RunInfo(**json.loads(path.read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError, TypeError) as err:
        raise ValueError(f"{path}: not a readable run file ({err})") from None


def is_evaluation_folder(folder: Path) -> bool:
    """Written by `train.py evaluate --output_dir`: evaluation files, but no run.json (and no model of its own)."""
    return not (folder / RUN_FILE).is_file() and (folder / RECORDS_FILE).is_file()


def evaluated_model(folder: Path) -> str | None:
    """The model an evaluation folder's eval_model.json names (a path relative to the folder made absolute); None
    for a folder from before it was written."""
    try:
        named = json.loads((folder / EVAL_MODEL_FILE).read_text(encoding="utf-8")).get("model_name_or_path")
    except (OSError, json.JSONDecodeError, AttributeError):
        return None
    if not isinstance(named, str) or not named:
        return None
    return str((folder / named).resolve()) if named.startswith(RELATIVE) else named


RELATIVE = ("./", "../")  # how eval_model.json's path relative to its folder starts; a hub id never does


def evaluated_model_entry(output_dir: Path, model: str) -> str:
    """What eval_model.json stores for the model an evaluation into output_dir evaluated: a run beside output_dir
    (R or R/model) by its path relative to output_dir, so that a runs folder copied or moved keeps them together;
    another local folder by its absolute path (the one given may be relative to where evaluate ran); else as
    given (a hub id)."""
    path = Path(model).expanduser()
    if not path.is_dir():
        return model
    resolved, folder = path.resolve(), output_dir.resolve()
    if run_of(resolved).parent != folder.parent:
        return str(resolved)
    return Path(os.path.relpath(resolved, folder)).as_posix()


def namesake_beside(folder: Path, model: str) -> Path | None:
    """The run beside an evaluation folder named as the run of `model`, a path (R or R/model) stored before paths
    were stored relative: where a runs folder copied or moved since holds the model it evaluated."""
    path = Path(model)
    if not path.is_absolute():
        return None
    beside = folder.parent / (path.parent.name if path.name == MODEL_DIR else path.name)
    return beside if beside.is_dir() and beside.resolve() != run_of(path) else None


def evaluation_folder_refusal(folder: Path) -> RunRefused:
    """An evaluation folder given as a model, told as one with the model it evaluated where its files name it:
    train.py gives that model's path; the web app its name only (a folder's last part), no server path."""
    evaluated = evaluated_model(folder)
    unnamed = "" if evaluated else " (its files do not name it)"
    shown = Path(evaluated).name if evaluated and Path(evaluated).is_absolute() else evaluated
    said = "it holds that evaluation's records and scores, not a model"
    return RunRefused(f"{folder} is an evaluation folder (train.py evaluate --output_dir): {said}; use the model it "
                      f"evaluated{f', {evaluated},' if evaluated else ''} instead{unnamed}",
                      f"{folder.name} is an evaluation folder (train.py evaluate): {said}; ask the model it evaluated"
                      f"{f', {shown},' if shown else ''} instead{unnamed}")


def model_slug(model: str) -> str:
    """A short file-name-safe name for a model: 'embedded', a folder's name or a hub id's last part."""
    name = Path(model.rstrip("/")).name or "model"
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")[:40] or "model"


def new_run_dir(root: Path, model: str, now: datetime | None = None) -> Path:
    """Claim a new, empty runs/<timestamp>-<model>[-n] folder: created exclusively, so two servers or CLIs
    sharing a runs folder never get the same one."""
    base = f"{(now or datetime.now()):%Y%m%d-%H%M%S}-{model_slug(model)}"
    root.mkdir(parents=True, exist_ok=True)
    for n in range(1, 10_000):
        candidate = root / (base if n == 1 else f"{base}-{n}")
        try:
            candidate.mkdir()  # atomic: exactly one caller creates it
        except FileExistsError:
            continue
        return candidate
    raise RuntimeError(f"no free run folder name for {base} under {root}")


def read_eval_metrics(folder: Path) -> dict[str, Any] | None:
    """The folder's eval_metrics.json; None where it has none, or one that is unreadable or no JSON object (said in
    the log: every reader then goes on without it)."""
    path = folder / METRICS_FILE
    if not path.is_file():
        return None
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        logger.warning("%s: unreadable (%s); going on without it", path, err)
        return None
    if not isinstance(metrics, dict):
        logger.warning("%s: not a JSON object; going on without it", path)
        return None
    return metrics
