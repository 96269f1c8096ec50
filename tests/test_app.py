"""The app's event handlers, called as plain methods with the tiny BERT (nothing is downloaded)."""

from __future__ import annotations

import asyncio
import html
import inspect
import json
import re
import shutil
import threading
import time
from dataclasses import dataclass, replace
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import gradio as gr
import pytest

from qa_core.ui import app
from qa_core.config import QAConfig
from qa_core.config_options import form_fields
from qa_core.evaluation import run_evaluation
from qa_core.fairness import Caller
from qa_core.hosting import Settings
from qa_core import error_analysis, plots, views
from qa_core.run_files import RECORDS_FILE
from qa_core.service import QAService
from qa_core.training import train
from qa_core.ui.ask import AskHandlers
from qa_core.ui.compare_panel import CompareHandlers
from qa_core.ui.errors import ErrorsHandlers
from qa_core.ui.train import DATA_CHOICES, TrainHandlers
from tests.conftest import write_squad

CONTEXT = "The lighthouse lens was designed by Augustin Fresnel in the early nineteenth century."
QUESTION = "Who designed the lens?"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_model_dir) -> Path:
    """A finished run of the tiny model with evaluation records on the first sample questions."""
    run = tmp_path_factory.mktemp("runs") / "20250101-000000-tiny"
    train(QAConfig(model_name_or_path=str(tiny_model_dir), train_file="sample", validation_file="sample",
                   output_dir=str(run), max_steps=2, per_device_train_batch_size=4, max_eval_samples=12,
                   max_seq_length=128, doc_stride=32))
    return run


@pytest.fixture()
def settings(tiny_model_dir, tiny_run) -> Settings:
    return Settings(tiny_run.parent, str(tiny_model_dir), training_enabled=True, fast_inference=False)


@dataclass(frozen=True)
class UI:
    """Every tab's handlers over one service, as the app builds them."""

    service: QAService
    ask: AskHandlers
    train: TrainHandlers
    errors: ErrorsHandlers


def handlers(settings: Settings) -> UI:
    service = QAService(settings)
    return UI(service, AskHandlers(service), TrainHandlers(service), ErrorsHandlers(service))


@pytest.fixture()
def ui(settings) -> UI:
    return handlers(settings)


def form(**values) -> list:
    """Train-form values in form_fields() order; None keeps QAConfig's default."""
    return [values.get(name) for name in form_fields()]


def texts(pieces, label):
    return [text for text, name in pieces if name == label]


def part(block: str, name: str) -> str:
    """The text of one part of the Ask tab's answer block (qa-headline, qa-detail, qa-context), unescaped."""
    inner = re.search(f'<div class="{name}"[^>]*>(.*?)</div>', block, re.S).group(1)
    return html.unescape(re.sub(r"<[^>]+>", "", inner))


def marked(block: str) -> list[str]:
    return [html.unescape(m) for m in re.findall(r"<mark[^>]*>(.*?)</mark>", block, re.S)]


def test_ask_shows_the_answer_large_and_marks_it_in_the_context(ui, settings):
    shown = ui.ask.ask(settings.default_model, QUESTION, CONTEXT)
    block, alternatives = shown["answer"], shown["alternatives"]
    assert part(block, "qa-context") == CONTEXT
    answer = part(block, "qa-headline")
    assert marked(block) == [answer] and answer in CONTEXT and '<mark class="qa-span">' in block
    assert re.fullmatch(r"probability \d+%", part(block, "qa-detail"))
    assert "probability" in shown["score"] and shown["message"] == ""
    assert 1 <= len(alternatives) <= 5 and alternatives["answer"].iloc[0] == answer
    assert alternatives["probability"].sum() <= 1.0 + 1e-6
    assert shown["plot"].data[0].name == "start logit"
    assert shown["notice"] == gr.update(visible=False)  # the tiny model was saved with a QA head


def test_the_embedded_model_says_it_has_no_qa_head(ui):
    shown = ui.ask.ask("embedded", QUESTION, CONTEXT)
    assert shown["message"] == "" and shown["notice"] == gr.update(visible=True)


@pytest.mark.parametrize("question, context, expected", [
    ("", CONTEXT, "question is empty"), ("   ", CONTEXT, "question is empty"), (QUESTION, "", "context is empty"),
    (QUESTION, "word " * 3001, "15,005 characters; this server answers contexts of up to 15,000"),
    (QUESTION, "中" * 2_000_000, "2,000,000 characters"), ("why " * 200, CONTEXT, "question has 800 characters"),
    (QUESTION, None, "context is empty")])
def test_bad_questions_get_a_message(ui, question, context, expected):
    shown = ui.ask.ask("", question, context)
    assert shown["answer"] == "" and shown["plot"] is None and len(shown["alternatives"]) == 0
    assert shown["message"].startswith("Cannot answer") and expected in shown["message"]


