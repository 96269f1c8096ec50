"""The run pickers: which runs each offers, and what their labels say."""

from __future__ import annotations

import json

from qa_core.checkpoints import RunInfo, write_run_info
from qa_core.eval_settings import Evaluated, write_evaluated
from qa_core.run_files import METRICS_FILE, QUICK_DATA, RECORDS_FILE
from qa_core.run_picker import model_choices, record_choices, run_choices


def test_choices_list_finished_runs_and_runs_with_records(tmp_path):
    for name, status in (("done", "finished"), ("stopped", "cancelled"), ("broken", "failed"), ("hollow", "finished")):
        write_run_info(tmp_path / name, RunInfo(status, {"train_file": "a.json", "validation_file": "b.json"},
                                                metrics={"f1": 71.25} if status == "finished" else {}))
    (tmp_path / "done" / "config.json").write_text("{}", encoding="utf-8")  # only this run has its final model
    (tmp_path / "stopped" / RECORDS_FILE).write_text("", encoding="utf-8")
    choices = model_choices(tmp_path)
    assert [value for _, value in choices] == ["embedded", str(tmp_path / "done")]
    assert choices[1][0] == "F1 71.2 · done · measured on b.json"
    assert record_choices(tmp_path) == [("stopped · cancelled, no final model", str(tmp_path / "stopped"))]
    labels = dict((value, label) for label, value in run_choices(tmp_path))
    assert len(labels) == 4 and labels[str(tmp_path / "hollow")].endswith("finished, no final model")
    assert model_choices(tmp_path / "missing", default="/m/tiny")[0] == ("/m/tiny", "/m/tiny")


def test_labels_say_what_the_score_was_measured_on(tmp_path):
    write_run_info(tmp_path / "own", RunInfo("finished", {"train_file": "sample", "validation_file": "sample"},
                                             metrics={"f1": 97.7}))
    write_run_info(tmp_path / "quick", RunInfo("finished", {"train_file": str(tmp_path / QUICK_DATA[0]),
                                                            "validation_file": str(tmp_path / QUICK_DATA[1])},
                                               metrics={"f1": 40.0}))
    labels = [label for label, _ in run_choices(tmp_path)]
    assert "F1 97.7 · own · measured on its training data · finished, no final model" in labels
    assert "F1 40.0 · quick · measured on held-out sample passages · finished, no final model" in labels


def test_a_run_evaluated_again_says_on_what(tmp_path):
    """`train.py evaluate` into a run folder may use other data than its training's evaluation: the label names
    the data its eval_settings.json records, not the run's validation_file."""
    for name, data in (("other", "dev-v1.1.json"), ("own", "train.json"), ("unrecorded", None)):
        write_run_info(tmp_path / name, RunInfo("finished", {"train_file": "train.json", "validation_file": "b.json"},
                                                metrics={"f1": 50.0}))
        (tmp_path / name / METRICS_FILE).write_text(json.dumps({"exact_match": 40.0, "f1": 60.0}), encoding="utf-8")
        if data:
            write_evaluated(tmp_path / name, Evaluated(data))
    labels = sorted(label for label, _ in run_choices(tmp_path))
    assert labels == ["F1 60.0 · other · evaluated again on dev-v1.1.json · finished, no final model",
                      "F1 60.0 · own · evaluated again on its training data · finished, no final model",
                      "F1 60.0 · unrecorded · evaluated again (train.py evaluate) · finished, no final model"]


def test_the_embedded_model_s_label_says_it_answers_untrained_within_a_phone_s_picker(tmp_path):
    """A 390 px phone's closed picker shows a label's first thirty-odd characters: a tester saw only "embedded:
    pretrained MiniLM-…", not that the model has no QA head yet (so its answers are noise)."""
    label = model_choices(tmp_path)[0][0]
    assert "no QA head" in label[:28] and "embedded" in label
