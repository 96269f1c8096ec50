"""Checks of a command's folders and files before torch loads, reading only the file system and run.json."""

# What these refuse would otherwise fail, or destroy something, only after seconds or minutes of work; so nothing
# here may import torch or transformers.

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from qa_core.config import QAConfig, check_windows
from qa_core.data_sources import local_name, looks_like_a_path
from qa_core.run_files import (RUN_FILE, RUN_OUTPUTS, TOKENIZER_FILE, RunRefused, check_eval_output_dir,
                               check_output_dir, find_checkpoint, held_outputs, model_folder, read_run_info, run_folder)

# What a resume may change: how long it trains (to extend a run, whose decay then spans the new length), how
# often it logs and saves, how it loads and reports, where its output goes. Everything else changes what the
# continued training computes, so it must be what run.json says. train_file may name another path: its content is
# fingerprinted and checked on resume.
RESUME_MAY_CHANGE = ("max_steps", "num_train_epochs", "logging_steps", "save_steps", "dataloader_num_workers",
                     "report_to", "per_device_eval_batch_size", "output_dir", "resume", "overwrite_output_dir",
                     "train_file")
# Options naming a local file or folder: the same one named another way (./dev.json, an absolute path, a link) is
# the same setting.
PATH_OPTIONS = ("model_name_or_path", "validation_file")
# Options whose None means "decide on this machine"; run.json records what was decided.
AUTO_OPTIONS = ("bf16",)
# Window options run.json records as cut to the model (modeling.fit_config): asking for more than the run used may
# be the same command again, so it is checked once the model is loaded (check_resumed_windows).
WINDOW_OPTIONS = ("max_seq_length", "doc_stride", "max_query_length")


def check_paths(args: argparse.Namespace, config: QAConfig) -> None:
    """The command's data files exist, its output folder may be written, and a resume continues the same run."""
    for option in ("train_file", "validation_file", "test_file"):
        check_data_file(option, getattr(args, option, None))
    if getattr(args, "output_file", None):
        check_output_file(args.output_file, args.test_file, config.overwrite_output_dir)
    check_model_windows(config)
    output_dir = Path(config.output_dir)
    if args.command == "evaluate":
        check_eval_output_dir(output_dir, config.model_name_or_path, config.overwrite_output_dir)
    elif args.command == "train" and config.resume:
        check_resume(config)
    elif args.command == "train":
        check_not_training_into_its_model(config)
        check_output_dir(output_dir, config.overwrite_output_dir)


def check_data_file(option: str, source: str | None) -> None:
    """A local data file that is not there; 'sample' and hub names ('rajpurkar/squad') pass."""
    if source and source != "sample" and looks_like_a_path(source) and not Path(source).exists():
        raise ValueError(f"--{option} {source}: no such data file")


def check_output_file(path: str, test_file: str | None, overwrite: bool = False) -> None:
    """predict's --output_file can be written where it is named: else the answers, found at the cost of a pass over
    the whole file, would be lost to a traceback. Missing folders above it are made when it is written. An existing
    file is replaced only when told (overwrite), as --output_dir's files are."""
    if not test_file:  # a single answer goes to stdout: the file would silently never be written
        raise ValueError("--output_file is for the answers to --test_file; a --question's answer is printed")
    target = Path(path)
    if _same_file(path, local_name(test_file)):  # 'sample' too: the package's own data
        raise ValueError(f"--output_file {path} is the --test_file: writing the answers would replace the questions")
    if target.is_dir():
        raise ValueError(f"--output_file {path} is a folder; name a file, such as {target / 'predictions.json'}")
    if target.exists() and not overwrite:
        raise ValueError(f"--output_file {path} already exists; pass --overwrite_output_dir to replace it, or name "
                         f"another file")
    existing = next(parent for parent in target.parents if parent.exists())  # '.' or '/' at the latest
    if not existing.is_dir():
        raise ValueError(f"--output_file {path}: {existing} is a file, so no folder can hold it")


def check_model_windows(config: QAConfig) -> None:
    """The windows in the special tokens of the model's own tokenizer where a local folder holds one: QAConfig
    counts BERT's 3, and a stride that fits only that room (RoBERTa takes 4) would be cut once the model loaded."""
    special_tokens = tokenizer_special_tokens(Path(config.model_name_or_path))
    if special_tokens is not None:
        check_windows(config.max_seq_length, config.doc_stride, config.max_query_length, special_tokens)


def tokenizer_special_tokens(model: Path) -> int | None:
    """The special tokens a question + context pair takes in the fast tokenizer of a local model (a run's model/
    too), as the loaded model's counts them; None where no tokenizer file is there to read."""
    path = model_folder(model) / TOKENIZER_FILE
    if not path.is_file():  # a hub name, or a slow tokenizer's files: the loaded model's own check counts them
        return None
    from tokenizers import Tokenizer  # the Rust library alone: neither torch nor transformers

    try:
        return Tokenizer.from_file(str(path)).num_special_tokens_to_add(True)
    except Exception:  # the library raises a bare Exception on a damaged file; loading the model names it
        return None


def check_not_training_into_its_model(config: QAConfig) -> None:
    """--overwrite_output_dir would delete the very model training starts from: a model folder, or a run's model/
    or checkpoint/ (what a new run clears, RUN_OUTPUTS); another folder inside output_dir stays."""
    source = Path(config.model_name_or_path)
    if not source.is_dir():
        return
    model, output_dir = model_folder(source).resolve(), Path(config.output_dir).resolve()
    if model == output_dir or (model.parent == output_dir and model.name in RUN_OUTPUTS):
        raise ValueError(f"output_dir {config.output_dir} holds the model being trained from (model_name_or_path "
                         f"{config.model_name_or_path}); training there would replace it; choose another "
                         f"output folder")


