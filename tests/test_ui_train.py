"""The Train tab's handlers called as plain methods with the tiny BERT (nothing is downloaded): uploads, the form,
jobs started, cancelled and resumed, and what a public server allows."""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import replace
from pathlib import Path

import gradio as gr
import pytest

from qa_core.config import QAConfig
from qa_core.config_options import form_fields
from qa_core.service import QAService
from qa_core.settings import Settings
from qa_core.training import train
from qa_core.ui import app
from qa_core.ui.train import DATA_CHOICES
from tests.conftest import write_squad
from tests.ui_handlers import CONTEXT, QUESTION, cancel_at_once, form, handlers


def note(shown: dict) -> str:
    """The line under the upload box (shown only when there is one)."""
    update = shown["upload_note"]
    assert update["visible"] == bool(update["value"])
    return update["value"]


def test_upload_check_explains_a_file_that_is_not_squad(ui, tmp_path):
    bad = tmp_path / "notes.json"
    bad.write_text(json.dumps({"hello": "world"}), encoding="utf-8")
    assert "expected SQuAD JSON" in note(ui.train.check_upload(str(bad)))
    assert not bad.exists()  # a refused upload is deleted at once
    binary = tmp_path / "image.json"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    assert "not UTF-8" in note(ui.train.check_upload(str(binary)))
    sample = tmp_path / "sample.json"
    sample.write_bytes(Path("qa_core/sample/sample-squad.json").read_bytes())
    assert "40 questions" in note(ui.train.check_upload(str(sample))) and sample.exists()
    assert note(ui.train.check_upload(None)) == ""


@pytest.mark.parametrize("public", [False, True])
def test_an_upload_is_named_by_its_own_name_not_the_servers_temporary_path(settings, tmp_path, public):
    """Gradio keeps an upload at /tmp/gradio/<hash>/<its name>: a visitor knows the file by its name alone."""
    ui = handlers(replace(settings, public=public))
    folder = tmp_path / "gradio" / "3008b89d"
    folder.mkdir(parents=True)
    empty = folder / "empty.json"
    empty.write_text("", encoding="utf-8")
    assert note(ui.train.check_upload(str(empty))) == "Not usable as training data: empty.json: the file is empty"
    empty.write_text("", encoding="utf-8")  # refused and deleted: uploaded again, and started without a check
    started = ui.train.start_training(None, "", DATA_CHOICES[1], str(empty), "", "", *form())["message"]
    assert started == "Not started: empty.json: the file is empty", started


@pytest.mark.parametrize("text, said", [
    ("[" * 200_000 + "]" * 200_000, "bad.json: file nests lists or objects too deeply to be read"),
    ('{"data": [{"title": "t", "paragraphs": [{"context": "The keeper.", "qas": [{"id": "q1", "question": "Who?", '
     '"answers": [{"text": "The keeper", "answer_start": ' + "9" * 5000 + '}]}]}]}]}',
     "bad.json: data[0].paragraphs[0].qas[0] (id 'q1'): answers[0].answer_start is a number of 5,000 digits; "
     "data files may hold numbers of up to 4,300 digits")])
def test_an_upload_too_deep_or_with_too_long_a_number_is_named_and_deleted(settings, tmp_path, text, said):
    """Found by a tester of a public server: a deeply nested upload showed a bare Error badge (a RecursionError
    escaped) and stayed on disk; a 5,000-digit answer_start was refused in Python's words, naming neither the file
    nor the record."""
    ui = handlers(replace(settings, public=True, training_enabled=True))
    upload = tmp_path / "gradio" / "3008b89d" / "bad.json"
    upload.parent.mkdir(parents=True)
    upload.write_text(text, encoding="utf-8")
    assert note(ui.train.check_upload(str(upload))) == f"Not usable as training data: {said}"
    assert not upload.exists()
    upload.write_text(text, encoding="utf-8")  # uploaded again, and started without a check
    started = ui.train.start_training(None, "", DATA_CHOICES[1], str(upload), "", "", *form())["message"]
    assert started == f"Not started: {said}", started


def test_uploads_over_the_size_limit_are_refused_with_the_limit(settings, tmp_path):
    ui = handlers(settings.__class__(**{**settings.__dict__, "max_upload_bytes": 1000}))
    big = tmp_path / "big.json"
    big.write_bytes(Path("qa_core/sample/sample-squad.json").read_bytes())
    assert "over this server's limit of 0.001 MB" in note(ui.train.check_upload(str(big))) and not big.exists()


