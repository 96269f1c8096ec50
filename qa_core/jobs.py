"""One background training job per process and its pollable state."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

from qa_core.config import QAConfig
from qa_core.data_sources import LoadingCancelled, loading_limits
from qa_core.features import window_limits
from qa_core.progress import END_KINDS, STEP_KINDS, ProgressEvent
from qa_core.run_files import RunRefused, drop_if_unwritten
from qa_core.runtime import close_at_exit
from qa_core.train_setup import step_limits
from qa_core.training import TrainingError, TrainResult, train
from qa_core.wording import web_wording

logger = logging.getLogger(__name__)

ACTIVE = ("starting", "running", "cancelling")
EXIT_WAIT_S = 60.0  # at interpreter exit, how long a running job may take to stop at a checkpoint


class JobBusyError(RuntimeError):
    """Raised when a training job is started while another one is still running."""


class NotYourJobError(RuntimeError):
    """Raised when a caller who did not start the running job asks to cancel it (a public server's rule)."""


class JobRefused(ValueError):
    """Raised by start() where it waits for the job to cut its data (window limits) and the job failed before its
    first progress event (data over the limits, bad data, a model that does not load): the job never started."""


@dataclass(frozen=True)
class JobSnapshot:
    """What any browser tab (or the CLI) needs to draw the state of the job."""

    job_id: int  # 0 before the first job
    status: str  # idle | starting | running | cancelling | finished | cancelled | failed
    output_dir: str = ""
    model: str = ""
    step: int = 0
    total_steps: int = 0
    epoch: float = 0.0
    losses: tuple[tuple[int, float], ...] = ()  # (step, running loss)
    windows_per_s: float | None = None
    eta_s: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    message: str = ""
    elapsed_s: float = 0.0
    version: int = 0  # changes with every update, so a poller redraws only when something happened
    history_version: int = 0  # the version at which losses, evaluations or status last changed: redraw the plot

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def fraction(self) -> float:
        return min(self.step / self.total_steps, 1.0) if self.total_steps else 0.0


Trainer = Callable[..., TrainResult]


class JobManager:
    """Runs at most one training at a time in a daemon thread; closing a browser never stops it.

    max_file_bytes: data files over this size are refused before they are read; Cancel also stops loading.
    max_windows, max_eval_windows: the windows a job may cut from its training and its evaluation data; under
    either, start() returns once the job has loaded and cut its data, and raises JobRefused if it failed to.
    """

    def __init__(self, trainer: Trainer = train, max_file_bytes: int | None = None,
                 max_windows: int | None = None, max_eval_windows: int | None = None) -> None:
        self._trainer = trainer
        self._max_file_bytes, self._max_windows = max_file_bytes, (max_windows, max_eval_windows)
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._state = JobSnapshot(0, "idle")
        self._started = 0.0
        self._first_step: tuple[float, int] | None = None  # (time, step) of the job's first step event
        self._owner = ""  # who started the job (a public server's visitor session); never in a snapshot
        self._step_limit: int | None = None
        self._epoch_limit: float | None = None
        self._why_not_resumable: Callable[[], str] = str  # see start()
        self._reached = ""  # the server's limit the job's last event reached ("2,000 steps"); "" for none
        # Cutting within window limits is bounded, so a start can wait for it: data over them is refused up front,
        # not announced as started and failed a moment later. Unbounded (a local server, all of SQuAD) it cannot.
        self._waits = max_windows is not None or max_eval_windows is not None
        close_at_exit(self)

    def start(self, config: QAConfig, on_end: Callable[[], None] | None = None, owner: str = "",
              step_limit: int | None = None, epoch_limit: float | None = None,
              why_not_resumable: Callable[[], str] | None = None) -> JobSnapshot:
        """Start training in the background. on_end: run when the job has ended, however it ended; owner: who may
        cancel it when cancel() is asked to check; step_limit, epoch_limit: the most steps and epochs the job
        trains, whatever its options (a public server's bounds: each epoch ends in an evaluation and a checkpoint),
        counted into its total (train_setup.step_limits), its end naming the limit reached; why_not_resumable:
        asked once a job is cancelled (after on_end), why Resume cannot continue its run ("": it can), so that
        its end does not promise a resume the run then refuses."""
        with self._lock:
            if self._state.active:
                raise JobBusyError(f"a training job is already running ({self._state.output_dir}, step "
                                   f"{self._state.step}/{self._state.total_steps}); wait for it or cancel it first")
            self._cancel.clear()
            self._owner, self._step_limit, self._epoch_limit = owner, step_limit, epoch_limit
            self._why_not_resumable = why_not_resumable or str
            self._reached = ""
            self._started, self._first_step = time.monotonic(), None
            before, ready = self._state, Future()
            self._state = JobSnapshot(before.job_id + 1, "starting", config.output_dir, config.model_name_or_path,
                                      message="loading the model and the data", version=before.version + 1)
            self._thread = threading.Thread(target=self._run, args=(config, on_end, before, ready), daemon=True,
                                            name=f"train-job-{self._state.job_id}")
            self._thread.start()
        if self._waits:
            ready.result()  # JobRefused
        logger.info("training job %d started: %s", before.job_id + 1, config.output_dir)
        return self.snapshot()

    def cancel(self, owner: str | None = None) -> JobSnapshot:
        """Ask the running job to stop after its current step (it writes a resumable checkpoint); owner: None lets
        anyone cancel it, else only the owner it was started with (a job started without one: nobody)."""
        with self._lock:  # one decision: the job checked is the job cancelled, not one started meanwhile
            if not self._state.active:
                return self._snapshot_locked()
            if owner is not None and (owner != self._owner or not owner):
                raise NotYourJobError("only the visitor who started this training job can cancel it")
            self._cancel.set()
            self._state = replace(self._state, status="cancelling", message="cancelling after the current step",
                                  version=self._state.version + 1)
        return self.snapshot()

    def snapshot(self) -> JobSnapshot:
        with self._lock:
            return self._snapshot_locked()

    def _snapshot_locked(self) -> JobSnapshot:
        state = self._state
        elapsed = time.monotonic() - self._started if state.active else state.elapsed_s
        return replace(state, elapsed_s=elapsed)

    def close(self, timeout: float | None = EXIT_WAIT_S) -> bool:
        """Stop the running job after its step, with a checkpoint, and wait; done at interpreter exit
        (runtime.close_at_exit)."""
        self._cancel.set()
        return self.wait(timeout)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job's thread ends; True if no job is running any more."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return not self.snapshot().active

    def _run(self, config: QAConfig, on_end: Callable[[], None] | None, before: JobSnapshot,
             ready: Future[None]) -> None:
        """The job's thread; ready: resolved at the job's first progress event, or when it ends without one."""
        refused = False
        try:
            with loading_limits(self._max_file_bytes, self._cancel.is_set), window_limits(*self._max_windows), \
                    step_limits(self._step_limit, self._epoch_limit):
                result = self._trainer(config, callback=partial(self._record, ready), should_stop=self._cancel.is_set)
        except LoadingCancelled as err:  # a start still waiting for the data: it never started, as when refused
            refused = self._refuse(err, before, ready)
            if not refused:
                drop_if_unwritten(Path(config.output_dir))
                self._update(status="cancelled", message="cancelled while loading the data",
                             elapsed_s=time.monotonic() - self._started)
            return
        except Exception as err:  # any failure must reach the page, and the server must keep serving
            refused = self._refuse(err, before, ready)
            if not refused:
                log_failure(f"training job {self._state.job_id} failed", err)
                drop_if_unwritten(Path(config.output_dir))
                self._update(status="failed", message=describe_failure(err),
                             elapsed_s=time.monotonic() - self._started)
            return
        finally:
            if not ready.done():
                ready.set_result(None)
            if on_end is not None and not refused:  # a refused start's upload stays for another try, as when busy
                logged_call(on_end, f"training job {self._state.job_id}: cleaning up after it")
        self._update(status=result.status, metrics=result.metrics, message=self._describe_end(result.status),
                     elapsed_s=time.monotonic() - self._started)

    def _refuse(self, err: Exception, before: JobSnapshot, ready: Future[None]) -> bool:
        """Whether a failure is the refusal of the start still waiting for it: then the job never was (the snapshot
        goes back to the one before it, its folder is the caller's to remove) and start() raises why."""
        if not self._waits or ready.done():
            return False
        log_failure("training job not started", err)
        with self._lock:
            self._state = replace(before, version=self._state.version + 1)
        refusal = JobRefused(web_wording(err))
        refusal.__cause__ = err
        ready.set_exception(refusal)
        return True

    def _describe_end(self, status: str) -> str:
        if status == "finished":  # at a limit: it may have trained fewer steps than its options make
            return f"finished at this server's limit of {self._reached}" if self._reached else "finished"
        why = logged_call(self._why_not_resumable, f"training job {self._state.job_id}: whether it resumes")
        if why is None:  # a job that cannot say whether it resumes has still ended
            return "cancelled"
        return f"cancelled; Resume cannot continue it: {why}" if why else "cancelled; resumable from its checkpoint"

    def _record(self, ready: Future[None], event: ProgressEvent) -> None:
        self._reached = reached_limit(event, self._step_limit, self._epoch_limit)
        with self._lock:
            state = self._state
        losses = state.losses + ((event.step, event.loss),) if event.loss is not None else state.losses
        eta = self._wall_eta(event, bool(state.metrics))
        self._update(event.kind != "advance", status="running",
                     step=event.step, total_steps=event.total_steps, epoch=event.epoch, losses=losses,
                     windows_per_s=event.windows_per_s or state.windows_per_s,
                     eta_s=eta if eta is not None else state.eta_s,
                     metrics=event.metrics or state.metrics,
                     # an end event's line is train.py's (an error in its words): the job's end, said once training
                     # has returned, replaces the line shown until then
                     message=state.message if event.kind in END_KINDS else event.message or _describe(event))
        if not ready.done():  # the first event: the data is loaded and cut, the run folder written
            ready.set_result(None)

    def _wall_eta(self, event: ProgressEvent, evaluated: bool) -> float | None:
        """Seconds left at the wall-clock pace since the first step: evaluations and checkpoints count, which
        the trainer's own estimate (training time only) leaves out. Until one evaluation has run, the trainer's."""
        now = time.monotonic()
        if event.kind not in STEP_KINDS or not event.total_steps:
            return None
        if self._first_step is None:
            self._first_step = (now, event.step)
            return event.eta_s
        began, first = self._first_step
        if event.step <= first or not evaluated:
            return event.eta_s
        return (now - began) / (event.step - first) * max(event.total_steps - event.step, 0)

    def _update(self, history: bool = True, **changes: object) -> None:
        if changes.get("status", "running") not in ACTIVE:
            changes["eta_s"] = None  # an ended job has no time left, whatever its last step estimated
        with self._lock:
            if changes.get("status") == "running" and self._cancel.is_set():  # told under the lock cancel() takes
                changes["status"] = "cancelling"
            version = self._state.version + 1
            self._state = replace(self._state, version=version,
                                  history_version=version if history else self._state.history_version, **changes)


def reached_limit(event: ProgressEvent, step_limit: int | None, epoch_limit: float | None) -> str:
    """The limit a progress event has reached, in words ("2,000 steps"); "" while below both."""
    if step_limit is not None and event.step >= step_limit:
        return f"{step_limit:,} steps"
    if epoch_limit is not None and event.epoch >= epoch_limit:
        return f"{epoch_limit:,g} epochs"
    return ""


def logged_call(call: Callable[[], str | None], said: str) -> str | None:
    """call(), or None with its failure logged: a job's end is recorded whatever its clean-up (an upload that
    cannot be removed) raises, else the job would stay active and refuse every later start."""
    try:
        return call()
    except Exception as err:
        log_failure(said, err)
        return None


def log_failure(said: str, err: Exception) -> None:
    """What train.py tells in one line (a refused resume, bad data, a diverged run) is the user's to mend: one line
    here too. Anything else may be a defect: its traceback. said: what happened to which job."""
    if isinstance(err, (ValueError, TrainingError)):
        logger.warning("%s: %s", said, err)
    else:
        logger.exception("%s: %s", said, err)


def describe_failure(err: Exception) -> str:
    """Why a job failed, in the web app's words where the error has them (RunRefused, TrainingError, ...)."""
    if isinstance(err, RunRefused):
        return f"not resumed: {err.web}"
    return f"failed: {web_wording(err)}"


def _describe(event: ProgressEvent) -> str:
    if event.kind == "eval" and event.metrics:
        return f"evaluated: EM {event.metrics['exact_match']:.1f}, F1 {event.metrics['f1']:.1f}"
    return {"advance": "training", "step": "training", "checkpoint": "checkpoint written",
            "done": "finished"}.get(event.kind, event.kind)