def check_resume(config: QAConfig) -> None:
    """A checkpoint to continue from, and options that continue the same training."""
    output_dir = Path(config.output_dir)
    check_output_dir(output_dir, overwrite=True)  # only refuses a file
    if find_checkpoint(output_dir) is None:
        raise RunRefused(_nothing_to_resume(output_dir, config.overwrite_output_dir),
                         f"run {output_dir.name} holds no checkpoint (it stopped before its first one), so there is "
                         f"nothing to resume; start a new run")
    changed = _changed_settings(config, _stored_config(output_dir))
    if any(not deferred for _, _, deferred in changed):  # windows alone wait for the model: check_resumed_windows
        listed = [(name, values) for name, values, _ in changed]
        raise RunRefused(f"--resume: these options differ from the run in {output_dir} ({RUN_FILE}): "
                         f"{_listed(listed, '--')}; resume with the run's options, or start a new run in another "
                         f"folder", f"run {output_dir.name}: these settings differ from its {RUN_FILE}: "
                         f"{_listed(listed)}; start a new run")


def _changed_settings(config: QAConfig, stored: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """Every option that differs from run.json's, in the config's order, with its values and whether it is a window
    wider than the run's; refused with the others, such a window is named too, else fixing the others would meet
    it only on the next try, once the model had loaded."""
    changed = []
    for name, value in config.to_dict().items():
        if name not in stored or _same_setting(name, value, stored[name]):
            continue
        deferred = _maybe_cut_to(name, value, stored[name])
        cut = f", unless this model cuts it to {stored[name]}" if deferred else ""
        changed.append((name, f"{_show(value)} (run: {_show(stored[name])}{cut})", deferred))
    return changed


def _nothing_to_resume(output_dir: Path, overwrite: bool) -> str:
    if not output_dir.exists():  # no run was ever there: a mistyped folder, not a run stopped early
        return f"--resume: {output_dir} does not exist, so there is no run to resume; check the --output_dir"
    message = (f"--resume: nothing to resume in {output_dir}: it holds no checkpoint (a run stopped before its "
               f"first one); run the command without --resume to start it again")
    if not held_outputs(output_dir):
        return message
    return message + (" (--overwrite_output_dir then clears it)" if overwrite else " with --overwrite_output_dir")


def _listed(changed: list[tuple[str, str]], flag: str = "") -> str:
    """Settings and their values, named as options (flag '--') or as the web app's form names them."""
    return ", ".join(f"{flag}{name} {values}" for name, values in changed)


def _stored_config(output_dir: Path) -> dict[str, Any]:
    """run.json's config, its relative local paths made absolute from where the run was trained (read from another
    folder they would name other files); empty when a kill came before run.json was first written (resume
    rebuilds it)."""
    try:
        info = read_run_info(output_dir)
    except ValueError:
        return {}
    stored = info.config if isinstance(info.config, dict) else {}
    trained_in = Path(info.working_dir) if info.working_dir else None
    return {**stored, **{name: str(trained_in / stored[name]) for name in PATH_OPTIONS
                         if trained_in and _relative_local_path(stored.get(name), trained_in)}}


def _relative_local_path(value: Any, folder: Path) -> bool:
    """A relative path naming something in `folder` (not a hub name, 'embedded' or 'sample')."""
    return isinstance(value, str) and not Path(value).expanduser().is_absolute() and (folder / value).exists()


def check_resumed_windows(config: QAConfig) -> None:
    """After fit_config: a resumed run cuts its windows exactly as run.json records them."""
    output_dir = Path(config.output_dir)
    stored = _stored_config(output_dir)
    changed = [(name, f"{getattr(config, name)} (run: {stored[name]})") for name in WINDOW_OPTIONS
               if name in stored and getattr(config, name) != stored[name]]
    if changed:
        raise RunRefused(f"--resume: the windows differ from the run in {output_dir} ({RUN_FILE}), as this model "
                         f"takes them: {_listed(changed, '--')}; resume with the run's options",
                         f"run {output_dir.name}: its windows differ from its {RUN_FILE}, as its model takes them: "
                         f"{_listed(changed)}; start a new run")


def run_settings(model_name_or_path: str) -> dict[str, Any]:
    """The config of the run a model folder belongs to (R or R/model), from its run.json, as run_settings.run_config
    finds it (without loading torch); empty otherwise."""
    path = Path(model_name_or_path)
    return _stored_config(run_folder(path)) if path.is_dir() else {}


def _same_setting(name: str, given: Any, stored: Any) -> bool:
    if name in RESUME_MAY_CHANGE or given == stored or (name in AUTO_OPTIONS and given is None):
        return True
    if name in PATH_OPTIONS:  # the same local file or folder, named another way
        return _same_file(str(given), str(stored))
    return False


def _maybe_cut_to(name: str, given: Any, stored: Any) -> bool:
    """A window wider than the run's, which fit_config may cut to the run's again (the same command repeated)."""
    return name in WINDOW_OPTIONS and isinstance(given, int) and isinstance(stored, int) and given > stored


def _same_file(given: str, stored: str) -> bool:
    """Both name one existing file or folder: relative or absolute, with ./ or through a link."""
    try:
        return Path(given).expanduser().samefile(Path(stored).expanduser())
    except (OSError, ValueError):  # either is no local path (a hub name, 'sample', 'embedded')
        return False


def _show(value: Any) -> str:
    return "none" if value is None else str(value)
