"""Run folders: the checkpoint (the run's truth, swapped in atomically), run.json derived from it, the final model."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from qa_core.run_files import (CALIBRATION_FILE, CHECKPOINT_DIR, EVAL_PREFIX, EVAL_STAGING, MODEL_DIR, OLD_SUFFIX,
                               RUN_FILE, RUN_OUTPUTS, STATE_FILE, TMP_SUFFIX, RunInfo, RunRefused, find_checkpoint,
                               held_outputs, partial_names)

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


# Tests set this in a child process to kill it at a named point of a write (see tests/test_crash_safety.py).
crash_hook: Callable[[str], None] = lambda point: None


@dataclass(frozen=True)
class TrainState:
    """Where training stands: enough to continue exactly where a checkpoint was written."""

    step: int = 0  # optimizer steps done
    epoch: int = 0  # current epoch (0-based)
    batch_in_epoch: int = 0  # micro-batches of this epoch already consumed by this rank
    history: tuple[dict[str, float], ...] = ()  # {"step", "epoch", "exact_match", "f1", ...} after each evaluation
    train_seconds: float = 0.0  # training time of every session up to this step (evaluations, checkpoints left out)
    # steps of sessions from before train_seconds was recorded, which it leaves out: the time left is paced by the
    # steps it does count
    untimed_steps: int = 0
    # loss sum and micro-batches since the last logged step: a run resumed between two logged steps logs the mean
    # an uninterrupted one logs
    pending_loss: tuple[float, int] = (0.0, 0)

    @property
    def metrics(self) -> dict[str, float]:
        """EM/F1 of the latest evaluation."""
        return {k: v for k, v in self.figures.items() if k in ("exact_match", "f1")}

    @property
    def figures(self) -> dict[str, float]:
        """Every figure of the latest evaluation: EM/F1, and a SQuAD 2.0 one's slices and best thresholds."""
        return {k: v for k, v in self.history[-1].items() if k not in ("step", "epoch")} if self.history else {}


def write_run_info(output_dir: Path, info: RunInfo) -> None:
    """The one writer of run.json: through a temporary file, so a reader never sees half of it."""
    output_dir.mkdir(parents=True, exist_ok=True)
    tmp = output_dir / (RUN_FILE + ".tmp")
    tmp.write_text(json.dumps(asdict(info), indent=1), encoding="utf-8")
    crash_hook("run_file_written")
    tmp.replace(output_dir / RUN_FILE)


def eval_files(folder: Path) -> list[Path]:
    """The evaluation files in a folder: eval_* and the calibration fitted on them (carried and published together,
    so a reader never sees a temperature fitted on other records)."""
    return sorted([*folder.glob(EVAL_PREFIX + "*"), *folder.glob(CALIBRATION_FILE)])


def clear_outputs(folder: Path, names: Iterable[str] = RUN_OUTPUTS, keep: Collection[str] = ()) -> None:
    """Remove the run outputs and evaluation files a new run or evaluation would otherwise mix with its own; keep:
    names about to be replaced by renames."""
    for name in held_outputs(folder, names):
        path = folder / name
        if name not in keep:
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def move_in(staged: Path, folder: Path, replaced: Iterable[str]) -> None:
    """Swap a complete set of files into folder: its outputs among `replaced` (and eval_* files) that staged has no
    new one of are removed, staged's files are renamed over the rest (a rename needs no room), then staged goes."""
    files = [path.relative_to(staged) for path in sorted(staged.rglob("*")) if path.is_file()]
    clear_outputs(folder, replaced, keep={path.parts[0] for path in files})
    for path in files:
        (staged / path).replace(folder / path)
    shutil.rmtree(staged)


def save_checkpoint(output_dir: Path, model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase,
                    optimizer: torch.optim.Optimizer, scheduler: Any, state: TrainState,
                    data_fingerprint: dict[str, str], write_eval: Callable[[Path], None] | None,
                    model_settings: Mapping[str, Any] | None = None) -> Path:
    """Write to a temporary folder, then swap it in: a kill leaves the old or the new checkpoint, never half of one.

    The checkpoint carries the evaluation files of its latest evaluation (write_eval writes fresh ones; else the
    previous checkpoint's are copied), so run.json and the evaluation files can always be rebuilt from it.
    """
    final, tmp, _ = (output_dir / name for name in partial_names(CHECKPOINT_DIR))
    shutil.rmtree(tmp, ignore_errors=True)
    previous = find_checkpoint(output_dir)
    save_model(tmp, model, tokenizer, model_settings)
    with (tmp / STATE_FILE).open("wb") as file:  # a Python file: a failed write's OSError stays in the chain
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "state": asdict(state), "data_fingerprint": data_fingerprint, "rng": torch.get_rng_state(),
                    "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}, file)
    if write_eval is not None:
        write_eval(tmp)
    elif previous is not None:
        for path in eval_files(previous):
            shutil.copyfile(path, tmp / path.name)
    crash_hook("checkpoint_written")
    swap_in(tmp, final, "checkpoint_swapping")
    crash_hook("checkpoint_done")
    return final


