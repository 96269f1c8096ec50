"""The Train tab: start, watch, cancel and resume one background fine-tuning job; any run's history."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr

from qa_core import charts, job_views
from qa_core.config_options import form_fields
from qa_core.jobs import JobBusyError, JobSnapshot, NotYourJobError
from qa_core.progress import read_history
from qa_core.run_files import HISTORY_FILE
from qa_core.service import QAService
from qa_core.settings import Settings
from qa_core.train_policy import SWITCHED_OFF
from qa_core.ui.common import PRIVATE, QUICK_MINUTES, Outputs, by_name, session_of
from qa_core.ui.train_form import DATA_CHOICES, data_controls, option_controls
from qa_core.wording import capitalized

LABELS = ("training data", "evaluation data")  # the form's names of the two data sources, for its messages
ENDED = ("finished", "cancelled", "failed")
REFUSED = (ValueError, OSError, JobBusyError)  # a start refused at once: nothing was started
CANCELLING = "Cancelling after the current step."  # true only while the job runs: poll replaces it at the end
JOB_BUTTONS = ("start", "quick", "cancel", "resume")  # the Train tab's buttons that follow whether a job runs


def job_buttons(active: bool, enabled: bool) -> Outputs:
    """Start and Quick fine-tune while no job runs, Cancel while one does; none where the server does not train.
    Resume is greyed out while a job runs, else left to the picked run's note (show_run, again when a job ends).
    Only what the page shows: the service refuses a start all the same, since anyone may call the API."""
    return {"start": gr.update(interactive=enabled and not active),
            "quick": gr.update(interactive=enabled and not active), "cancel": gr.update(interactive=enabled and active),
            "resume": gr.update(interactive=False) if active else gr.skip()}


def history_plot(run: str | Path) -> Any:
    """Loss, learning rate and evaluation EM/F1 of a run folder, from its history.jsonl."""
    return charts.history_figure(read_history(Path(run) / HISTORY_FILE))


def sets_buttons(handler: Callable[..., Outputs]) -> Callable[..., Outputs]:
    """For a click that may start a job: the job buttons too, as the job is now, so that the clicking tab need not
    wait for the poll's next tick to cancel."""
    @functools.wraps(handler)  # Gradio reads the handler's signature (gr.Request) through __wrapped__
    def with_buttons(self: Any, *args: Any, **kwargs: Any) -> Outputs:
        return {**handler(self, *args, **kwargs), **self.buttons()}
    return with_buttons