def test_the_train_form_is_built_from_the_config(ui, settings, tmp_path):
    assert {"max_steps", "learning_rate", "doc_stride", "version_2_with_negative", "bf16"} <= set(form_fields())
    assert not {"output_dir", "train_file", "resume"} & set(form_fields())
    config = ui.service.train_config("", "sample", "", dict(zip(form_fields(), form(max_train_samples=0))))
    assert config.model_name_or_path == settings.default_model and config.train_file == "sample"
    assert config.validation_file == "sample" and config.max_train_samples is None and config.bf16 is None
    assert Path(config.output_dir).parent == settings.runs_root and Path(config.output_dir).is_dir()  # claimed
    data = tmp_path / "t.json"
    data.write_bytes(Path("qa_core/sample/sample-squad.json").read_bytes())
    custom = ui.service.train_config(settings.default_model, f" {data} ", "rajpurkar/squad:validation",
                                     {"max_steps": 5.0, "max_train_samples": 100.0, "bf16": "off"})
    assert (custom.train_file, custom.validation_file) == (str(data), "rajpurkar/squad:validation")
    assert custom.max_steps == 5 and isinstance(custom.max_steps, int) and custom.max_train_samples == 100
    assert custom.bf16 is False
    assert ui.service.train_config("", "sample", "", {"report_to": "tensorboard"}).report_to == "tensorboard"
    with pytest.raises(ValueError, match="unknown training options \\['output_dir'\\]"):
        ui.service.train_config("", "sample", "", {"output_dir": "/etc"})
    for options, expected in (("max_steps=3", "training options must be a mapping"),
                              ({"seed": "x"}, "seed must be a number, got 'x'"),
                              ({"max_steps": True}, "max_steps must be a number, got True"),
                              ({"warmup_ratio": float("-inf")}, "warmup_ratio must be a finite number"),
                              ({"bf16": "maybe"}, "bf16 must be true or false, got 'maybe'"),  # was read as off
                              ({"max_steps": 10**30}, "max_steps must be at most 2147483647")):
        with pytest.raises(ValueError, match=re.escape(expected)):
            ui.service.train_config("", "sample", "", options)


@pytest.mark.parametrize("choice, values, expected", [
    (DATA_CHOICES[1], {}, "no file uploaded"), (DATA_CHOICES[2], {}, "no data path"),
    (DATA_CHOICES[0], {"learning_rate": -0.1}, "learning_rate must be > 0, got -0.1"),
    (DATA_CHOICES[0], {"learning_rate": 1e30}, "learning_rate must be at most 1 "),
    (DATA_CHOICES[0], {"weight_decay": 1e38}, "weight_decay must be at most 1 "),
    (DATA_CHOICES[0], {"max_steps": 2.5}, "max_steps must be a whole number")])
def test_bad_training_settings_are_refused(ui, choice, values, expected):
    message = ui.train.start_training(None, "", choice, None, "", "", *form(**values))["message"]
    assert message.startswith("Not started") and expected in message
    assert ui.service.jobs.snapshot().status == "idle"


def test_the_train_form_says_the_learning_rate_s_and_weight_decay_s_bounds():
    """The form takes QAConfig's bounds as the command line does: each field says its own, starting refuses past it."""
    from qa_core.ui.train_form import option_input

    assert "at most 1;" in option_input("learning_rate", QAConfig().learning_rate).info
    assert "at most 1;" in option_input("weight_decay", QAConfig().weight_decay).info


def test_training_can_be_switched_off(settings):
    ui = handlers(Settings(settings.runs_root, settings.default_model, False, False))
    assert "switched off" in ui.train.start_training(None, "", DATA_CHOICES[0], None, "", "", *form())["message"]
    assert "switched off" in ui.train.start_quick()["message"]
    polled = ui.train.poll(-1)  # the poll keeps every job button off, as the tab was built
    assert [polled[name]["interactive"] for name in ("start", "quick", "cancel")] == [False, False, False]


def test_training_from_the_tab_appears_in_the_pickers(ui, settings):
    message = ui.train.start_training(None, settings.default_model, DATA_CHOICES[0], None, "", "",
                                *form(num_train_epochs=1.0, max_steps=2, per_device_train_batch_size=4,
                                      max_seq_length=128, doc_stride=32, max_train_samples=8, max_eval_samples=4))
    assert message["message"].startswith("Started job 1 on the bundled sample: ")
    assert "already running" in ui.train.start_quick()["message"]
    assert ui.service.jobs.wait(120)
    polled = ui.train.poll(-1)
    assert "100%" in polled["bar"] and "finished" in polled["status"] and polled["loss"].data[0].y
    assert "finished · finished" not in polled["status"] and polled["ended"] == 1  # the pickers refresh now
    assert [t.name for t in polled["loss"].data][:2] == ["loss", "learning rate"]  # the run's history
    pickers = app.pickers(ui.service, None)
    assert Path(message["message"].split(": ", 1)[1]).name in [v for _, v in pickers["train_run"]["choices"]]
    run = Path(message["message"].split(": ", 1)[1]).name
    assert run in [value for _, value in pickers["ask_model"]["choices"]]
    assert run in [value for _, value in pickers["run"]["choices"]] and pickers["run"]["value"] == run  # the newest
    # A refresh (a tab switch) carries the run picked when it was sent: setting that again raced the job's end, whose
    # pick arrived first and was undone (a CI run's Errors tab stayed on the run picked before the job). It keeps
    # the picker's value by leaving it out; a job's end sets its run.
    assert "value" not in app.pickers(ui.service, "20250101-000000-tiny")["run"]
    assert app.pickers_after_job(ui.service, "20250101-000000-tiny")["run"]["value"] == run
    assert ui.train.poll(polled["version"])["bar"] == gr.skip()  # nothing new: nothing to redraw
    assert ui.train.cancel()["message"] == "No training job is running."