def save_final_model(output_dir: Path, model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase,
                     model_settings: Mapping[str, Any], write_card: Callable[..., Any]) -> Path:
    """The final model with its card in the run's model/ folder, written beside it and swapped in whole."""
    final, tmp, _ = (output_dir / name for name in partial_names(MODEL_DIR))
    shutil.rmtree(tmp, ignore_errors=True)
    save_model(tmp, model, tokenizer, model_settings)
    write_card(folder=tmp)
    swap_in(tmp, final, "model_swapping")
    return final


def swap_in(tmp: Path, final: Path, point: str) -> None:
    """Replace final by the complete folder tmp; a kill between the two renames leaves the old one under .old."""
    old = final.with_name(final.name + OLD_SUFFIX)
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
    crash_hook(point)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def load_trainer_state(checkpoint: Path, optimizer: torch.optim.Optimizer, scheduler: Any,
                       data_fingerprint: dict[str, str], data_files: dict[str, str | None]) -> TrainState:
    """Optimizer, scheduler and RNG state (tensors and plain values only), after checking the data is the same."""
    saved = torch.load(checkpoint / STATE_FILE, map_location="cpu", weights_only=True)
    check_same_data(saved["data_fingerprint"], data_fingerprint, data_files, checkpoint.parent)
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    torch.set_rng_state(saved["rng"])
    if saved["cuda_rng"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(saved["cuda_rng"])
    state = saved["state"]
    # a checkpoint from before train_seconds or pending_loss: counted from here on
    untimed = state.get("untimed_steps", 0 if "train_seconds" in state else state["step"])
    return TrainState(state["step"], state["epoch"], state["batch_in_epoch"], tuple(state["history"]),
                      state.get("train_seconds", 0.0), untimed, tuple(state.get("pending_loss", (0.0, 0))))


def check_same_data(saved: dict[str, str], given: dict[str, str], files: dict[str, str | None], run: Path) -> None:
    """A resumed run trains on the questions it started with, and evaluates on them too: other validation questions
    under the same file name would join two dev sets in one learning curve. Runs that recorded no fingerprint for a
    split pass."""
    for split, purpose, data in (("train", "trained on", "training"), ("validation", "evaluated on", "evaluation")):
        if saved.get(split) is not None and saved[split] != given.get(split):
            prints = f"data fingerprint {given.get(split)}, run: {saved[split]}"
            raise RunRefused(f"--resume: --{split}_file {files.get(split)}: its questions differ from those the run "
                             f"in {run} {purpose} ({prints}); resume with the run's {split} data",
                             f"run {run.name}: its {data} data {Path(files.get(split) or '').name} changed since the "
                             f"run {purpose} it ({prints}); a resumed run must see the same questions: start a new "
                             f"run")


def publish(output_dir: Path, checkpoint: Path | None, info: RunInfo) -> None:
    """What readers see: the checkpoint's evaluation files copied out, then run.json, each replaced atomically."""
    for path in eval_files(checkpoint) if checkpoint is not None else ():
        tmp = output_dir / (path.name + ".tmp")
        shutil.copyfile(path, tmp)
        tmp.replace(output_dir / path.name)
    if checkpoint is not None and not (checkpoint / CALIBRATION_FILE).exists():  # no records to fit on: no stale one
        (output_dir / CALIBRATION_FILE).unlink(missing_ok=True)
    write_run_info(output_dir, info)


def remove_partial_files(output_dir: Path) -> None:
    """After a failed write (a full disk): the temporary files, which would only hold space."""
    for name in (CHECKPOINT_DIR + TMP_SUFFIX, MODEL_DIR + TMP_SUFFIX, EVAL_STAGING):  # a killed evaluation's too
        shutil.rmtree(output_dir / name, ignore_errors=True)
    for path in output_dir.glob("*" + TMP_SUFFIX):
        path.unlink(missing_ok=True)


def save_model(folder: Path, model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase,
               model_settings: Mapping[str, Any] | None = None) -> None:
    """safetensors weights, config and tokenizer: a folder any transformers user can load.

    model_settings: config values to save instead of the live ones (the base model's own, where training
    overrode them), so config.json describes the model, not how it was trained."""
    unwrapped = getattr(model, "module", model)
    unwrapped = getattr(unwrapped, "_orig_mod", unwrapped)  # torch.compile wrapper
    model_settings = model_settings or {}
    live = {name: getattr(unwrapped.config, name) for name in model_settings}
    try:
        for name, value in model_settings.items():  # layers read their dropout once, when they were built
            setattr(unwrapped.config, name, value)
        unwrapped.save_pretrained(folder, safe_serialization=True)
    finally:
        for name, value in live.items():
            setattr(unwrapped.config, name, value)
    tokenizer.save_pretrained(folder)
    crash_hook("model_saved")