def test_a_context_over_the_window_limit_is_refused_before_the_model_runs(settings):
    ui = handlers(settings.__class__(**{**settings.__dict__, "max_context_windows": 4}))
    long = " ".join(["The keeper wound the clockwork every night."] * 120)  # under the character limit
    message = ui.ask.ask("", "What did the keeper wind?", long)["message"]
    assert "windows of 256 tokens; this server answers up to 4" in message
    assert ui.ask.ask("", "What did the keeper wind?", " ".join(long.split()[:100]))["message"] == ""


def test_unknown_model_gets_a_message(ui, tmp_path):
    assert "looked for a local folder" in ui.ask.ask(str(tmp_path / "nowhere"), QUESTION, CONTEXT)["message"]


@pytest.mark.parametrize("context", [
    "<script>alert('x')</script> <b>Fresnel</b> designed the lens.", "Der Leuchtturm wurde 1823 gebaut. 灯塔 🚢🌊",
    "مرحبا بالعالم " * 20])
def test_odd_text_comes_back_verbatim_as_text(ui, context):
    shown = ui.ask.ask("", "<img src=x onerror=alert(1)> who? 🤔", context)
    assert part(shown["answer"], "qa-context") == context and "<script>" not in shown["answer"]
    assert "<b>" not in shown["answer"] and all(m in context for m in marked(shown["answer"]))


def test_a_context_at_the_limits_is_answered(ui):
    context = " ".join(["The keeper wound the clockwork every night."] * 60)
    shown = ui.ask.ask("", "What did the keeper wind?", context)
    assert shown["message"] == "" and int(shown["score"].split(" window")[0].split()[-1]) > 1
    assert len(shown["plot"].data[0].x) > 400  # the plot covers the whole context


def test_ten_people_asking_at_once_all_get_answers(ui):
    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(lambda i: ui.ask.ask("", f"{QUESTION} {i}", CONTEXT), range(10)))
    assert all(r["message"] == "" and r["answer"] for r in results)


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
    assert app.pickers(ui.service, "20250101-000000-tiny")["run"]["value"] == "20250101-000000-tiny"
    assert ui.train.poll(polled["version"])["bar"] == gr.skip()  # nothing new: nothing to redraw
    assert ui.train.cancel()["message"] == "No training job is running."


def test_errors_summary_table_and_selection(ui, tiny_run):
    run = tiny_run.name
    shown = ui.errors.summarize(run)
    assert shown["summary"].startswith("12 questions") and "F1" in shown["summary"]
    assert list(shown["words"].data[1].x)[0] == "who" and len(shown["histogram"].data[0].x) == 12
    table = ui.errors.filter_table(run, False, 0, 100, "all", "", views.SORTS[0])["table"]
    assert len(table) == 12 and list(table["F1"]) == sorted(table["F1"])
    assert len(ui.errors.filter_table(run, False, 0, 100, "who", "", "id")["table"]) < 12
    assert len(ui.errors.filter_table(run, False, 0, 100, "all", "Fresnel", "id")["table"]) >= 1
    row = table.iloc[0].tolist()
    event = gr.SelectData(None, {"index": [0, 2], "value": row[2], "row_value": row})
    detail = ui.errors.select_record(run, event)
    assert detail["selected"] == row[0] and detail["question"].startswith(row[2])
    assert any(label and "gold" in label for _, label in detail["detail"])
    assert detail["plot"].data[0].name == "start logit"
    sent = ui.errors.send_to_ask(run, detail["selected"])
    assert sent["tabs"].selected == "ask" and sent["model"]["value"] == run and sent["question"] == row[2]
    assert "".join(text for text, _ in detail["detail"]) == sent["context"]


def test_a_run_without_records_gets_a_message(ui, tmp_path):
    (tmp_path / "empty-run").mkdir()
    shown = ui.errors.summarize(str(tmp_path / "empty-run"))
    assert "no evaluation records" in shown["summary"] and shown["words"] is None and shown["histogram"] is None
    assert "pick a run" in ui.errors.summarize(None)["summary"]
    assert len(ui.errors.filter_table(None, False, 0, 100, "all", "", "id")["table"]) == 0
    broken = tmp_path / "broken-run"
    broken.mkdir()
    (broken / RECORDS_FILE).write_text("not json\n", encoding="utf-8")
    assert "not an evaluation record" in ui.errors.summarize(str(broken))["summary"]


def test_the_layout_builds(settings):
    demo = app.build_app(settings)
    assert isinstance(demo, gr.Blocks) and demo.title == app.TITLE != "Extractive QA"
    tabs = [block for block in demo.blocks.values() if isinstance(block, gr.Tabs)]
    # Anything else in a Tabs (a State made beside a tab) shifts the page's tab buttons: one tab's name shows twice.
    assert tabs and all(isinstance(child, gr.Tab) for t in tabs for child in t.children)