def test_a_public_server_caps_the_questions_a_job_reads(settings):
    public = Settings(settings.runs_root, settings.default_model, training_enabled=True, fast_inference=False,
                      public=True, max_train_examples=50)
    service = QAService(public)
    capped = service.train_config("", "sample", "", {"max_train_samples": 0, "max_eval_samples": 20})
    assert (capped.max_train_samples, capped.max_eval_samples) == (50, 20)
    assert service.quick_config().max_train_samples == 50
    assert QAService(settings).train_config("", "sample", "", {}).max_train_samples is None  # local: all


def test_an_upload_to_a_capped_server_counts_all_its_questions(settings, tmp_path):
    """The note tells what the file holds; the cap (the job reads the first 2) limits only what the job reads."""
    public = Settings(settings.runs_root, settings.default_model, training_enabled=True, fast_inference=False,
                      public=True, max_train_examples=2)
    context = "The keeper wound the clockwork every night."
    qas = [{"id": f"q{n}", "question": "What did the keeper wind?",
            "answers": [{"text": "the clockwork", "answer_start": context.index("the clockwork")}]} for n in range(5)]
    upload = write_squad(tmp_path / "five.json", [{"context": context, "qas": qas}])
    assert note(handlers(public).train.check_upload(str(upload))) == (  # found by a tester: it said 5, no more
        "five.json: 5 questions (0 unanswerable); a job here reads the first 2")
    one = write_squad(tmp_path / "one.json", [{"context": context, "qas": [
        {"id": "q", "question": "Who wound the bell?", "answers": [], "is_impossible": True}]}])
    assert note(handlers(public).train.check_upload(str(one))) == "one.json: 1 question (1 unanswerable)"


def test_a_public_server_trains_on_contexts_no_longer_than_it_answers(settings, tmp_path):
    """Every question's context is cut into windows, so one long context shared by a file's questions multiplied a
    job's work and memory past every cap (a 45 MB context under 10,000 questions); a public server refuses, at the
    upload and at the start, a context over its QA_MAX_CONTEXT_CHARS, naming the question and the limit."""
    public = Settings(settings.runs_root, settings.default_model, training_enabled=True, fast_inference=False,
                      public=True, max_context_chars=1_000)
    ui, folders = handlers(public), set(settings.runs_root.iterdir())
    context = "The keeper wound the clockwork every night. " * 30 + "The last keeper was Abbie Burgess."
    qas = [{"id": f"q{n}", "question": "Who was the last keeper?",
            "answers": [{"text": "Abbie Burgess", "answer_start": context.index("Abbie")}]} for n in range(3)]
    long_file = write_squad(tmp_path / "long.json", [{"context": context, "qas": qas}])
    refused = note(ui.train.check_upload(str(long_file)))
    assert f"question 'q0' has a context of {len(context):,} characters" in refused, refused
    assert "up to 1,000 (QA_MAX_CONTEXT_CHARS)" in refused and not long_file.exists()
    write_squad(long_file, [{"context": context, "qas": qas}])
    started = ui.train.start_training(None, "", DATA_CHOICES[1], str(long_file), "", "", *form())["message"]
    assert started.startswith("Not started") and "QA_MAX_CONTEXT_CHARS" in started, started
    assert set(settings.runs_root.iterdir()) == folders
    write_squad(long_file, [{"context": context, "qas": qas}])
    assert "3 questions" in note(handlers(replace(public, public=False)).train.check_upload(str(long_file)))


