"""Run folders: resumable checkpoints written atomically, the final model, and run.json with status and metrics."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

RUN_FILE = "run.json"
CHECKPOINT_DIR = "checkpoint"
STATE_FILE = "trainer_state.pt"


@dataclass(frozen=True)
class TrainState:
    """Where training stands; enough to continue exactly where a checkpoint was written."""

    step: int = 0  # optimizer steps done
    epoch: int = 0  # current epoch (0-based)
    batch_in_epoch: int = 0  # micro-batches of this epoch already consumed by this rank


@dataclass(frozen=True)
class RunInfo:
    """The contents of run.json."""

    status: str  # running | cancelled | failed | finished
    config: dict[str, Any]
    step: int = 0
    total_steps: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    data_fingerprint: dict[str, str] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)  # metrics after each epoch
    error: str = ""


def write_run_info(output_dir: Path, info: RunInfo) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    tmp = output_dir / (RUN_FILE + ".tmp")
    tmp.write_text(json.dumps(asdict(info), indent=1), encoding="utf-8")
    tmp.replace(output_dir / RUN_FILE)


def read_run_info(output_dir: Path) -> RunInfo:
    path = Path(output_dir) / RUN_FILE
    try:
        return RunInfo(**json.loads(path.read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError, TypeError) as err:
        raise ValueError(f"{path}: not a readable run file ({err})") from None


def save_checkpoint(output_dir: Path, model: torch.nn.Module, tokenizer, optimizer: torch.optim.Optimizer,
                    scheduler: Any, state: TrainState) -> Path:
    """Write to a temporary folder, then swap it in, so a kill never leaves a half-written checkpoint."""
    final, tmp, old = (output_dir / CHECKPOINT_DIR, output_dir / (CHECKPOINT_DIR + ".tmp"),
                       output_dir / (CHECKPOINT_DIR + ".old"))
    shutil.rmtree(tmp, ignore_errors=True)
    save_model(tmp, model, tokenizer)
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "state": asdict(state),
                "rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
               tmp / STATE_FILE)
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def find_checkpoint(output_dir: Path) -> Path | None:
    """The latest complete checkpoint; a kill between the two renames leaves it under .old."""
    for name in (CHECKPOINT_DIR, CHECKPOINT_DIR + ".old"):
        if (output_dir / name / STATE_FILE).exists():
            return output_dir / name
    return None


def load_trainer_state(checkpoint: Path, optimizer: torch.optim.Optimizer, scheduler: Any) -> TrainState:
    saved = torch.load(checkpoint / STATE_FILE, map_location="cpu", weights_only=False)
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    torch.set_rng_state(saved["rng"])
    if saved["cuda_rng"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(saved["cuda_rng"])
    state = saved["state"]
    return TrainState(state["step"], state["epoch"], state["batch_in_epoch"])


def save_model(folder: Path, model: torch.nn.Module, tokenizer) -> None:
    """safetensors weights, config and tokenizer: a folder any transformers user can load."""
    unwrapped = getattr(model, "module", model)
    unwrapped = getattr(unwrapped, "_orig_mod", unwrapped)  # torch.compile wrapper
    unwrapped.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)


@dataclass(frozen=True)
class RunSummary:
    path: str
    status: str
    metrics: dict[str, float]
    has_records: bool


def list_runs(root: Path) -> list[RunSummary]:
    """Run folders under root, newest first."""
    if not root.is_dir():
        return []
    runs = []
    for folder in sorted(root.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True):
        if (folder / RUN_FILE).exists():
            try:
                info = read_run_info(folder)
            except ValueError:
                continue
            runs.append(RunSummary(str(folder), info.status, info.metrics, (folder / "eval_records.jsonl").exists()))
    return runs