def test_highlight_marks_overlapping_spans():
    pieces = views.highlight("the French engineer Augustin Fresnel", {"gold": [(0, 36)], "predicted": [(20, 36)]})
    assert pieces == [("the French engineer ", "gold"), ("Augustin Fresnel", "gold + predicted")]
    assert views.highlight("abc", {}) == [("abc", None)]


def test_a_run_without_its_model_still_shows_the_spans(ui, tiny_run, tmp_path):
    stopped = tmp_path / "stopped-run"  # a cancelled run: records from an epoch, no final model
    stopped.mkdir()
    (stopped / RECORDS_FILE).write_text((tiny_run / RECORDS_FILE).read_text(encoding="utf-8"), encoding="utf-8")
    row = ui.errors.filter_table(str(stopped), False, 0, 100, "all", "", "id")["table"].iloc[0].tolist()
    detail = ui.errors.select_record(str(stopped), gr.SelectData(None, {"index": [0, 0], "value": row[0], "row_value": row}))
    assert detail["detail"] and detail["plot"] is None and detail["selected"] == row[0]
    assert "no logit plot" in detail["question"]


def test_a_public_server_refuses_server_paths_and_shows_none(settings, tiny_run, tmp_path):
    public = Settings(settings.runs_root, settings.default_model, training_enabled=True, fast_inference=False,
                      public=True)
    ui = handlers(public)
    folders = set(settings.runs_root.iterdir())
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"data": []}), encoding="utf-8")
    for model in (str(tmp_path), "/etc", str(tiny_run.parent.parent), str(tiny_run)):  # its own runs too
        message = ui.ask.ask(model, QUESTION, CONTEXT)["message"]
        assert "not offered on this server" in message and str(tmp_path.parent) not in message
    assert ui.ask.ask(tiny_run.name, QUESTION, CONTEXT)["message"] == ""  # its own runs, by name
    refused = ui.train.start_training(None, "", DATA_CHOICES[2], None, str(secret), "", *form())["message"]
    assert "only on the bundled sample or an uploaded file" in refused and str(tmp_path) not in refused
    refused = ui.train.start_training(None, "", DATA_CHOICES[0], None, "", str(secret), *form())["message"]
    assert "evaluation data" in refused
    assert "not a run on this server" in ui.errors.summarize(str(tmp_path))["summary"]
    assert set(settings.runs_root.iterdir()) == folders  # no run folder claimed by refusals


def test_a_run_answers_with_its_own_settings(ui, tiny_run):
    used = ui.service.models.answer(str(tiny_run), QUESTION, CONTEXT)
    assert used[0].windows == 1
    entry_config = ui.service.models._entry(str(tiny_run)).config
    assert (entry_config.max_seq_length, entry_config.doc_stride) == (128, 32)  # run.json's, not the defaults


def test_a_run_evaluated_on_its_training_data_says_so(tmp_path) -> None:
    from qa_core.checkpoints import write_run_info
    from qa_core.run_files import RunInfo
    from qa_core import views

    write_run_info(tmp_path / "same", RunInfo("finished", {"train_file": "sample", "validation_file": "sample"}))
    write_run_info(tmp_path / "held", RunInfo("finished", {"train_file": "a.json", "validation_file": "b.json"}))
    assert "its own training data" in views.evaluation_caveat(str(tmp_path / "same"))
    assert views.evaluation_caveat(str(tmp_path / "held")) == ""
    assert views.evaluation_caveat(str(tmp_path / "missing")) == ""


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
    assert "five.json: 5 questions" in note(handlers(public).train.check_upload(str(upload)))
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


LONG = " ".join(["The keeper wound the clockwork every night and trimmed the wick."] * 40)
LATE = LONG + " The last keeper was Abbie Burgess, who left in 1875."


def copy_run(run: Path, folder: Path) -> Path:
    shutil.copytree(run, folder)
    return folder


def test_a_long_context_marks_one_span_and_shows_it_escaped(ui):
    block = ui.ask.ask("", "Who was the last keeper?", LATE)["answer"]
    assert part(block, "qa-context") == LATE and len(marked(block)) == 1
    assert 'class="qa-context"' in block  # the box the page scrolls to the mark (tests/test_browser.py)