def test_a_public_start_over_the_window_limits_says_so_and_shows_no_job(settings, tmp_path):
    """The Message box says why, with the count and the limit; the status box and the buttons show no job."""
    public = Settings(tmp_path, settings.default_model, training_enabled=True, fast_inference=False, public=True,
                      max_train_examples=20, train_limits=replace(settings.train_limits, windows=20))
    ui = handlers(public)
    started = ui.train.start_training(None, "", DATA_CHOICES[0], None, "", "",
                                      *form(max_steps=2, max_seq_length=128, doc_stride=32, max_train_samples=20))
    assert started["message"] == ("Not started: training data: 20 questions make 40 windows; this server cuts at "
                                  "most 20 windows from each training data source (QA_MAX_TRAIN_WINDOWS): use fewer "
                                  "questions (max_train_samples) or shorter contexts")
    assert started["start"]["interactive"] and not started["cancel"]["interactive"]
    assert ui.train.poll(-1)["status"] == "No training job has run since the server started."
    assert list(tmp_path.iterdir()) == []


def test_an_upload_chooses_the_data_source(ui, tmp_path):
    sample = tmp_path / "mine.json"
    sample.write_bytes(Path("qa_core/sample/sample-squad.json").read_bytes())
    assert ui.train.check_upload(str(sample))["choice"] == DATA_CHOICES[1]
    bad = tmp_path / "bad.json"
    bad.write_text("{}", encoding="utf-8")
    assert ui.train.check_upload(str(bad))["choice"] == DATA_CHOICES[0]


def test_a_cleared_or_refused_upload_clears_its_message(ui, settings, tmp_path):
    sample = tmp_path / "mine.json"
    sample.write_bytes(Path("qa_core/sample/sample-squad.json").read_bytes())
    assert "40 questions" in note(ui.train.check_upload(str(sample)))
    # Gradio clears the file box when the visitor clears it and when it refuses a file (type or size, a toast)
    assert ui.train.forget_upload() == {"upload_note": gr.update(value="", visible=False), "choice": DATA_CHOICES[0]}
    demo = app.build_app(settings)
    ids = {c.elem_id: c._id for c in demo.blocks.values() if getattr(c, "elem_id", None)}
    cleared = next(d for d in demo.config["dependencies"] if d["api_name"] == "ui_clear_upload")
    assert [ids["train-upload"], "clear"] in [list(t) for t in cleared["targets"]]
    assert ids["train-upload-note"] in cleared["outputs"] and ids["train-choice"] in cleared["outputs"]


def test_a_start_that_cannot_read_its_data_is_not_started(ui, tmp_path):
    missing = ui.train.start_training(None, "", DATA_CHOICES[2], None, str(tmp_path / "nowhere.json"), "", *form())
    assert missing["message"].startswith("Not started: training data: no such file")
    bad = tmp_path / "notes.json"
    bad.write_text(json.dumps({"hello": "world"}), encoding="utf-8")
    refused = ui.train.start_training(None, "", DATA_CHOICES[2], None, str(bad), "", *form())["message"]
    assert refused.startswith("Not started") and "expected SQuAD JSON" in refused
    evaluation = ui.train.start_training(None, "", DATA_CHOICES[0], None, "", str(tmp_path / "dev.json"), *form())
    assert evaluation["message"].startswith("Not started: evaluation data: no such file")
    folders = set(ui.service.settings.runs_root.iterdir())
    for model in (str(tmp_path / "no-model"), "no-org-xyz/no-model"):  # offline: not cached, not reachable
        assert ui.train.start_training(None, model, DATA_CHOICES[0], None, "", "", *form())["message"].startswith(
            f"Not started: model {model!r}")
    assert set(ui.service.settings.runs_root.iterdir()) == folders  # no run folder claimed
    assert ui.service.jobs.snapshot().status == "idle"


def test_a_run_being_trained_offers_no_resume(settings, tmp_path):
    """A run another process trains (the CLI, or this server's job) says so; Resume would only be refused."""
    from qa_core.run_lock import training_lock

    ui = handlers(Settings(tmp_path / "runs", settings.default_model, training_enabled=True, fast_inference=False))
    run = tmp_path / "runs" / "20250101-000000-busy"
    cancel_at_once(settings, run, max_steps=2, max_train_samples=4, max_eval_samples=2)
    assert ui.train.show_run(run.name)["resume"]["interactive"]
    with training_lock(run):
        picked = ui.train.show_run(run.name)
        assert not picked["resume"]["interactive"] and "being trained" in picked["run_note"]
        ui.train.resume(run.name)  # pressed before the page said so: the job is refused, in the app's words
        assert ui.service.jobs.wait(60) and ui.service.jobs.snapshot().status == "failed"
    refused = ui.service.jobs.snapshot().message
    assert "in use by another process" in refused and "then press Resume" in refused and "--" not in refused


