"""The app's event handlers, called as plain functions with the tiny BERT (nothing is downloaded)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import gradio as gr
import pytest

import app
from qa_core.config import QAConfig
from qa_core.error_analysis import RECORDS_FILE
from qa_core.jobs import JobManager
from qa_core.training import train

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
def settings(monkeypatch, tmp_path, tiny_model_dir, tiny_run) -> app.Settings:
    settings = app.Settings(tiny_run.parent, str(tiny_model_dir), training_enabled=True, fast_inference=False)
    monkeypatch.setattr(app, "SETTINGS", settings)
    monkeypatch.setattr(app, "JOBS", JobManager())
    return settings


def texts(pieces, label):
    return [text for text, name in pieces if name == label]


def test_ask_highlights_the_answer_inside_the_context(settings):
    pieces, score, alternatives, figure, message, notice = app.ask(settings.default_model, QUESTION, CONTEXT)
    assert "".join(text for text, _ in pieces) == CONTEXT
    assert len(texts(pieces, "answer")) == 1 and texts(pieces, "answer")[0] in CONTEXT
    assert "probability" in score and message == ""
    assert 1 <= len(alternatives) <= 5 and alternatives["answer"].iloc[0] == texts(pieces, "answer")[0]
    assert alternatives["probability"].sum() <= 1.0 + 1e-6
    assert figure.data[0].name == "start logit"
    assert notice == gr.update(visible=False)  # the tiny model was saved with a QA head


def test_the_embedded_model_says_it_has_no_qa_head(settings):
    *_, message, notice = app.ask("embedded", QUESTION, CONTEXT)
    assert message == "" and notice == gr.update(visible=True)


@pytest.mark.parametrize("question, context, expected", [
    ("", CONTEXT, "question is empty"), ("   ", CONTEXT, "question is empty"), (QUESTION, "", "context is empty"),
    (QUESTION, "word " * 30_001, "30,001 words"), (QUESTION, None, "context is empty")])
def test_bad_questions_get_a_message(settings, question, context, expected):
    pieces, score, alternatives, figure, message, _ = app.ask(settings.default_model, question, context)
    assert pieces is None and figure is None and len(alternatives) == 0
    assert message.startswith("Cannot answer") and expected in message


def test_unknown_model_gets_a_message(settings, tmp_path):
    *_, message, _ = app.ask(str(tmp_path / "nowhere"), QUESTION, CONTEXT)
    assert "looked for a local folder" in message


@pytest.mark.parametrize("context", [
    "<script>alert('x')</script> <b>Fresnel</b> designed the lens.", "Der Leuchtturm wurde 1823 gebaut. 灯塔 🚢🌊",
    "مرحبا بالعالم " * 20])
def test_odd_text_comes_back_verbatim_as_text(settings, context):
    pieces, *_ , message, _ = app.ask(settings.default_model, "<img src=x onerror=alert(1)> who? 🤔", context)
    assert message == "" and "".join(text for text, _ in pieces) == context


def test_a_context_of_twenty_thousand_words_is_answered(settings):
    context = " ".join(["The keeper wound the clockwork every night."] * 2858)  # 20,006 words
    pieces, score, _, figure, message, _ = app.ask(settings.default_model, "What did the keeper wind?", context)
    assert message == "" and "window(s)" in score and int(score.split(" window")[0].split()[-1]) > 100
    assert len(figure.data[0].x) > 20_000  # the plot covers the whole context


def test_ten_people_asking_at_once_all_get_answers(settings):
    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(lambda i: app.ask(settings.default_model, f"{QUESTION} {i}", CONTEXT), range(10)))
    assert all(r[4] == "" and r[0] for r in results)


def test_upload_check_explains_a_file_that_is_not_squad(tmp_path):
    bad = tmp_path / "notes.json"
    bad.write_text(json.dumps({"hello": "world"}), encoding="utf-8")
    assert "expected SQuAD JSON" in app.check_upload(str(bad))
    binary = tmp_path / "image.json"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    assert "not UTF-8" in app.check_upload(str(binary))
    assert "40 questions" in app.check_upload(str(Path("qa_core/sample/sample-squad.json")))
    assert app.check_upload(None) == ""


def test_train_config_uses_the_config_defaults(settings):
    numbers = [2.0, -1, 1e-4, 16, 256, 128, 0, 0]
    config = app.train_config("", app.DATA_CHOICES[0], None, "", "", *numbers)
    assert config.model_name_or_path == settings.default_model and config.train_file == "sample"
    assert config.validation_file == "sample" and config.max_train_samples is None
    assert Path(config.output_dir).parent == settings.runs_root
    custom = app.train_config("m", app.DATA_CHOICES[2], None, " data/t.json ", "rajpurkar/squad:validation",
                              1.0, 5.0, 3e-5, 8.0, 128.0, 32.0, 100.0, None)
    assert (custom.train_file, custom.validation_file) == ("data/t.json", "rajpurkar/squad:validation")
    assert custom.max_steps == 5 and isinstance(custom.max_steps, int) and custom.max_train_samples == 100


@pytest.mark.parametrize("choice, numbers, expected", [
    (app.DATA_CHOICES[1], [], "no file uploaded"), (app.DATA_CHOICES[2], [], "no data path"),
    (app.DATA_CHOICES[0], [2.0, -1, -0.1], "learning_rate must be > 0, got -0.1")])
def test_bad_training_settings_are_refused(settings, choice, numbers, expected):
    message = app.start_training("", choice, None, "", "", *numbers)
    assert message.startswith("Not started") and expected in message
    assert app.JOBS.snapshot().status == "idle"


def test_training_can_be_switched_off(settings, monkeypatch):
    monkeypatch.setattr(app, "SETTINGS", app.Settings(settings.runs_root, settings.default_model, False, False))
    assert "switched off" in app.start_training("", app.DATA_CHOICES[0], None, "", "")
    assert "switched off" in app.start_quick()


def test_training_from_the_tab_appears_in_the_pickers(settings):
    message = app.start_training(settings.default_model, app.DATA_CHOICES[0], None, "", "",
                                 1.0, 2, 1e-4, 4, 128, 32, 8, 4)
    assert message.startswith("Started job 1")
    assert "already running" in app.start_quick()
    assert app.JOBS.wait(120)
    bar, status, figure, version = app.poll(-1)
    assert "100%" in bar and "finished" in status and figure.data[0].y
    ask_model, train_model, errors_run = app.picker_updates(None)
    run = message.split(": ", 1)[1]
    assert run in [value for _, value in ask_model["choices"]]
    assert run in [value for _, value in errors_run["choices"]] and errors_run["value"] == run  # the newest
    assert app.picker_updates(str(settings.runs_root / "20250101-000000-tiny"))[2]["value"].endswith("-tiny")
    assert app.poll(version)[0] == gr.skip()  # nothing new: nothing to redraw
    assert app.cancel_training() == "No training job is running."


def test_errors_summary_table_and_selection(settings, tiny_run):
    summary, words, lengths, histogram = app.summarize(str(tiny_run))
    assert summary.startswith("12 questions") and "F1" in summary
    assert list(words.data[1].x)[0] == "who" and len(histogram.data[0].x) == 12
    table = app.filter_table(str(tiny_run), False, 0, 100, "all", "", app.views.SORTS[0])
    assert len(table) == 12 and list(table["F1"]) == sorted(table["F1"])
    assert len(app.filter_table(str(tiny_run), False, 0, 100, "who", "", "id")) < 12
    assert len(app.filter_table(str(tiny_run), False, 0, 100, "all", "Fresnel", "id")) >= 1
    row = table.iloc[0].tolist()
    event = gr.SelectData(None, {"index": [0, 2], "value": row[2], "row_value": row})
    pieces, figure, selected, question = app.select_record(str(tiny_run), event)
    assert selected == row[0] and question.startswith(row[2])
    assert any(label and "gold" in label for _, label in pieces)
    assert figure.data[0].name == "start logit"
    tabs, model, sent_question, context = app.send_to_ask(str(tiny_run), selected)
    assert tabs.selected == "ask" and model["value"] == str(tiny_run) and sent_question == row[2]
    assert "".join(text for text, _ in pieces) == context


def test_a_run_without_records_gets_a_message(settings, tmp_path):
    (tmp_path / "empty-run").mkdir()
    summary, *plots_ = app.summarize(str(tmp_path / "empty-run"))
    assert "no evaluation records" in summary and plots_ == [None, None, None]
    assert "pick a run" in app.summarize(None)[0]
    assert len(app.filter_table(None, False, 0, 100, "all", "", "id")) == 0
    broken = tmp_path / "broken-run"
    broken.mkdir()
    (broken / RECORDS_FILE).write_text("not json\n", encoding="utf-8")
    assert "not an evaluation record" in app.summarize(str(broken))[0]


def test_the_layout_builds(settings):
    assert isinstance(app.build_app(), gr.Blocks)


def test_highlight_marks_overlapping_spans():
    pieces = app.views.highlight("the French engineer Augustin Fresnel", {"gold": [(0, 36)], "predicted": [(20, 36)]})
    assert pieces == [("the French engineer ", "gold"), ("Augustin Fresnel", "gold + predicted")]
    assert app.views.highlight("abc", {}) == [("abc", None)]


def test_a_run_without_its_model_still_shows_the_spans(settings, tiny_run, tmp_path):
    stopped = tmp_path / "stopped-run"  # a cancelled run: records from an epoch, no final model
    stopped.mkdir()
    (stopped / RECORDS_FILE).write_text((tiny_run / RECORDS_FILE).read_text(encoding="utf-8"), encoding="utf-8")
    row = app.filter_table(str(stopped), False, 0, 100, "all", "", "id").iloc[0].tolist()
    pieces, figure, selected, question = app.select_record(str(stopped), gr.SelectData(None, {
        "index": [0, 0], "value": row[0], "row_value": row}))
    assert pieces and figure is None and selected == row[0] and "no logit plot" in question


def test_a_run_evaluated_on_its_training_data_says_so(tmp_path) -> None:
    from qa_core.checkpoints import RunInfo, write_run_info
    from qa_core import views

    write_run_info(tmp_path / "same", RunInfo("finished", {"train_file": "sample", "validation_file": "sample"}))
    write_run_info(tmp_path / "held", RunInfo("finished", {"train_file": "a.json", "validation_file": "b.json"}))
    assert "its own training data" in views.evaluation_caveat(str(tmp_path / "same"))
    assert views.evaluation_caveat(str(tmp_path / "held")) == ""
    assert views.evaluation_caveat(str(tmp_path / "missing")) == ""