def test_a_squad2_run_that_abstains_says_so_and_keeps_the_best_spans(ui, tiny_run, tmp_path):
    run = copy_run(tiny_run, tmp_path / "v2-run")
    (run / "eval_metrics.json").write_text(json.dumps({"best_f1_thresh": -1e6}), encoding="utf-8")  # always abstain
    shown = ui.ask.ask(str(run), QUESTION, CONTEXT)
    block = shown["answer"]
    assert part(block, "qa-headline") == "No answer in this text" and "qa-abstained" in block
    assert "null score" in part(block, "qa-detail") and "dashed span" in part(block, "qa-detail")
    assert '<mark class="qa-passed-over">' in block and marked(block)[0] == shown["alternatives"]["answer"].iloc[0]
    assert len(shown["alternatives"]) >= 1
    # Found by a tester: the long explanation was printed again in the Score box; it is said once, under the answer
    # (and "No answer in this text" once, as the headline).
    detail = part(block, "qa-detail")
    assert "above threshold -1000000.00" in detail and "No answer" not in detail  # the threshold it answers at
    assert "threshold" not in shown["score"] and "No answer" not in shown["score"]
    null_score = float(re.search(r"null score (-?[\d.]+)", detail).group(1))
    assert shown["score"].startswith(f"score {null_score:.2f} (the null score) · 1 window ·"), shown["score"]
    why = ui.ask.why(shown["answered"], str(run), QUESTION, CONTEXT)["why_plot"]  # frames the span passed over
    assert [a.text for a in why.layout.annotations] == [plots.PASSED_OVER]


def test_the_top_answers_list_each_text_once(ui):
    """Found by a tester: "10th" twice in the top answers, two occurrences of one word, which the table (no place
    shown) cannot tell apart; the context marks the best one. /answer, which gives each span's place, keeps both."""
    repeated = "Ann. Ann. Ann. Ann. Ann. Ann. Ann. Ann."  # the tiny BERT ranks two "Ann." spans in its top 5
    texts = list(ui.ask.ask("", "Who?", repeated)["alternatives"]["answer"])
    assert len(texts) == len(set(texts)) and "Ann." in texts, texts
    spans = asyncio.run(ui.service.answer_json("", "Who?", repeated))["alternatives"]
    assert [a["answer"] for a in spans].count("Ann.") == 2 and len({(a["start"], a["end"]) for a in spans}) == 5


def test_a_calibrated_run_shows_scaled_probabilities(ui, tiny_run, tmp_path):
    from qa_core import calibration

    run = copy_run(tiny_run, tmp_path / "calibrated-run")
    too_few = ui.ask.ask(str(run), QUESTION, CONTEXT)  # a tiny evaluation: too few questions for a temperature
    assert "(uncalibrated: too few evaluation questions to calibrate" in part(too_few["answer"], "qa-detail")
    (run / calibration.CALIBRATION_FILE).unlink()  # evaluation stored one; without it Ask shows raw probabilities
    plain = ui.ask.ask(str(run), QUESTION, CONTEXT)
    fitted = calibration.fit_calibration(error_analysis.run_records(str(run)))
    calibration.write_calibration(run, calibration.replace(fitted, temperature=3.0, unfitted=None))
    scaled = ui.ask.ask(str(run), QUESTION, CONTEXT)
    assert "calibrated, temperature 3.00" in part(scaled["answer"], "qa-detail")
    assert "calibrated" not in part(plain["answer"], "qa-detail")
    first = (plain["alternatives"]["probability"].iloc[0], scaled["alternatives"]["probability"].iloc[0])
    assert first[1] != first[0] and scaled["alternatives"]["probability"].sum() <= 1.0 + 1e-6
    (run / calibration.CALIBRATION_FILE).write_text("not json", encoding="utf-8")
    broken = ui.ask.ask(str(run), QUESTION, CONTEXT)  # a broken file: answered, uncalibrated
    assert broken["message"] == "" and part(broken["answer"], "qa-detail") == part(plain["answer"], "qa-detail")


def test_text_the_vocabulary_cannot_read_gets_a_warning(ui):
    chinese = "灯塔的透镜是由奥古斯丁·菲涅耳在十九世纪初设计的。灯塔守护者曾经住在这里。" * 3
    shown = ui.ask.ask("", "谁设计了透镜？", chinese)
    assert "unknown to this model's vocabulary ([UNK])" in shown["message"]
    assert ui.ask.ask("", QUESTION, CONTEXT)["message"] == ""
    # A quarter unknown is not "most of this text": the warning says how much it cannot read.
    quarter = views.unknown_warning(["a", "[UNK]", "b", "c"], "[UNK]")
    assert quarter.startswith("⚠ 25% of") and "most" not in quarter
    assert "most of this text" in views.unknown_warning(["[UNK]", "[UNK]", "b"], "[UNK]")


