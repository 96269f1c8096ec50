"""The web app's training calls under the server's policy: start, watch, cancel and resume a job."""
# QAService (service.py) is built on them; what the Train tab says of a picked run is here too.

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qa_core import job_views, quick_fine_tune, run_picker, train_policy
from qa_core.config import QAConfig
from qa_core.config_options import config_options
from qa_core.data import load_examples
from qa_core.data_sources import check_file_size
from qa_core.hosting import check_model, check_run, scrub
from qa_core.jobs import JobManager, JobSnapshot
from qa_core.run_files import QUICK_DATA, drop_if_unwritten, has_model, new_run_dir, read_run_info
from qa_core.run_lock import INTERRUPTED, run_status
from qa_core.settings import Settings
from qa_core.train_policy import (capped, check_contexts, check_data, check_limits, check_start_data, check_start_model,
                                  check_training)
from qa_core.web_runs import mark_web_run, prune_web_runs
from qa_core.wording import count

API_LABELS = ("train_file", "validation_file")  # the data sources as /start_training names them
BEING_TRAINED = "This run is being trained right now; Resume applies once it stops."
STOPPED = "Stopped before it finished"
# run_lock.INTERRUPTED: run.json says running, but the process that trained it has gone
INTERRUPTED_AT = "Interrupted at step {}: the process training it ended (killed, or its server stopped) before it finished"
RESUMABLE = "{}: Resume continues it from its last checkpoint."
AFTER_JOB = "{}: Resume continues it from its last checkpoint once the running job ends."  # one job at a time
NOT_RESUMABLE = "{}; Resume cannot continue it: {}"


@dataclass(frozen=True)
class RunNote:
    """What the Train tab shows of a picked run: its folder (None: no history to show), a line about it, and
    whether Resume applies."""

    folder: str | None
    note: str
    resumable: bool