def test_a_resume_of_a_run_whose_data_changed_is_refused_in_the_apps_words(settings, tmp_path):
    """The app's Resume takes no options: its refusal names the run and its data, not train.py's flags (the CLI
    keeps those)."""
    ui = handlers(Settings(tmp_path / "runs", settings.default_model, training_enabled=True, fast_inference=False))
    data = write_squad(tmp_path / "mine.json", [{"context": CONTEXT, "qas": [
        {"id": "a1", "question": QUESTION, "answers": [{"text": "Augustin Fresnel", "answer_start": 36}]}]}])
    config = QAConfig(model_name_or_path=settings.default_model, train_file=str(data), output_dir=str(
        tmp_path / "runs" / "20250101-000000-mine"), max_steps=2, max_seq_length=128, doc_stride=32)
    train(config, should_stop=lambda: True)
    write_squad(data, [{"context": CONTEXT, "qas": [
        {"id": "a1", "question": "Who made the lens?", "answers": [{"text": "Augustin Fresnel", "answer_start": 36}]}]}])
    assert ui.train.resume("20250101-000000-mine")["message"].startswith("Resumed")
    assert ui.service.jobs.wait(60) and ui.service.jobs.snapshot().status == "failed"
    refused = ui.service.jobs.snapshot().message
    assert refused.startswith("not resumed: run 20250101-000000-mine: its training data mine.json changed"), refused
    assert "start a new run" in refused and "--" not in refused
    with pytest.raises(ValueError, match=r"--resume: --train_file .*mine.json: its questions differ"):
        train(config.replace(resume=True))


def test_a_cancelled_run_is_resumed_from_the_train_tab(settings, tmp_path):
    ui = handlers(Settings(tmp_path / "runs", settings.default_model, training_enabled=True, fast_inference=False))
    run = tmp_path / "runs" / "20250101-000000-stopped"
    cancel_at_once(settings, run, max_steps=3, max_train_samples=8, max_eval_samples=4)
    label = dict((value, label) for label, value in ui.service.run_choices())[run.name]
    assert label.endswith("cancelled, no final model")
    assert run.name not in [value for _, value in ui.service.model_choices()]  # not offered where a model is needed
    refused = asyncio.run(ui.ask.ask_in_turn(run.name, QUESTION, CONTEXT))["message"]
    assert "is cancelled and has no final model; resume it in the Train tab" in refused
    picked = ui.train.show_run(run.name)
    assert picked["resume"]["interactive"] and "Resume continues it" in picked["run_note"]
    assert ui.train.resume(run.name)["message"] == f"Resumed {run.name} as job 1"
    assert ui.service.jobs.wait(120) and ui.service.jobs.snapshot().status == "finished"
    assert run.name in [value for _, value in ui.service.model_choices()]
    assert asyncio.run(ui.ask.ask_in_turn(run.name, QUESTION, CONTEXT))
    done = ui.train.show_run(run.name)
    assert not done["resume"]["interactive"] and done["history"].data[0].name == "loss"
    assert "has finished; nothing to resume" in ui.train.resume(run.name)["message"]


def test_a_public_job_by_epochs_finishes_at_the_step_limit_and_says_so(settings, tmp_path):
    """The step cap bounds a run, whatever its epochs make: its job counts to the cap (Step 2/2, not the epochs'
    steps), finishes there with its model, and says which limit it finished at; Resume has nothing to continue."""
    from qa_core.settings import TrainLimits

    ui = handlers(Settings(tmp_path, settings.default_model, training_enabled=True, fast_inference=False,
                           public=True, max_train_examples=8, train_limits=TrainLimits(max_steps=2)))
    started = ui.train.start_training(gr.Request(session_hash="a"), "", DATA_CHOICES[0], None, "", "",
                                      *form(num_train_epochs=5.0, per_device_train_batch_size=4, max_seq_length=128,
                                            doc_stride=32, logging_steps=1))
    assert started["message"].startswith("Started job 1") and ui.service.jobs.wait(120)
    ended = ui.service.jobs.snapshot()
    assert (ended.status, ended.step, ended.total_steps) == ("finished", 2, 2)
    assert ended.message == "finished at this server's limit of 2 steps", ended.message
    refused = ui.train.resume(Path(ended.output_dir).name, gr.Request(session_hash="a"))["message"]
    assert refused.startswith("Not resumed") and "has finished; nothing to resume" in refused, refused
    picked = ui.train.show_run(Path(ended.output_dir).name)
    assert not picked["resume"]["interactive"] and picked["run_note"] == ""


def test_a_run_without_a_checkpoint_cannot_be_resumed(settings, tmp_path):
    from qa_core.checkpoints import write_run_info
    from qa_core.run_files import RunInfo

    ui = handlers(Settings(tmp_path, settings.default_model, training_enabled=True, fast_inference=False))
    write_run_info(tmp_path / "early", RunInfo("failed", {"train_file": "sample"}))
    assert "stopped before its first checkpoint" in ui.train.resume("early")["message"]
    assert ui.train.resume(None)["message"].startswith("Not resumed: pick a run")


