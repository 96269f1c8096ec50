"""The web app: the tabs composed in one gr.Blocks, the JSON API, and `main()` (app.py and `qa-lab app` call it)."""

from __future__ import annotations

import functools
import importlib.util
import inspect
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import gradio as gr

from qa_core.fairness import ADDRESS_SESSIONS
from qa_core.hosting import trusted_proxies
from qa_core.runtime import configure_process, interrupt_on_sigterm
from qa_core.service import QAService
from qa_core.settings import Settings
from qa_core.ui.arguments import check_arguments
from qa_core.ui.ask import build_ask_tab
from qa_core.ui.common import ANALYSES, ANSWERS, PRIVATE, Outputs, by_name, caller_of, in_turns, session_of
from qa_core.ui.errors import build_errors_tab
from qa_core.ui.event_limit import event_limit_middleware
from qa_core.ui.request_limit import body_limit_middleware
from qa_core.ui.style import SLIDER_BOX_JS, TAB_TOP_JS, app_css
from qa_core.ui.train import JOB_BUTTONS, build_train_tab

logger = logging.getLogger(__name__)

QUEUE_SIZE = 256
BOUNDED_KINDS = 3  # questions, analyses and explanations: each kind has its own bound in flight (QAService)
# Every event goes through the queue and its concurrency limits: api_open=False closes Gradio's /gradio_api/run/
# route, which ran any event (the page's own too) outside them, without a session to own a job it started.
QUEUE_OPTIONS = {"default_concurrency_limit": 2, "max_size": QUEUE_SIZE, "api_open": False}
CACHE_SWEEP = (900, 3600)  # every 15 min, delete uploads older than an hour (used or refused)
TITLE = "Extractive question answering: ask, fine-tune, find errors"
# Each new Gradio session asks every gr.Plot for its settings, and each tries to import these (bokeh): under many
# sessions, searching for them where they are not installed was the largest part of the web server's own work.
PLOT_LIBRARIES = ("bokeh",)
THEME = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])


@contextmanager
def api_errors(service: QAService) -> Iterator[None]:
    """A refused call as gr.Error with a one-line message (no server paths when public)."""
    try:
        yield
    except (ValueError, OSError, RuntimeError) as err:
        raise gr.Error(service.for_caller(err), print_exception=False) from None


def as_api(service: QAService, call: Callable[..., Any]) -> Callable[..., Any]:
    """An API endpoint: a refused call raises gr.Error (api_errors); arguments of the wrong type are refused before
    the call, naming the argument. A coroutine function stays one, so that its waiting holds no thread."""
    if inspect.iscoroutinefunction(call):
        @functools.wraps(call)
        async def waiting_endpoint(*args: Any, **kwargs: Any) -> Any:
            with api_errors(service):
                check_arguments(call, args, kwargs)
                return await call(*args, **kwargs)
        return waiting_endpoint

    @functools.wraps(call)
    def endpoint(*args: Any, **kwargs: Any) -> Any:
        with api_errors(service):
            check_arguments(call, args, kwargs)
            return call(*args, **kwargs)
    return endpoint


def training_endpoints(service: QAService) -> dict[str, Callable[..., Any]]:
    """/start_training and /cancel_training: the service's calls with the caller's session as the job's owner
    (Gradio passes gr.Request to a parameter so typed and leaves it out of the API)."""
    def start_training(model: str | None = "", train_file: str | None = "sample", validation_file: str | None = "",
                       options: dict | None = None, request: gr.Request | None = None) -> dict[str, Any]:
        """Start a training job; options: QAConfig fields such as max_steps or learning_rate."""
        return service.start_json(model, train_file, validation_file, options, owner=session_of(request))

    def cancel_training(request: gr.Request | None = None) -> dict[str, Any]:
        """Ask the running job to stop after its current step (a public server: only the caller who started it)."""
        return service.cancel_json(owner=session_of(request))
    return {"start_training": start_training, "cancel_training": cancel_training}


