"""The app as a whole, its tabs built together (nothing is downloaded): its layout, and what holds across its tabs."""

from __future__ import annotations

import asyncio
import inspect
import json
import shutil
import threading
from dataclasses import replace

import gradio as gr
import pytest

from qa_core.run_files import RECORDS_FILE
from qa_core.settings import Settings
from qa_core.ui import app
from qa_core.ui.train import DATA_CHOICES
from tests.ui_handlers import CONTEXT, QUESTION, copy_run, form, handlers


def test_the_layout_builds(settings):
    demo = app.build_app(settings)
    assert isinstance(demo, gr.Blocks) and demo.title == app.TITLE != "Extractive QA"
    tabs = [block for block in demo.blocks.values() if isinstance(block, gr.Tabs)]
    # Anything else in a Tabs (a State made beside a tab) shifts the page's tab buttons: one tab's name shows twice.
    assert tabs and all(isinstance(child, gr.Tab) for t in tabs for child in t.children)


def test_a_public_server_refuses_server_paths_and_shows_none(settings, tiny_run, tmp_path):
    public = Settings(settings.runs_root, settings.default_model, training_enabled=True, fast_inference=False,
                      public=True)
    ui = handlers(public)
    folders = set(settings.runs_root.iterdir())
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"data": []}), encoding="utf-8")
    for model in (str(tmp_path), "/etc", str(tiny_run.parent.parent), str(tiny_run)):  # its own runs too
        message = asyncio.run(ui.ask.ask_in_turn(model, QUESTION, CONTEXT))["message"]
        assert "not offered on this server" in message and str(tmp_path.parent) not in message
    assert asyncio.run(ui.ask.ask_in_turn(tiny_run.name, QUESTION, CONTEXT))["message"] == ""  # its own runs, by name
    refused = ui.train.start_training(None, "", DATA_CHOICES[2], None, str(secret), "", *form())["message"]
    assert "only on the bundled sample ('sample') or a file uploaded in the Train tab" in refused
    assert str(tmp_path) not in refused
    refused = ui.train.start_training(None, "", DATA_CHOICES[0], None, "", str(secret), *form())["message"]
    assert "evaluation data" in refused
    assert "not a run on this server" in ui.errors.summarize(str(tmp_path))["summary"]
    assert set(settings.runs_root.iterdir()) == folders  # no run folder claimed by refusals


def test_every_plot_and_table_is_labelled_and_no_table_shows_numbered_columns(settings):
    """A plot without a label reads 'Plot' in its corner (HasAns / NoAns, calibration, comparison), and a table
    without a value shows Gradio's placeholder columns '1 2 3' (the comparison's tables before and after a
    refused comparison)."""
    demo = app.build_app(settings)
    components = [c for c in demo.blocks.values() if isinstance(c, (gr.Plot, gr.Dataframe))]
    assert components and [c.elem_id for c in components if not c.label] == []
    for table in (c for c in components if isinstance(c, gr.Dataframe)):
        assert table.value["headers"] and table.value["headers"] != ["1", "2", "3"], table.label


def test_a_folder_without_a_model_is_named_alike_in_the_ask_and_errors_tabs(settings, tiny_run, tmp_path):
    """One check says why a folder cannot answer: an evaluation folder typed as the Ask tab's model is named as one
    (not as a folder without config.json), and a run whose run.json says running is said to be training only while
    a process holds its training lock, else to be interrupted (the Errors tab's logit plot needs its model too)."""
    from qa_core.run_lock import training_lock

    folder = tmp_path / "runs" / "eval-x"
    folder.mkdir(parents=True)
    shutil.copy(tiny_run / RECORDS_FILE, folder / RECORDS_FILE)
    ui = handlers(replace(settings, runs_root=tmp_path / "runs"))
    assert "eval-x is an evaluation folder" in asyncio.run(ui.ask.ask_in_turn(str(folder), QUESTION,
                                                                               CONTEXT))["message"]
    running = copy_run(tiny_run, tmp_path / "runs" / "20250101-000000-running")
    shutil.rmtree(running / "model")
    info = json.loads((running / "run.json").read_text())
    (running / "run.json").write_text(json.dumps({**info, "status": "running"}))

    def refusals() -> tuple[str, str]:
        return (asyncio.run(ui.ask.ask_in_turn(str(running), QUESTION, CONTEXT))["message"],
                pytest.raises(ValueError, ui.service.check_run_model, running.name).value.args[0])

    with training_lock(running):  # its trainer, still at work
        for message in refusals():
            assert "is running and has no final model yet" in message and "resume" not in message, message
    for message in refusals():  # its trainer gone, killed or its server stopped
        assert "is interrupted and has no final model; resume it in the Train tab" in message, message