class TrainHandlers:
    """The Train tab's event handlers: each calls the service and returns its outputs by name."""

    def __init__(self, service: QAService) -> None:
        self.service = service

    @staticmethod
    def data_source(choice: str, upload: str | None, path: str | None) -> str:
        """The training data the form names (the service checks it as it checks the API's)."""
        if choice == DATA_CHOICES[1]:
            if not upload:
                raise ValueError("no file uploaded: drop a SQuAD JSON file in the upload box first")
            return upload
        if choice == DATA_CHOICES[2]:
            if not (path or "").strip():
                raise ValueError("no data path or hub name given")
            return path
        return "sample"

    def check_upload(self, upload: str | None) -> Outputs:
        """A dropped file becomes the training data by itself (a refused one is deleted and the sample chosen);
        the line about it shows under the upload box, where a phone's visitor is looking (the Message box sits
        by the buttons, screens further down)."""
        line = self.service.check_upload(upload)
        usable = bool(upload) and not line.startswith("Not usable")
        return {"upload_note": upload_note(line), "choice": DATA_CHOICES[1] if usable else DATA_CHOICES[0]}

    @staticmethod
    def forget_upload() -> Outputs:
        """The file box was cleared, by the visitor or by Gradio refusing a file: the sample again, and no line
        about a file that is gone."""
        return {"upload_note": upload_note(""), "choice": DATA_CHOICES[0]}

    @sets_buttons
    def start_training(self, request: gr.Request | None, model: str, choice: str, upload: str | None, path: str,
                       eval_data: str, *values: Any) -> Outputs:
        """values: the Train form's inputs, in form_fields() order; request: the visitor's, who owns the job."""
        uploaded = choice == DATA_CHOICES[1]
        try:
            config = self.service.train_config(model, self.data_source(choice, upload, path), eval_data,
                                               dict(zip(form_fields(), values)), upload=uploaded, labels=LABELS)
            snapshot = self.service.start(config, upload if uploaded else None, owner=session_of(request))
        except REFUSED as err:
            return {"message": f"Not started: {self.service.for_caller(err, upload if uploaded else None)}"}
        data = {"sample": "the bundled sample"}.get(config.train_file, Path(upload or "").name if uploaded
                                                    else config.train_file)  # an upload by its own name
        return {"message": self.service.for_caller(f"Started job {snapshot.job_id} on {data}: {snapshot.output_dir}")}

    @sets_buttons
    def start_quick(self, request: gr.Request | None = None) -> Outputs:
        try:
            snapshot = self.service.start(self.service.quick_config(), owner=session_of(request))
        except REFUSED as err:
            return {"message": f"Not started: {self.service.for_caller(err)}"}
        return {"message": f"Started the quick fine-tune (about {QUICK_MINUTES} min): "
                           f"{self.service.for_caller(snapshot.output_dir)}"}

    def cancel(self, request: gr.Request | None = None) -> Outputs:
        try:
            active = self.service.cancel(session_of(request)).active
        except NotYourJobError as err:
            return {"message": f"Not cancelled: {err}"}
        return {"message": CANCELLING if active else "No training job is running."}

    @sets_buttons
    def resume(self, run: str | None, request: gr.Request | None = None) -> Outputs:
        """Continue a cancelled or failed run from its checkpoint (train.py --resume)."""
        try:
            snapshot = self.service.resume(run, owner=session_of(request))
        except REFUSED as err:
            return {"message": f"Not resumed: {self.service.for_caller(err)}"}
        return {"message": f"Resumed {Path(snapshot.output_dir).name} as job {snapshot.job_id}"}

    def buttons(self) -> Outputs:
        """The job buttons as the job is now: the clicking tab need not wait for the poll's next tick to cancel."""
        return job_buttons(self.service.jobs.snapshot().active, self.service.settings.training_enabled)

    def show_run(self, run: str | None) -> Outputs:
        """A picked run's history plot, and whether Resume applies to it (none picked: nothing to say)."""
        shown = self.service.run_note(run)
        return {"history": history_plot(shown.folder) if shown.folder else None, "run_note": shown.note,
                "resume": gr.update(interactive=shown.resumable)}

    def poll(self, seen_version: int, message: str = "") -> Outputs:
        """Timer tick: redraw the job's bar and status while it runs or when it changed, its plot only when its
        losses, evaluations or status changed; `ended` names the last job that ended, so the pickers refresh once
        when a run is done, and `started` the job that runs, so that they refresh once when its run is being trained
        (its first progress event: its run.json says so). message: the Message box's line, replaced by the job's
        end once it is no longer true."""
        s = self.service.jobs.snapshot()
        # The cancel's line may come back after the tick that saw the end: a later tick replaces it all the same.
        if s.version == seen_version and not s.active and message != CANCELLING:
            return {"bar": gr.skip(), "status": gr.skip(), "loss": gr.skip(), "version": seen_version,
                    "ended": gr.skip(), "started": gr.skip(), "message": gr.skip(),
                    **dict.fromkeys(JOB_BUTTONS, gr.skip())}
        ended = s.status in ENDED
        # The buttons too: every tab (a second one, a reloaded one, whose first tick sees version -1) follows the job.
        return {"bar": job_views.progress_html(s), "status": self.service.for_caller(job_views.job_text(s)),
                **job_buttons(s.active, self.service.settings.training_enabled),
                "loss": self.job_plot(s) if s.history_version > seen_version else gr.skip(), "version": s.version,
                "ended": s.job_id if ended else gr.skip(), "started": s.job_id if s.total_steps else gr.skip(),
                "message": self.service.for_caller(f"Job {s.job_id} {s.message}") if ended and message == CANCELLING
                else gr.skip()}

    @staticmethod
    def job_plot(s: JobSnapshot) -> Any:
        """The running job's history once its run writes one; its losses until then."""
        events = read_history(Path(s.output_dir) / HISTORY_FILE) if s.output_dir else []
        return charts.history_figure(events) if events else charts.loss_figure(s.losses, s.total_steps)


def upload_note(line: str) -> dict:
    """The line under the upload box, shown only when there is one."""
    return gr.update(value=line, visible=bool(line))


def build_train_tab(service: QAService) -> dict[str, Any]:
    ui = TrainHandlers(service)
    with gr.Tab("Train", id="train"):
        server_note(service.settings)
        form = data_controls(service)
        options = option_controls(service.settings)
        buttons = job_controls(service.settings.training_enabled)
        shown = job_outputs(service)
        run, picked = run_controls(service)
    wire_train_tab(ui, form, options, buttons, shown, run, picked)
    return {"model": form["model"], "run": run, "handlers": ui, **shown, **buttons, "resume": picked["resume"]}


