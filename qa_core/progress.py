"""Training progress events: one stream that the CLI's progress bar and the web app both draw."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ProgressEvent:
    """What the CLI progress bar and the web UI both draw."""

    kind: str  # start | step | eval | checkpoint | done | cancelled
    step: int
    total_steps: int
    epoch: float
    loss: float | None = None
    learning_rate: float | None = None
    features_per_s: float | None = None  # training windows per second, all processes together
    eta_s: float | None = None
    metrics: dict[str, float] | None = None
    message: str = ""


ProgressCallback = Callable[[ProgressEvent], None]