def answer_endpoint(service: QAService) -> Callable[..., Any]:
    """/answer: the service's call in the caller's turn on the model thread (fairness.Caller)."""
    async def answer(model: str | None, question: str | None, context: str | None,
                     request: gr.Request | None = None) -> dict[str, Any]:
        """Answer a question about a context; model: '' for the default, a run name, or an offered hub id."""
        return await service.answer_json(model, question, context, caller=caller_of(request))
    return answer


def api_endpoints(service: QAService) -> dict[str, Callable[..., Any]]:
    """The endpoints meant for programs (README: The API), by api_name: plain values in, JSON-shaped values out."""
    return {"answer": answer_endpoint(service), "list_runs": service.runs_json, **training_endpoints(service),
            "training_status": service.job_json, "run_records": in_turns(service, service.records_json)}


def add_api(service: QAService) -> None:
    for name, call in api_endpoints(service).items():
        limits = {"answer": ANSWERS, "run_records": ANALYSES}.get(name, {})
        gr.api(as_api(service, call), api_name=name, **limits)


def missing_at_once(names: tuple[str, ...]) -> None:
    """Mark each module that is not installed as missing, so that importing it fails at once: the import system
    searches every folder of sys.path again for each try at a module it did not find before."""
    for name in names:
        if name not in sys.modules and importlib.util.find_spec(name) is None:
            sys.modules[name] = None  # type: ignore[assignment]  # the import system's own "not importable"


def pickers(service: QAService, run: str | None = None, prefer: str | None = None) -> Outputs:
    """New choices for the model pickers and the Errors run picker; the run picker takes `prefer` where it has
    records, else keeps its run, else takes the newest one (its change event then loads it).
    A kept run is left out of the update: `run` is the value when the event was sent, and setting it again would
    undo a pick that landed meanwhile (a job's end, whose refresh raced a tab switch's)."""
    models, runs = service.model_choices(), service.record_choices()
    names = [value for _, value in runs]
    if prefer in names or run not in names:
        picked = gr.update(choices=runs, value=prefer if prefer in names else names[0] if names else None)
    else:
        picked = gr.update(choices=runs)
    return {"ask_model": gr.update(choices=models), "train_model": gr.update(choices=models), "run": picked,
            "train_run": gr.update(choices=service.run_choices())}


def pickers_after_job(service: QAService, run: str | None = None) -> Outputs:
    """pickers when a job ends: the Errors run picker moves to the job's run where it wrote records, as a fresh
    load would pick it; kept, the run picked before the job would stay what Send to Ask sends."""
    return pickers(service, run, prefer=Path(service.jobs.snapshot().output_dir).name or None)


def build_app(settings: Settings, sweep: tuple[int, int] = CACHE_SWEEP) -> gr.Blocks:
    """The whole app for these settings: its model cache and training job are made here, not at import.
    sweep: every how many seconds Gradio deletes the uploads older than how many (Blocks' delete_cache)."""
    missing_at_once(PLOT_LIBRARIES)
    service = QAService(settings)
    with gr.Blocks(title=TITLE, delete_cache=sweep) as demo:
        gr.Markdown("# Extractive question answering\nAsk a model, fine-tune one, and see where it fails.")
        with gr.Tabs(selected="ask", elem_id="tabs") as tabs:
            ask_tab, train_tab, errors_tab = build_ask_tab(service), build_train_tab(service), build_errors_tab(service)
        wire_tabs(demo, service, tabs, ask_tab, train_tab, errors_tab)
        add_api(service)
    service.preload_default()  # a visitor's first question finds the default model loaded (or loading)
    return demo