class JobService:
    """The training job's calls, each checked against the server's Settings; QAService adds answers and runs."""

    def __init__(self, settings: Settings, jobs: JobManager | None = None) -> None:
        self.settings = settings
        # Data files named by path are a local user's own; a public server reads only uploads, within the limits.
        limits = settings.train_limits
        self.jobs = jobs or JobManager(max_file_bytes=settings.max_upload_bytes if settings.public else None,
                                       max_windows=limits.windows if settings.public else None,
                                       max_eval_windows=limits.eval_windows if settings.public else None)

    def for_caller(self, err: BaseException | str, upload: str | None = None) -> str:
        """An error as one line for the caller; on a public server without server paths. upload: a file this
        server received, named by its own name: the temporary folder Gradio keeps it in means nothing to a user."""
        message = str(err)
        if upload:
            message = message.replace(str(Path(upload)), Path(upload).name)
        return scrub(message, self.settings)

    def checked_run(self, run: str | None) -> str:
        """The run's folder, where this server lets a caller name it (hosting.check_run); else a ValueError."""
        return check_run(run, self.settings)

    def check_upload(self, upload: str | None) -> str:
        """A line about an uploaded file, read at once within the size limit; a refused file is deleted."""
        if not upload:
            return ""
        path = Path(upload)
        try:
            check_file_size(path, self.settings.max_upload_bytes)
            loaded = load_examples(upload)
            check_contexts(loaded.examples[:self.settings.max_train_examples], path.name, self.settings)
        except (ValueError, OSError) as err:  # a DataError, or a context over the limit
            path.unlink(missing_ok=True)
            return f"Not usable as training data: {self.for_caller(err, upload)}"
        report, cap = loaded.report, self.settings.max_train_examples
        read = f"; a job here reads the first {cap:,}" if cap is not None and report.examples > cap else ""
        return f"{path.name}: {count(report.examples, 'question')} ({report.unanswerable:,} unanswerable){read}"

    def train_config(self, model: str | None, train_file: str | None, validation_file: str | None,
                     options: Mapping[str, Any], upload: bool = False,
                     labels: tuple[str, str] = API_LABELS, typed: bool = False) -> QAConfig:
        """A checked config of a new run: the Train tab and the API make the same checks (train_policy), cheap
        ones first; the run folder is claimed only once all have passed, so a refused start leaves nothing.
        upload: train_file is a file this server received; labels: what messages call the two data sources; typed:
        options of the API's JSON, each of its field's type (config_options)."""
        check_training(self.settings)
        train_file = check_data(train_file, labels[0], self.settings, upload) or "sample"
        validation_file = check_data(validation_file, labels[1], self.settings) or train_file
        model = check_model(model, self.settings)
        config = capped(check_limits(QAConfig(model_name_or_path=model, train_file=train_file,
                                              validation_file=validation_file, **config_options(options, typed)),
                                     self.settings), self.settings)
        check_start_model(model)
        check_start_data(train_file, labels[0], self.settings)
        if validation_file != train_file:
            check_start_data(validation_file, labels[1], self.settings)
        return config.replace(output_dir=str(new_run_dir(self.settings.runs_root, model)))

    def quick_config(self) -> QAConfig:
        check_training(self.settings)
        model = check_model("", self.settings)  # a run named by QA_DEFAULT_MODEL: its folder
        return capped(quick_fine_tune.quick_config(model, str(new_run_dir(self.settings.runs_root, model))),
                      self.settings)

    def start(self, config: QAConfig, upload: str | None = None, owner: str = "") -> JobSnapshot:
        """Start the job; an uploaded data file is deleted when it ends; the claimed folder if it cannot start.
        owner: the caller's session, the only one a public server lets cancel the job."""
        self.make_room(Path(config.output_dir))
        mark_web_run(Path(config.output_dir))
        try:
            return self.jobs.start(config, on_end=functools.partial(Path(upload).unlink, missing_ok=True)
                                   if upload else None, owner=owner, **self.job_limits(config))
        except Exception:
            folder = Path(config.output_dir)
            for name in QUICK_DATA:  # the quick fine-tune's split of the sample, written with its config
                (folder / name).unlink(missing_ok=True)
            drop_if_unwritten(folder)
            raise

    def start_json(self, model: str | None = "", train_file: str | None = "sample", validation_file: str | None = "",
                   options: dict | None = None, owner: str = "") -> dict[str, Any]:
        """Start a training job; options: QAConfig fields such as max_steps or learning_rate."""
        self.start(self.train_config(model, train_file, validation_file, options or {}, typed=True), owner=owner)
        return self.job_json()

    def cancel(self, owner: str = "") -> JobSnapshot:
        """Ask the running job to stop after its current step; on a public server only its owner may."""
        return self.jobs.cancel(owner if self.settings.public else None)

    def cancel_json(self, owner: str = "") -> dict[str, Any]:
        self.cancel(owner)
        return self.job_json()

    def job_json(self) -> dict[str, Any]:
        """The training job: status, step, losses, metrics, its run's name."""
        return job_views.job_json(self.jobs.snapshot(), lambda text: scrub(text, self.settings))

    def run_choices(self) -> list[tuple[str, str]]:
        """(label, run name) of every run, for the Train tab's history and Resume."""
        return [(label, Path(path).name) for label, path in run_picker.run_choices(self.settings.runs_root)]

    def run_note(self, run: str | None) -> RunNote:
        """A picked run's folder, and whether Resume applies to it and why not where it stopped (none picked:
        nothing to say)."""
        if not run:
            return RunNote(None, "", False)
        try:
            folder = self.checked_run(run)
            info = read_run_info(Path(folder))
        except ValueError as err:
            return RunNote(None, self.for_caller(err), False)
        if info.status == "finished" and has_model(folder):
            return RunNote(folder, "", False)
        status = run_status(Path(folder), info)
        if status == "running":  # by this server's job or another process, such as the CLI
            return RunNote(folder, BEING_TRAINED, False)
        stopped = INTERRUPTED_AT.format(info.step) if status == INTERRUPTED else STOPPED
        if not self.settings.training_enabled:
            return RunNote(folder, RESUMABLE.format(stopped), False)
        why = self.why_not_resumable(run)  # Resume's checks: a run this server cannot continue is not offered it
        if why:
            return RunNote(folder, NOT_RESUMABLE.format(stopped, why), False)
        if self.jobs.snapshot().active:  # a job on another run: Resume now would be refused as busy
            return RunNote(folder, AFTER_JOB.format(stopped), False)
        return RunNote(folder, RESUMABLE.format(stopped), True)

    def resume_config(self, run: str | None) -> QAConfig:
        """The config that continues a stopped run from its checkpoint (--resume), after checking it can."""
        check_training(self.settings)
        return train_policy.resume_config(Path(self.checked_run(run)), self.settings)

    def resume(self, run: str | None, owner: str = "") -> JobSnapshot:
        """Continue a cancelled or failed run where its checkpoint left off."""
        config = self.resume_config(run)
        self.make_room(Path(config.output_dir))
        return self.jobs.start(config, owner=owner, **self.job_limits(config))

    def make_room(self, run: Path) -> None:
        """Before a job trains `run`: the oldest runs of this server's web jobs beyond QA_MAX_RUNS removed (none
        while a job runs: the start is refused)."""
        if not self.jobs.snapshot().active:
            prune_web_runs(self.settings.runs_root, self.settings.max_runs, run)

    def job_limits(self, config: QAConfig) -> dict[str, Any]:
        """The step and epoch a public server's job ends at, whatever its options say (settings.TrainLimits):
        epochs make steps and steps (max_steps) make epochs, each epoch ending in an evaluation and a checkpoint;
        and, for its end, why its run cannot be resumed (the Run picker's rule)."""
        limits, public = self.settings.train_limits, self.settings.public
        return {"step_limit": limits.max_steps if public else None, "epoch_limit": limits.epochs if public else None,
                "why_not_resumable": functools.partial(self.why_not_resumable, Path(config.output_dir).name)}

    def why_not_resumable(self, run: str) -> str:
        """Why Resume cannot continue a stopped run, in the caller's words; "" where it can."""
        try:
            self.resume_config(run)
        except ValueError as err:
            return self.for_caller(err)
        return ""