def test_unknown_emoji_are_not_blamed_on_the_language(ui):
    """Emoji in an English context are [UNK] to a WordPiece vocabulary: the words are read, so the advice is about
    the symbols, not a model for another language; unknown letters (Chinese) still get that advice."""
    emoji = " ".join(f"{word} 🌊🚢" for word in CONTEXT.split())
    message = ui.ask.ask("", QUESTION, emoji)["message"]
    assert "unknown to this model's vocabulary" in message and "trained for this language" not in message
    assert "emoji or symbols" in message, message
    chinese = "灯塔的透镜是由奥古斯丁·菲涅耳在十九世纪初设计的。" * 3
    assert "trained for this language" in ui.ask.ask("", "谁设计了透镜？", chinese)["message"]


def test_why_this_answer_shows_attributions_within_the_budget(ui):
    shown = ui.ask.why(ui.ask.ask("", QUESTION, CONTEXT)["answered"], "", QUESTION, CONTEXT)
    assert [t.type for t in shown["why_plot"].data] == ["heatmap"]
    seconds = float(re.search(r"in ([\d.]+) s", shown["why_note"]).group(1))
    assert seconds < 5.0 + 2.0  # the local budget, plus the answering pass before it
    assert plots.ATTRIBUTION_LEGEND in shown["why_note"] and "changed" not in shown["why_note"]
    refused = ui.ask.ask("", "", CONTEXT)
    assert refused["answered"] is None  # no answer shown: nothing to explain
    assert ui.ask.why(refused["answered"], "", QUESTION, CONTEXT)["why_note"].startswith("No explanation: ask")


def test_why_this_answer_explains_the_answer_shown_after_the_boxes_are_edited(ui):
    """The answer on the page is of the text as answered: its explanation is too, and says the boxes changed."""
    answered = ui.ask.ask("", QUESTION, CONTEXT)["answered"]
    edited = ui.ask.why(answered, "", "How often does the ferry cross?", "The ferry crosses the bay twice a day.")
    tokens = edited["why_plot"].data[0].text[0]
    assert "lens" in tokens and "ferry" not in tokens
    assert "changed after this answer" in edited["why_note"] and "Answer again" in edited["why_note"]
    assert "changed" in ui.ask.why(answered, "another-model", QUESTION, CONTEXT)["why_note"]


def test_explanations_take_turns_between_visitors_and_each_has_few_in_flight(settings):
    """'Why this answer?' computes on one thread beside the model thread: a stranger's many explanations take turns
    with another visitor's instead of going first, and those past QA_MAX_CALLER_REQUESTS are refused at once."""
    ui = handlers(Settings(settings.runs_root, settings.default_model, training_enabled=False, fast_inference=False,
                           public=True, max_caller_requests=2))
    stranger, visitor = gr.Request(session_hash="stranger"), gr.Request(session_hash="visitor")
    answered = ui.ask.ask("", QUESTION, CONTEXT, stranger)["answered"]
    gate, finished = threading.Event(), []
    held = ui.service.explainer.submit(Caller("192.0.2.1"), gate.wait, 30)  # the thread is busy explaining

    def why(request: gr.Request, name: str) -> str:
        note = ui.ask.why(answered, "", QUESTION, CONTEXT, request)["why_note"]
        finished.append(name)
        return note
    with ThreadPoolExecutor(6) as pool:
        strangers = [pool.submit(why, stranger, "stranger") for _ in range(5)]
        deadline = time.monotonic() + 30  # the first explanation imports captum
        while sum(f.done() for f in strangers) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)  # two wait for their turn, three came back refused
        refusals = [f.result(0) for f in strangers if f.done()]
        visitors = pool.submit(why, visitor, "visitor")
        time.sleep(0.2)
        gate.set()
        notes = [f.result(60) for f in (*strangers, visitors)]
    assert held.result(0) and len(refusals) == 3
    assert all("already have 2 explanations" in note and "QA_" not in note for note in refusals)
    assert finished[3:] == ["stranger", "visitor", "stranger"]  # first come, first served: the visitor last
    assert all("integrated gradients" in note or "gradient" in note for note in notes if note not in refusals)


def test_an_old_explanation_is_cleared_by_a_new_answer_an_error_or_another_model(ui, settings):
    cleared = {"why_plot": None, "why_note": ""}
    assert ui.ask.why(ui.ask.ask("", QUESTION, CONTEXT)["answered"], "", QUESTION, CONTEXT)["why_plot"] is not None
    assert {k: ui.ask.ask("", QUESTION, CONTEXT)[k] for k in cleared} == cleared
    assert {k: ui.ask.ask("", "", CONTEXT)[k] for k in cleared} == cleared  # refused: no stale explanation either
    assert ui.ask.clear_why() == cleared
    demo = app.build_app(settings)
    ids = {c.elem_id: c._id for c in demo.blocks.values() if getattr(c, "elem_id", None)}
    events = {d["api_name"]: d for d in demo.config["dependencies"]}
    for name in ("ui_ask", "ui_ask_submit", "ui_forget_why"):
        assert {ids["ask-why-note"], ids["ask-why-plot"]} <= set(events[name]["outputs"]), name
    assert [ids["ask-model"], "change"] in [list(t) for t in events["ui_forget_why"]["targets"]]