def test_a_finished_run_shows_its_history(ui, tiny_run):
    shown = ui.train.show_run(tiny_run.name)
    names = [t.name for t in shown["history"].data]
    assert names[:2] == ["loss", "learning rate"] and {"EM", "F1"} <= set(names) and shown["run_note"] == ""


def test_the_train_tab_of_a_public_server_lets_only_the_starter_cancel(settings, tmp_path):
    ui = handlers(Settings(tmp_path, settings.default_model, training_enabled=True, fast_inference=False,
                           public=True, max_train_examples=8))
    started = ui.train.start_training(gr.Request(session_hash="a"), "", DATA_CHOICES[0], None, "", "",
                                      *form(max_steps=2000, per_device_train_batch_size=4, max_seq_length=128,
                                            doc_stride=32))
    assert started["message"].startswith("Started job 1")
    assert "only the visitor who started" in ui.train.cancel(gr.Request(session_hash="b"))["message"]
    assert ui.train.cancel(gr.Request(session_hash="a"))["message"] == "Cancelling after the current step."
    assert ui.service.jobs.wait(120)


def test_a_public_job_started_without_a_session_is_nobodys_to_cancel(settings, tmp_path):
    """A job started by a request without a Gradio session (Gradio's /run route did that) had the empty owner,
    which every other session-less request matched: any stranger could cancel it."""
    ui = handlers(Settings(tmp_path, settings.default_model, training_enabled=True, fast_inference=False,
                           public=True, max_train_examples=8))
    started = ui.train.start_training(gr.Request(), "", DATA_CHOICES[0], None, "", "",
                                      *form(max_steps=2000, per_device_train_batch_size=4, max_seq_length=128,
                                            doc_stride=32))
    assert started["message"].startswith("Started job 1")
    assert "only the visitor who started" in ui.train.cancel(gr.Request())["message"]
    ui.service.jobs.cancel()  # the host may
    assert ui.service.jobs.wait(120)


def test_the_cancelling_line_gives_way_to_how_the_job_ended(ui):
    """'Cancelling after the current step.' is true only while the job runs: once it has ended, the Message box
    says how (a message about anything else stays)."""
    started = ui.train.start_training(None, "", DATA_CHOICES[0], None, "", "",
                                      *form(max_steps=2000, per_device_train_batch_size=4, max_seq_length=128,
                                            doc_stride=32, max_train_samples=8))
    assert started["message"].startswith("Started job 1")
    cancelling = ui.train.cancel()["message"]
    assert cancelling == "Cancelling after the current step." and ui.service.jobs.wait(120)
    assert ui.train.poll(-1, cancelling)["message"].startswith("Job 1 cancelled")
    seen = ui.train.poll(-1, started["message"])  # a tick that saw the end before the cancel's line came back
    assert seen["message"] == gr.skip()
    assert ui.train.poll(seen["version"], cancelling)["message"].startswith("Job 1 cancelled")  # the next tick


def test_the_picked_run_is_shown_again_when_a_job_ends(settings):
    """A run picked in the Train tab and resumed: when its job ends its note, history and Resume button are read
    again (they said 'Stopped before it finished' with Resume enabled after it had finished)."""
    demo = app.build_app(settings)
    ids = {c.elem_id: c._id for c in demo.blocks.values() if getattr(c, "elem_id", None)}
    events = {d["api_name"]: d for d in demo.config["dependencies"]}
    shown = events["ui_show_run_again"]
    assert shown["inputs"] == [ids["train-run"]]
    assert {ids["train-run-note"], ids["train-resume"], ids["train-history"]} <= set(shown["outputs"])
    ended = {tuple(t) for t in events["ui_job_ended"]["targets"]}
    assert {tuple(t) for t in shown["targets"]} == ended
    nothing = handlers(settings).train.show_run(None)  # a job ended with no run picked: no 'pick a run' scolding
    assert nothing["run_note"] == "" and nothing["history"] is None and not nothing["resume"]["interactive"]


def test_a_public_train_tab_says_its_limits_before_anything_is_refused(settings):
    """A visitor learns the caps from the tab, not one refusal at a time; a local server has none to say."""
    public = Settings(settings.runs_root, settings.default_model, training_enabled=True, fast_inference=False,
                      public=True, max_train_examples=500)
    notes = {c.elem_id: c.value for c in app.build_app(public).blocks.values() if isinstance(c, gr.Markdown)}
    limits = public.train_limits
    assert notes["train-limits"].startswith("This public server trains")
    for figure in (f"{limits.max_steps:,} steps", f"{limits.epochs:g} epochs", f"{limits.batch_size} windows",
                   f"{limits.max_seq_length} tokens", "500 questions", f"{public.max_upload_bytes // 1_000_000} MB"):
        assert figure in notes["train-limits"], figure
    local = {c.elem_id for c in app.build_app(settings).blocks.values() if isinstance(c, gr.Markdown)}
    assert "train-limits" not in local