def server_note(settings: Settings) -> None:
    """Above the form: that training is switched off, or a public server's caps."""
    if not settings.training_enabled:
        gr.Markdown(f"**{capitalized(SWITCHED_OFF)}.** The Ask and Errors tabs work as usual.")
    elif settings.public:
        gr.Markdown(job_views.limits_note(settings), elem_id="train-limits")


def job_controls(enabled: bool) -> dict[str, gr.Button]:
    """The job buttons as no job runs: the poll's first tick sets them as the job is."""
    with gr.Row():
        return {"start": gr.Button("Start training", variant="primary", interactive=enabled, elem_id="train-start"),
                "quick": gr.Button(f"Quick fine-tune on the sample (about {QUICK_MINUTES} min)",
                                   interactive=enabled, elem_id="train-quick"),
                "cancel": gr.Button("Cancel", variant="stop", interactive=False, elem_id="train-cancel")}


def job_outputs(service: QAService) -> dict[str, Any]:
    """The last click's message; the job's bar, status and plot; `ended`: the last job that ended; `started`: the
    last job that trained its run."""
    return {"message": gr.Textbox(label="Message", interactive=False, lines=2, max_lines=4, elem_id="train-message"),
            "bar": gr.HTML(job_views.progress_html(service.jobs.snapshot()), elem_id="train-bar"),
            "status": gr.Textbox(label="Training job", lines=4, max_lines=10, interactive=False,
                                 elem_id="train-status"),
            "loss": gr.Plot(label="Training job: loss, learning rate, evaluation"), "ended": gr.State(0),
            "started": gr.State(0)}


def run_controls(service: QAService) -> tuple[gr.Dropdown, dict[str, Any]]:
    """The run picker, and what a picked run shows: its note, its history and Resume."""
    with gr.Row():
        run = gr.Dropdown(service.run_choices(), value=None, label="Run", elem_id="train-run", scale=3,
                          info="Any run: its history; a stopped one can be resumed")
        resume = gr.Button("Resume from checkpoint", interactive=False, elem_id="train-resume", scale=1)
    return run, {"run_note": gr.Markdown(elem_id="train-run-note"),
                 "history": gr.Plot(label="Run history", elem_id="train-history"), "resume": resume}


def wire_train_tab(ui: TrainHandlers, form: dict[str, Any], options: list[Any], buttons: dict[str, gr.Button],
                   shown: dict[str, Any], run: gr.Dropdown, picked: dict[str, Any]) -> None:
    """The tab's events: the upload checked, a run picked (again when a job ends), the job buttons."""
    message = {"message": shown["message"]}
    started = {**message, **buttons, "resume": picked["resume"]}  # a click that may start a job sets the buttons
    checked, upload = {"upload_note": form["note"], "choice": form["choice"]}, form["upload"]
    upload.upload(by_name(ui.check_upload, checked), upload, list(checked.values()), api_name="ui_check_upload",
                  **PRIVATE)
    upload.clear(by_name(ui.forget_upload, checked), None, list(checked.values()), api_name="ui_clear_upload",
                 **PRIVATE)
    run.change(by_name(ui.show_run, picked), run, list(picked.values()), api_name="ui_show_run", **PRIVATE)
    # A job that ends may be the picked run's (resumed, or started meanwhile): its note, history and Resume change.
    shown["ended"].change(by_name(ui.show_run, picked), run, list(picked.values()), api_name="ui_show_run_again",
                          show_progress="hidden", **PRIVATE)
    shown["started"].change(by_name(ui.show_run, picked), run, list(picked.values()), api_name="ui_show_run_started",
                            show_progress="hidden", **PRIVATE)
    picked["resume"].click(by_name(ui.resume, started), run, list(started.values()), api_name="ui_resume", **PRIVATE)
    buttons["start"].click(by_name(ui.start_training, started),
                           [form[name] for name in ("model", "choice", "upload", "path", "eval_data")] + options,
                           list(started.values()), api_name="ui_start_training", **PRIVATE)
    buttons["quick"].click(by_name(ui.start_quick, started), None, list(started.values()), api_name="ui_start_quick",
                           **PRIVATE)
    buttons["cancel"].click(by_name(ui.cancel, message), None, shown["message"], api_name="ui_cancel", **PRIVATE)