def test_every_plot_and_table_is_labelled_and_no_table_shows_numbered_columns(settings):
    """A plot without a label reads 'Plot' in its corner (HasAns / NoAns, calibration, comparison), and a table
    without a value shows Gradio's placeholder columns '1 2 3' (the comparison's tables before and after a
    refused comparison)."""
    demo = app.build_app(settings)
    components = [c for c in demo.blocks.values() if isinstance(c, (gr.Plot, gr.Dataframe))]
    assert components and [c.elem_id for c in components if not c.label] == []
    for table in (c for c in components if isinstance(c, gr.Dataframe)):
        assert table.value["headers"] and table.value["headers"] != ["1", "2", "3"], table.label


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


def cancel_at_once(settings, run: Path, **sizes: int) -> None:
    """A run of the sample cancelled before its first step: a checkpoint, no final model."""
    train(QAConfig(model_name_or_path=settings.default_model, train_file="sample", validation_file="sample",
                   output_dir=str(run), per_device_train_batch_size=4, max_seq_length=128, doc_stride=32, **sizes),
          should_stop=lambda: True)


def test_a_run_without_a_model_gets_no_resume_advice_where_the_server_does_not_train(settings, tmp_path):
    run = tmp_path / "runs" / "20250101-000000-stopped"
    cancel_at_once(settings, run, max_steps=2, max_train_samples=4, max_eval_samples=2)
    ui = handlers(Settings(tmp_path / "runs", settings.default_model, training_enabled=False, fast_inference=False))
    refused = ui.ask.ask(run.name, QUESTION, CONTEXT)["message"]
    assert "is cancelled and has no final model" in refused and "Train tab" not in refused


def test_a_folder_without_a_model_is_named_alike_in_the_ask_and_errors_tabs(settings, tiny_run, tmp_path):
    """One check says why a folder cannot answer: an evaluation folder typed as the Ask tab's model is named as one
    (not as a folder without config.json), and a run whose run.json says running is neither said to have stopped
    nor told plainly to be resumed: it may still be training (the Errors tab's logit plot needs its model too)."""
    folder = tmp_path / "runs" / "eval-x"
    folder.mkdir(parents=True)
    shutil.copy(tiny_run / RECORDS_FILE, folder / RECORDS_FILE)
    ui = handlers(replace(settings, runs_root=tmp_path / "runs"))
    assert "eval-x is an evaluation folder" in ui.ask.ask(str(folder), QUESTION, CONTEXT)["message"]
    running = copy_run(tiny_run, tmp_path / "runs" / "20250101-000000-running")
    shutil.rmtree(running / "model")
    info = json.loads((running / "run.json").read_text())
    (running / "run.json").write_text(json.dumps({**info, "status": "running"}))
    for message in (ui.ask.ask(str(running), QUESTION, CONTEXT)["message"],
                    pytest.raises(ValueError, ui.service.check_run_model, running.name).value.args[0]):
        assert "is running and has no final model yet (if its training was killed" in message, message


def test_a_run_being_trained_offers_no_resume(settings, tmp_path):
    """A run another process trains (the CLI, or this server's job) says so; Resume would only be refused."""
    from qa_core.run_files import training_lock

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
    assert "being trained by another process" in refused and "then press Resume" in refused and "--" not in refused


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
    refused = ui.ask.ask(run.name, QUESTION, CONTEXT)["message"]
    assert "is cancelled and has no final model; resume it in the Train tab" in refused
    picked = ui.train.show_run(run.name)
    assert picked["resume"]["interactive"] and "Resume continues it" in picked["run_note"]
    assert ui.train.resume(run.name)["message"] == f"Resumed {run.name} as job 1"
    assert ui.service.jobs.wait(120) and ui.service.jobs.snapshot().status == "finished"
    assert run.name in [value for _, value in ui.service.model_choices()] and ui.ask.ask(run.name, QUESTION, CONTEXT)
    done = ui.train.show_run(run.name)
    assert not done["resume"]["interactive"] and done["history"].data[0].name == "loss"
    assert "has finished; nothing to resume" in ui.train.resume(run.name)["message"]