def test_one_explanation_at_a_time_across_the_ask_and_errors_tabs(settings, tiny_run):
    """Attributions compute outside the model thread, on one thread that the Ask and Errors tabs share (two at once
    would slow every asker on a small CPU) and that takes turns between callers; any limit in Gradio's queue in
    front of it would serve them first come, first served again, and so would one in front of the model thread."""
    demo = app.build_app(settings)
    fns = {fn.api_name: fn for fn in demo.fns.values()}
    assert fns["ui_why"].concurrency_id == fns["ui_attribute"].concurrency_id
    for name in ("answer", "ui_ask", "ui_ask_submit", "ui_select_record", "ui_why", "ui_attribute"):  # in coroutines
        assert fns[name].concurrency_limit is None and inspect.iscoroutinefunction(fns[name].fn), name
    assert {fns[name].concurrency_id for name in ("answer", "ui_ask", "ui_ask_submit", "ui_select_record")} == {"answer"}
    ui, threads = handlers(settings), set()
    for model in (settings.default_model, str(tiny_run)):
        ui.service.models.get(model, exact=True).model.register_forward_hook(
            lambda *_: threads.add(threading.current_thread().name))
    answered = asyncio.run(ui.ask.ask_in_turn("", QUESTION, CONTEXT))["answered"]
    assert asyncio.run(ui.ask.why_in_turn(answered, "", QUESTION, CONTEXT))["why_plot"] is not None
    row = ui.errors.filter_table(str(tiny_run), False, 0, 100, "all", "", "id")["table"].iloc[0].tolist()
    assert asyncio.run(ui.errors.attribute_in_turn(tiny_run.name, row[0]))["attribution"] is not None
    assert threads == {"qa-model", "qa-explain"}


def test_a_server_stopped_with_sigterm_leaves_its_job_cancelled_and_resumable(tiny_model_dir, tmp_path):
    """Found by a tester: `kill` (SIGTERM, as a service manager or a container stops a server) ended `python app.py`
    at once, mid-step: its job's run.json said "running" for ever and its steps since the last checkpoint were lost.
    SIGTERM now stops the server as Ctrl-C does: the job stops after its step with a checkpoint and says cancelled,
    as train.py does on SIGTERM."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from gradio_client import Client

    from qa_core.run_files import find_checkpoint, read_run_info
    from tests.conftest import free_port

    port, runs = free_port(), tmp_path / "runs"
    env = {**os.environ, "QA_RUNS_DIR": str(runs), "QA_DEFAULT_MODEL": str(tiny_model_dir),
           "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1"}
    log = tmp_path / "app.log"
    with log.open("w") as out:
        server = subprocess.Popen([sys.executable, "app.py"], cwd=Path(__file__).resolve().parent.parent, env=env,
                                  stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while "Running on local URL" not in log.read_text():
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.5)
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        options = {"max_steps": 100_000, "per_device_train_batch_size": 2, "max_seq_length": 128, "doc_stride": 32,
                   "save_steps": 100_000}
        run = runs / client.predict("", "sample", "", options, api_name="/start_training")["run"]
        while client.predict(api_name="/training_status")["step"] < 2:
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.2)
        server.send_signal(signal.SIGTERM)
        assert server.wait(120) == 0, log.read_text()[-2000:]
    finally:
        if server.poll() is None:
            server.kill()
    info = read_run_info(run)
    assert info.status == "cancelled" and info.step >= 2 and find_checkpoint(run) is not None, log.read_text()[-2000:]