def train_form(settings: Settings) -> dict[str, gr.components.Component]:
    """The app's labelled components by label: the model pickers and the Train form's inputs."""
    return {c.label: c for c in app.build_app(settings).blocks.values() if getattr(c, "label", None)}


def on_page(block: gr.blocks.Block | None) -> bool:
    """Whether a component shows: it and every block around it are visible."""
    return block is None or (getattr(block, "visible", True) is not False and on_page(block.parent))


def test_a_public_train_tab_offers_nothing_the_server_refuses(settings):
    """A public server refuses torch_compile (unless QA_ALLOW_TORCH_COMPILE) and any hub id it does not list: its
    form neither shows the switch nor suggests typing a hub id; a local server's form offers both."""
    public = replace(settings, public=True, training_enabled=True)
    shown = train_form(public)
    assert not on_page(shown["torch_compile"])
    for picker in ("Model", "Start from model"):
        assert "hub id" not in shown[picker].info and "finished run" in shown[picker].info, shown[picker].info
    offered = train_form(replace(public, allowed_models=("org/squad-model",)))["Start from model"].info
    assert "org/squad-model" in offered and "online" not in offered
    assert on_page(train_form(replace(public, train_limits=replace(public.train_limits, torch_compile=True)))[
        "torch_compile"])
    local = train_form(settings)
    assert on_page(local["torch_compile"]) and "hub id (online)" in local["Start from model"].info


def test_a_train_tab_where_training_is_off_offers_no_upload(settings):
    """Found by a tester: a public server with training off took a file dropped in the Train tab and kept it, though
    no job could read it (the server now refuses uploads there: test_api)."""
    for off in (replace(settings, training_enabled=False), replace(settings, training_enabled=False, public=True)):
        shown = train_form(off)
        assert not on_page(shown["SQuAD JSON file"]) and DATA_CHOICES[1] not in dict(shown["Training data"].choices)
    assert on_page(train_form(settings)["SQuAD JSON file"])


def test_a_job_on_an_upload_says_its_data_and_once_cancelled_does_not_promise_a_resume(settings, tmp_path):
    """Start trained on the sample after an unusable upload without saying which data; a cancelled job on an
    upload said 'resumable from its checkpoint' while the run note said Resume cannot continue it (the upload is
    deleted when its job ends)."""
    ui = handlers(Settings(tmp_path / "runs", settings.default_model, training_enabled=True, fast_inference=False,
                           public=True, max_train_examples=8))
    upload = tmp_path / "upload" / "dev-small.json"
    upload.parent.mkdir()
    upload.write_bytes(Path("qa_core/sample/sample-squad.json").read_bytes())
    started = ui.train.start_training(gr.Request(session_hash="a"), "", DATA_CHOICES[1], str(upload), "", "",
                                      *form(max_steps=20, per_device_train_batch_size=4, max_seq_length=128,
                                            doc_stride=32, save_steps=1, logging_steps=1))
    assert started["message"].startswith("Started job 1 on dev-small.json: "), started["message"]
    deadline = time.monotonic() + 120
    while ui.service.jobs.snapshot().step < 2:  # past its first checkpoint
        assert time.monotonic() < deadline
        time.sleep(0.05)
    ui.train.cancel(gr.Request(session_hash="a"))
    assert ui.service.jobs.wait(120) and not upload.exists()
    ended = ui.service.jobs.snapshot()
    assert ended.status == "cancelled" and "resumable" not in ended.message, ended.message
    assert "Resume cannot continue it" in ended.message and "dev-small.json is gone" in ended.message
    note = ui.train.show_run(Path(ended.output_dir).name)["run_note"]
    assert "dev-small.json is gone" in note