def test_a_public_job_stopped_at_the_step_limit_says_so_and_is_not_resumed_a_step_at_a_time(settings, tmp_path):
    """The step cap bounds a run, not a job: a run that reached it cannot continue on this server, where each
    Resume would train one more step before the cap stopped it again."""
    from qa_core.hosting import TrainLimits

    ui = handlers(Settings(tmp_path, settings.default_model, training_enabled=True, fast_inference=False,
                           public=True, max_train_examples=8, train_limits=TrainLimits(max_steps=2)))
    started = ui.train.start_training(gr.Request(session_hash="a"), "", DATA_CHOICES[0], None, "", "",
                                      *form(num_train_epochs=5.0, per_device_train_batch_size=4, max_seq_length=128,
                                            doc_stride=32, logging_steps=1))
    assert started["message"].startswith("Started job 1") and ui.service.jobs.wait(120)
    stopped = ui.service.jobs.snapshot()
    assert (stopped.status, stopped.step) == ("cancelled", 2)
    assert "this server's limit of 2 steps" in stopped.message, stopped.message
    refused = ui.train.resume(Path(stopped.output_dir).name, gr.Request(session_hash="a"))["message"]
    assert refused.startswith("Not resumed") and "this server's limit of 2 steps" in refused, refused
    assert ui.service.jobs.snapshot().job_id == 1
    picked = ui.train.show_run(Path(stopped.output_dir).name)  # nor does the Run picker offer Resume for it
    assert not picked["resume"]["interactive"] and "this server's limit of 2 steps" in picked["run_note"]


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


@pytest.mark.parametrize("public", [False, True])
def test_a_run_as_the_default_model_is_found_and_shown_by_name(settings, tiny_run, public):
    for default in (tiny_run.name, str(tiny_run)):
        ui = handlers(Settings(settings.runs_root, default, training_enabled=False, fast_inference=False,
                               public=public))
        shown = ui.ask.ask("", QUESTION, CONTEXT)
        assert shown["message"] == "" and shown["answer"], default
        values = [value for _, value in ui.service.model_choices()]
        assert values[0] == tiny_run.name and values.count(tiny_run.name) == 1
        assert not any(str(tiny_run.parent) in f"{label} {value}" for label, value in ui.service.model_choices())
        assert asyncio.run(ui.service.answer_json("", QUESTION, CONTEXT))["model"] == tiny_run.name
        assert app.build_app(ui.service.settings)  # the pickers' preselected value is one of their choices
    quick = QAService(Settings(settings.runs_root, tiny_run.name, training_enabled=True, fast_inference=False,
                               public=public)).quick_config()
    shutil.rmtree(quick.output_dir)  # only its config was wanted: the quick fine-tune starts from the run's folder
    assert quick.model_name_or_path == str(tiny_run.resolve())


def test_an_evaluation_folder_is_listed_wherever_records_are_read(settings, tiny_run, tmp_path):
    """`train.py evaluate --output_dir runs/X` writes records but no run.json and no model: the Errors tab, its
    comparison and /list_runs offer it as an evaluation; the model pickers and the Train tab's runs do not."""
    root = tmp_path / "runs"
    copy_run(tiny_run, root / tiny_run.name)
    run_evaluation(QAConfig(model_name_or_path=str(root / tiny_run.name), validation_file="sample",
                            output_dir=str(root / "eval-x"), max_eval_samples=12, max_seq_length=128, doc_stride=32),
                   device="cpu")
    ui = handlers(replace(settings, runs_root=root))
    labels = dict((value, label) for label, value in ui.service.record_choices())
    assert set(labels) == {tiny_run.name, "eval-x"} and labels["eval-x"].startswith("eval-x · evaluation only · F1 ")
    pickers = app.pickers(ui.service, None)
    assert pickers["run"]["value"] == "eval-x"  # the newest folder with records
    assert "eval-x" not in [value for _, value in pickers["ask_model"]["choices"] + pickers["train_run"]["choices"]]
    assert ui.errors.pick_run("eval-x")["summary"].startswith("12 questions")
    row = ui.errors.filter_table("eval-x", False, 0, 100, "all", "", "id")["table"].iloc[0].tolist()
    detail = ui.errors.select_record("eval-x", gr.SelectData(None, {"index": [0, 0], "value": row[0],
                                                                      "row_value": row}))
    assert detail["detail"] and "no logit plot: eval-x is an evaluation folder" in detail["question"]
    assert "is an evaluation folder" in ui.errors.attribute("eval-x", row[0])["attribution_note"]
    assert "eval-x" in [value for _, value in CompareHandlers(ui.service).others(tiny_run.name)]
    assert "12 questions" in CompareHandlers(ui.service).compare(tiny_run.name, "eval-x", "all")["comparison"]
    listed = {r["run"]: r for r in ui.service.runs_json()}
    assert listed["eval-x"]["status"] == "evaluation" and listed["eval-x"]["has_records"]