def wire_tabs(demo: gr.Blocks, service: QAService, tabs: gr.Tabs, ask_tab: dict[str, Any],
              train_tab: dict[str, Any], errors_tab: dict[str, Any]) -> None:
    """The events that cross tabs: the training poll, picker refreshes, and moves from one tab to another."""
    version, timer = gr.State(-1), gr.Timer(1.0)
    buttons = {name: train_tab[name] for name in JOB_BUTTONS}
    polled = {"bar": train_tab["bar"], "status": train_tab["status"], "loss": train_tab["loss"], "version": version,
              "ended": train_tab["ended"], "started": train_tab["started"], "message": train_tab["message"], **buttons}
    refreshed = {"ask_model": ask_tab["model"], "train_model": train_tab["model"], "run": errors_tab["run"],
                 "train_run": train_tab["run"]}
    quiet = dict(show_progress="hidden", **PRIVATE)
    timer.tick(by_name(train_tab["handlers"].poll, polled), [version, train_tab["message"]], list(polled.values()),
               api_name="ui_poll", **quiet)
    refresh = by_name(functools.partial(pickers, service), refreshed)
    # Refreshed on tab switches and when a job starts or ends, not on every tick: a timer output would fight the
    # user's own picking.
    tabs.select(refresh, errors_tab["run"], list(refreshed.values()), api_name="ui_pickers", **quiet)
    tabs.change(None, js=TAB_TOP_JS, api_name="ui_tab_top", **quiet)  # in the page only: no server call
    after_job = by_name(functools.partial(pickers_after_job, service), refreshed)
    reloaded = errors_tab["picked"]
    train_tab["ended"].change(after_job, errors_tab["run"], list(refreshed.values()), api_name="ui_job_ended",
                              **quiet).then(by_name(in_turns(service, errors_tab["handlers"].pick_run_again), reloaded),
                                            errors_tab["run"], list(reloaded.values()), api_name="ui_job_ended_reload",
                                            **ANALYSES, **quiet)
    train_tab["started"].change(refresh, errors_tab["run"], list(refreshed.values()), api_name="ui_job_started",
                                **quiet)
    started = {"message": train_tab["message"], **buttons}
    ask_tab["quick"].click(lambda: gr.Tabs(selected="train"), None, tabs, api_name="ui_to_train", **quiet).then(
        by_name(train_tab["handlers"].start_quick, started), None, list(started.values()),
        api_name="ui_start_quick_from_ask", **quiet)
    sent = {"tabs": tabs, "model": ask_tab["model"], "question": ask_tab["question"], "context": ask_tab["context"],
            "message": ask_tab["message"], **ask_tab["answer_outputs"]}  # the answer shown was the last question's
    errors_tab["send"].click(by_name(in_turns(service, errors_tab["handlers"].send_to_ask), sent),
                             [errors_tab["run"], errors_tab["selected"], errors_tab["threshold"]], list(sent.values()),
                             api_name="ui_send_to_ask", **ANALYSES, **quiet)
    demo.load(refresh, errors_tab["run"], list(refreshed.values()), api_name="ui_load", **PRIVATE)


def main() -> None:
    configure_process(serving=True)
    interrupt_on_sigterm()  # a stopped server's training job ends at a checkpoint, as on Ctrl-C
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings.from_env()
    if proxies := trusted_proxies(os.environ):  # read by uvicorn when Gradio starts it
        os.environ["FORWARDED_ALLOW_IPS"] = proxies
    build_app(settings).queue(**QUEUE_OPTIONS).launch(
        theme=THEME, css=app_css(), js=SLIDER_BOX_JS, **launch_options(settings))


def launch_options(settings: Settings, sweep: tuple[int, int] = CACHE_SWEEP) -> dict[str, Any]:
    """The limits launch() sets, beside the server's address: an upload's size, all uploads' (until `sweep`, as
    build_app was given it, deletes them) and every other request body's; on a public server, an address's events
    a second, and how many events start at once: room for one address's bounds in flight of each kind (questions,
    analyses, explanations) and as much again, so that calls a bound holds waiting for their turn never keep
    another visitor's out of the turns, first come, first served in Gradio's queue."""
    middleware = [*event_limit_middleware(settings), *body_limit_middleware(settings, sweep_age_s=sweep[1])]
    options = {"max_file_size": settings.max_upload_bytes, "app_kwargs": {"middleware": middleware}}
    if settings.public:
        options["max_threads"] = 2 * BOUNDED_KINDS * ADDRESS_SESSIONS * settings.max_caller_requests
    return options


if __name__ == "__main__":
    main()