def test_a_run_whose_training_process_died_is_shown_as_interrupted_not_running(settings, tmp_path):
    """Found by a tester: a server stopped mid-job (or a killed train.py) leaves run.json saying "running"; the
    pickers, /list_runs and the run's note said so forever. No process holds its training lock: it is interrupted,
    resumable from its checkpoint. While a process does hold the lock it is running, whatever run.json says."""
    from qa_core.checkpoints import write_run_info
    from qa_core.run_files import read_run_info
    from qa_core.run_lock import training_lock

    ui = handlers(Settings(tmp_path / "runs", settings.default_model, training_enabled=True, fast_inference=False))
    run = tmp_path / "runs" / "20250101-000000-killed"
    cancel_at_once(settings, run, max_steps=3, max_train_samples=8, max_eval_samples=4)
    write_run_info(run, replace(read_run_info(run), status="running"))  # as a trainer killed mid-run leaves it
    label = dict((value, label) for label, value in ui.service.run_choices())[run.name]
    assert label.endswith("interrupted at step 0, no final model") and "running" not in label, label
    assert [r["status"] for r in ui.service.runs_json() if r["run"] == run.name] == ["interrupted"]
    picked = ui.train.show_run(run.name)
    assert picked["resume"]["interactive"] and "Interrupted at step 0" in picked["run_note"], picked["run_note"]
    assert "Resume continues it" in picked["run_note"]
    assert (run / "run.json").read_text().count('"running"') == 1  # told, not rewritten: its next trainer does that
    with training_lock(run):  # another process (train.py --resume) trains it now
        label = dict((value, label) for label, value in ui.service.run_choices())[run.name]
        assert label.endswith("running, no final model"), label
        assert "being trained" in ui.train.show_run(run.name)["run_note"]


def test_while_a_job_runs_resume_is_greyed_out_and_a_started_job_refreshes_the_run_picker(settings, tmp_path):
    """Found by a tester: during a resumed job Resume stayed enabled (pressing it only said a job was already
    running) and the Run picker still said the resumed run was cancelled. Resume now follows the job as Start does,
    in every tab (the poll), and a job's start refreshes the pickers and the picked run's note, as its end does."""
    ui = handlers(Settings(tmp_path / "runs", settings.default_model, training_enabled=True, fast_inference=False))
    resumed, other = (tmp_path / "runs" / f"20250101-00000{n}-stopped" for n in (1, 2))
    for run in (resumed, other):
        cancel_at_once(settings, run, max_steps=2000, max_train_samples=8, max_eval_samples=4)
    assert ui.train.show_run(other.name)["resume"]["interactive"]
    clicked = ui.train.resume(resumed.name)
    assert clicked["message"] == f"Resumed {resumed.name} as job 1" and not clicked["resume"]["interactive"]
    assert not ui.train.poll(-1)["resume"]["interactive"]  # another tab's next tick
    deadline = time.monotonic() + 60
    while ui.service.jobs.snapshot().status != "running":  # its first progress event: run.json rewritten
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert ui.train.poll(-1)["started"] == 1
    label = dict((value, label) for label, value in ui.service.run_choices())[resumed.name]
    assert label.endswith("running, no final model"), label
    picked = ui.train.show_run(other.name)  # picked while the job runs: Resume would only be refused
    assert not picked["resume"]["interactive"] and "once the running job ends" in picked["run_note"], picked
    ui.train.cancel()
    assert ui.service.jobs.wait(120)
    ended = ui.train.poll(-1)
    assert ended["ended"] == 1 and ended["resume"] == gr.skip()  # the picked run's note decides (ui_show_run_again)
    assert ui.train.show_run(other.name)["resume"]["interactive"]
    demo = app.build_app(settings)
    ids = {c.elem_id: c._id for c in demo.blocks.values() if getattr(c, "elem_id", None)}
    events = {d["api_name"]: d for d in demo.config["dependencies"]}
    assert ids["train-resume"] in events["ui_poll"]["outputs"]
    started = {tuple(t) for t in events["ui_job_started"]["targets"]}
    assert {tuple(t) for t in events["ui_show_run_started"]["targets"]} == started
    assert ids["train-run"] in events["ui_job_started"]["outputs"]
    assert {ids["train-run-note"], ids["train-resume"]} <= set(events["ui_show_run_started"]["outputs"])


def test_a_job_ending_on_the_run_the_errors_tab_shows_reloads_it(settings, tmp_path):
    """Found by a tester: a run resumed to its end kept its earlier figures in the Errors tab, whose picker moved to
    the run it already showed (no change event); only the job's own run is read again, others stay as picked."""
    ui = handlers(settings)
    run = settings.runs_root / "20250101-000000-reloaded"
    cancel_at_once(settings, run, max_steps=3, max_train_samples=8, max_eval_samples=4)
    shown = ui.errors.pick_run(run.name)["summary"]
    assert ui.train.resume(run.name)["message"] == f"Resumed {run.name} as job 1"
    assert ui.service.jobs.wait(120) and ui.service.jobs.snapshot().status == "finished"
    again = ui.errors.pick_run_again(run.name)
    assert again["summary"] != shown and "4 questions" in again["summary"] and again["selected"] == ""
    assert ui.errors.pick_run_again("20250101-000000-other") == {} and ui.errors.pick_run_again(None) == {}