def test_picking_another_run_forgets_the_selected_question(ui, settings, tiny_run):
    """The selected row, its spans, logit plot and attributions belong to one run: picking another run clears them,
    so neither the page nor Why/Send acts on a question of the run picked before."""
    cleared = ui.errors.forget_selection()
    assert cleared == {"question": "", "detail": None, "plot": None, "selected": "", "attribution": None,
                       "attribution_note": ""}
    demo = app.build_app(settings)
    ids = {c.elem_id: c._id for c in demo.blocks.values() if getattr(c, "elem_id", None)}
    events = {d["api_name"]: d for d in demo.config["dependencies"]}
    forget = events["ui_forget_selection"]
    assert [ids["errors-run"], "change"] in [list(t) for t in forget["targets"]]
    assert {ids[name] for name in ("errors-question", "errors-detail", "errors-plot", "errors-why-note",
                                   "errors-why")} <= set(forget["outputs"])


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
    assert ui.ask.why(ui.ask.ask("", QUESTION, CONTEXT)["answered"], "", QUESTION, CONTEXT)["why_plot"] is not None
    row = ui.errors.filter_table(str(tiny_run), False, 0, 100, "all", "", "id")["table"].iloc[0].tolist()
    assert ui.errors.attribute(tiny_run.name, row[0])["attribution"] is not None
    assert threads == {"qa-model", "qa-explain"}


def test_a_run_evaluated_again_into_its_folder_lists_the_figures_of_its_records(settings, tiny_run, tmp_path):
    """`train.py evaluate --output_dir RUN` on other data refreshes the run's records and eval_metrics.json but
    not run.json: the lists (/list_runs, the pickers) and the Errors summary must give the records' figures and not
    call them 'on its training data'."""
    from qa_core.run_list import list_runs
    from qa_core.run_picker import run_label

    root = tmp_path / "runs"
    run = copy_run(tiny_run, root / tiny_run.name)
    before = list_runs(root)[0].metrics
    data = write_squad(tmp_path / "other.json", [{"context": LATE, "qas": [
        {"id": "q1", "question": "Who was the last keeper?",
         "answers": [{"text": "Abbie Burgess", "answer_start": LATE.find("Abbie Burgess")}]}]}])
    run_evaluation(QAConfig(model_name_or_path=str(run), validation_file=str(data), output_dir=str(run),
                            max_seq_length=128, doc_stride=32), device="cpu")
    stored = json.loads((run / "eval_metrics.json").read_text())
    summary = list_runs(root)[0]
    assert (summary.metrics["exact_match"], summary.metrics["f1"]) == (stored["exact_match"], stored["f1"]) != (
        before["exact_match"], before["f1"])
    label = run_label(summary)
    assert f"F1 {stored['f1']:.1f}" in label and "training data" not in label and "evaluated again" in label
    assert views.evaluation_caveat(str(run)) == ""
    service = QAService(replace(settings, runs_root=root))
    assert service.runs_json()[0]["metrics"]["f1"] == stored["f1"]


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


def test_the_no_head_notice_suggests_only_what_the_server_allows(settings):
    """A public server's notice suggested typing a hub id, which it refuses, and a server without training the
    quick fine-tune."""
    from qa_core.ui.ask import no_head_notice

    public = replace(settings, public=True, training_enabled=False)
    assert "hub id" not in no_head_notice(public) and "quick fine-tune" not in no_head_notice(public)
    assert no_head_notice(public).endswith("random.** Choose a finished run from the list in the model box.")
    assert "or org/squad-model" in no_head_notice(replace(public, allowed_models=("org/squad-model",)))
    local = no_head_notice(replace(settings, training_enabled=True))
    assert "quick fine-tune" in local and "hub id" in local


def test_a_public_server_shows_a_model_folder_default_by_its_name_not_its_path(settings, tiny_model_dir):
    """QA_DEFAULT_MODEL may be a folder outside the runs folder: visitors see and name it by its folder name, and
    no picker, answer or message shows where it lies on the server."""
    public = Settings(settings.runs_root, str(tiny_model_dir), training_enabled=True, fast_inference=False,
                      public=True)
    ui = handlers(public)
    shown = [f"{label} {value}" for label, value in ui.service.model_choices()]
    assert shown[0].split()[-1] == tiny_model_dir.name
    assert not any(str(tiny_model_dir.parent) in text for text in shown)
    for asked in ("", tiny_model_dir.name):
        answered = asyncio.run(ui.service.answer_json(asked, QUESTION, CONTEXT))
        assert answered["model"] == tiny_model_dir.name and answered["answer"]
    with pytest.raises(ValueError, match="not offered"):
        ui.service.check_question(str(tiny_model_dir), QUESTION, CONTEXT)  # a stranger never names the path
    assert app.build_app(public)  # which preloads the default
    quick = QAService(public).quick_config()
    shutil.rmtree(quick.output_dir)  # only its config was wanted
    assert quick.model_name_or_path == str(tiny_model_dir)


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
