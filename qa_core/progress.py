"""Training progress events: one stream for the CLI's progress bar and the web app, kept in the run's history.jsonl."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from qa_core.run_files import HISTORY_FILE

HISTORY_KINDS = ("step", "eval")  # the events a run keeps in its history file
STEP_KINDS = ("advance", "step")  # one of these after every optimizer step: "step" at logged ones, with the loss
END_KINDS = ("done", "cancelled", "failed")


@dataclass(frozen=True)
class ProgressEvent:
    """What the CLI progress bar and the web UI both draw."""

    kind: str  # start | advance | step | eval | checkpoint | done | cancelled | failed
    step: int
    total_steps: int
    epoch: float
    loss: float | None = None  # mean training loss since the previous step event (step events only)
    learning_rate: float | None = None
    grad_norm: float | None = None  # before clipping, of the latest optimizer step
    windows_per_s: float | None = None  # training windows per second, all processes together
    eta_s: float | None = None
    metrics: dict[str, float] | None = None
    message: str = ""


ProgressCallback = Callable[[ProgressEvent], None]


def append_history(path: Path, event: ProgressEvent) -> None:
    """One JSON line per step and evaluation event, written as training runs."""
    if event.kind in HISTORY_KINDS:
        record = {k: v for k, v in asdict(event).items() if v is not None and k not in ("total_steps", "message")}
        with path.open("a", encoding="utf-8") as file:
            file.write(json.dumps(record) + "\n")


def read_history(path: str | Path) -> list[ProgressEvent]:
    """The step and evaluation events of a run, from its history.jsonl or its folder (a missing file is an empty
    history; a torn last line is skipped)."""
    path = Path(path)  # README names it for users, who pass a str as to the other functions it names
    if path.is_dir():  # the run folder, as the other functions the README names take a run
        path = path / HISTORY_FILE
    if not path.exists():
        return []
    names = {f.name for f in fields(ProgressEvent)}
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a kill in the middle of a write
        events.append(ProgressEvent(**{"total_steps": 0, **{k: v for k, v in record.items() if k in names}}))
    return events


def truncate_history(path: Path, step: int) -> None:
    """Drop the events after `step` (those of steps a resumed run repeats)."""
    if path.exists():
        kept = [e for e in read_history(path) if e.step <= step]
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("", encoding="utf-8")
        for event in kept:
            append_history(tmp, event)
        tmp.replace(path)


def tensorboard_writer(log_dir: Path) -> ProgressCallback:
    """A callback writing step and evaluation events as TensorBoard scalars; it closes on the run's last event."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ValueError("--report_to tensorboard needs the tensorboard package: pip install tensorboard") from None
    writer = SummaryWriter(str(log_dir))

    def write(event: ProgressEvent) -> None:
        scalars = {"train/loss": event.loss, "train/learning_rate": event.learning_rate,
                   "train/grad_norm": event.grad_norm, "train/windows_per_s": event.windows_per_s,
                   **{f"eval/{k}": v for k, v in (event.metrics or {}).items()}}
        for tag, value in scalars.items():
            if value is not None and event.kind in HISTORY_KINDS:
                writer.add_scalar(tag, value, event.step)
        if event.kind == "eval":
            writer.flush()
        elif event.kind in END_KINDS:
            writer.close()

    return write


def pace_of(windows: int, seconds: float, train_seconds: float, step: int, total_steps: int,
            untimed_steps: int = 0) -> dict[str, float]:
    """Windows a second in this session, and the seconds left at the pace of the run's every session (training
    time only): a resumed run's first step, slow while kernels warm up, would otherwise set the estimate alone.
    untimed_steps: steps train_seconds leaves out (a checkpoint that did not record it), else read as free."""
    timed = max(step - untimed_steps, 1)
    return {"windows_per_s": windows / max(seconds, 1e-9), "eta_s": train_seconds / timed * (total_steps - step)}
