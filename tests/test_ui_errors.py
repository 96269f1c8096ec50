"""The Errors tab's handlers as plain calls: a run's summary, table and selected question, comparing two runs,
attributions, calibration, SQuAD 2.0 re-scoring."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import gradio as gr
import numpy as np
import orjson
import pytest

from qa_core import answer_views, errors_views, plots
from qa_core.calibration import fit_calibration, read_calibration, write_calibration
from qa_core.checkpoints import write_run_info
from qa_core.compare_views import PAIR_COLUMNS
from qa_core.config import QAConfig
from qa_core.error_analysis import V2_ERRORS, build_records, find_record, read_records, rescore, write_records
from qa_core.evaluation import EvalResult, run_evaluation, squad_v2_metrics, write_eval_outputs
from qa_core.fairness import Caller
from qa_core.run_files import EVAL_MODEL_FILE, RECORDS_FILE, RUN_FILE, RunInfo
from qa_core.run_settings import run_config
from qa_core.service import QAService
from qa_core.settings import Settings
from qa_core.training import train
from qa_core.ui import app
from qa_core.ui.calibration_panel import CalibrationHandlers
from qa_core.ui.compare_panel import CompareHandlers
from qa_core.ui.errors import NO_ROW, ErrorsHandlers
from tests.test_v2 import write_v2
from tests.ui_handlers import copy_run, handlers
from tests.v2_data import examples, predictions_from_odds

OFF_GRID = 0.00371  # added to the null odds of tests/v2_data: not a multiple of the slider's step


def tiny_config(model: Path, run: Path, steps: int, eval_samples: int = 12) -> QAConfig:
    return QAConfig(model_name_or_path=str(model), train_file="sample", validation_file="sample", output_dir=str(run),
                    max_steps=steps, per_device_train_batch_size=4, max_eval_samples=eval_samples, max_seq_length=128,
                    doc_stride=32, learning_rate=3e-4)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model_dir) -> Path:
    """Runs A and B on the same 12 questions (B trained longer), C on 8 of them, a SQuAD 2.0 evaluation, one whose
    data has a context without any span, and a SQuAD 2.0 run with its model."""
    root = tmp_path_factory.mktemp("runs")
    for name, steps, samples in (("a", 1, 12), ("b", 6, 12), ("c", 1, 8)):
        train(tiny_config(tiny_model_dir, root / name, steps, samples))
    data = write_v2(root / "v2-data.json")
    for name, source in (("v2", data), ("v2-blank", write_v2(root / "v2-blank.json", blank=True))):
        run_evaluation(QAConfig(model_name_or_path=str(tiny_model_dir), validation_file=str(source),
                                output_dir=str(root / name), version_2_with_negative=True), device="cpu")
    v2_run(tiny_model_dir, data, root / "v2-run")
    fix_first_question(root / "b", root / "b-fixed")
    return root


def v2_run(model: Path, data: Path, run: Path) -> None:
    """A finished SQuAD 2.0 run of the tiny model, its evaluation at threshold 0 holding the predictions of
    tests/v2_data (which reach every case of the official scoring), their null odds moved off the slider's grid
    as a model's are, and apart: the official sweep reports a best F1 that tied odds do not reach."""
    shutil.copytree(model, run / "model")
    config = QAConfig(model_name_or_path=str(run / "model"), validation_file=str(data), output_dir=str(run),
                      version_2_with_negative=True)
    write_run_info(run, RunInfo("finished", config.to_dict()))
    predictions = {k: replace(p, null_score=p.null_score + off, score=p.score + off * (p.span is None))
                   for n, (k, p) in enumerate(predictions_from_odds().items()) for off in [OFF_GRID * (n + 1)]}
    write_eval_outputs(run, EvalResult(squad_v2_metrics(examples(), predictions, 0.0), predictions,
                                       build_records(examples(), predictions)))


def fix_first_question(run: Path, fixed: Path) -> None:
    """A copy of the run (same data fingerprint) whose first question is answered with its gold span."""
    shutil.copytree(run, fixed)
    lines = (fixed / RECORDS_FILE).read_text(encoding="utf-8").splitlines()
    first = json.loads(lines[0])
    first.update(prediction=first["gold_answers"][0], span=first["gold_spans"][0], exact_match=100.0, f1=100.0)
    (fixed / RECORDS_FILE).write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def service(runs, tiny_model_dir) -> QAService:
    return QAService(Settings(runs, str(tiny_model_dir), training_enabled=False, fast_inference=False))


def select(row: list) -> gr.SelectData:
    return gr.SelectData(None, {"index": [0, 0], "value": row[0], "row_value": row})


def test_two_runs_on_the_same_data_are_compared_side_by_side(service):
    ui = CompareHandlers(service)
    offered = ui.choices("a")["run_b"]["choices"]
    assert ("a" not in [name for _, name in offered]) and "b" in [name for _, name in offered]
    shown = ui.compare("a", "b", "all")
    assert "A = a · B = b · 12 questions (same data: fingerprint)" in shown["comparison"]
    assert "EM: A" in shown["comparison"] and "95% paired bootstrap interval" in shown["comparison"]
    counts = dict(part.split(": ") for part in shown["comparison"].splitlines()[-1].split(" · "))
    assert set(counts) == {"fixed", "broken", "both right", "both wrong"} and sum(map(int, counts.values())) == 12
    assert set(shown["slice_table"]["slice"]) == {"question word", "answer length", "answerability"}
    assert [t.name for t in shown["slices"].data] == ["F1 run A", "F1 run B"] and len(shown["pairs"]) == 12
    for only in ("fixed", "both wrong"):
        table = ui.filter_pairs("a", "b", only)["pairs"]
        assert len(table) == int(counts[only]) and set(table["outcome"]) <= {only}
    row = shown["pairs"].iloc[0].tolist()
    picked = ui.select_pair("a", "b", select(row))
    labels = {label for _, label in picked["detail"] if label}
    assert any("gold" in label for label in labels) and any("A" in label for label in labels)
    assert picked["pair_question"].startswith(row[2])


def test_a_fixed_question_is_listed_and_shown_with_both_spans(service):
    ui = CompareHandlers(service)
    shown = ui.compare("b", "b-fixed", "fixed")
    assert "fixed: 1" in shown["comparison"] and "EM: A 0.0 · B 8.3 · B − A +8.3" in shown["comparison"]
    assert len(shown["pairs"]) == 1 and list(shown["pairs"]["outcome"]) == ["fixed"]
    assert len(ui.filter_pairs("b", "b-fixed", "broken")["pairs"]) == 0
    picked = ui.select_pair("b", "b-fixed", select(shown["pairs"].iloc[0].tolist()))
    labels = {label for _, label in picked["detail"] if label}
    assert labels & {"B + gold", "A + B + gold"} and "(fixed: F1 A" in picked["pair_question"]


def test_runs_on_different_data_are_not_compared(service, runs):
    ui = CompareHandlers(service)
    refused = ui.compare("a", "c", "all")["comparison"]
    assert "Cannot compare" in refused and "not evaluated on the same data" in refused
    # found by a tester: the refusal named both runs by their server paths; it names them as the pickers do
    assert str(runs) not in refused and "a and c were not evaluated" in refused, refused
    assert "Pick run B" in ui.compare("a", None, "all")["comparison"]
    for shown in (ui.compare("a", "c", "all"), ui.compare("a", None, "all"), ui.choices("a")):
        # an empty table keeps its columns: None showed Gradio's placeholder columns '1 2 3'
        assert list(shown["pairs"].columns) == list(PAIR_COLUMNS) and len(shown["pairs"]) == 0
        assert list(shown["slice_table"].columns)[:3] == ["slice", "group", "questions"]
    assert ui.select_pair("a", "c", select(["x"]))["detail"] is None


def test_a_public_server_compares_only_its_own_runs(service, runs):
    public = QAService(Settings(runs, service.settings.default_model, training_enabled=False, fast_inference=False,
                                public=True))
    shown = CompareHandlers(public).compare("a", str(runs.parent), "all")
    assert "Cannot compare" in shown["comparison"] and str(runs.parent) not in shown["comparison"]


def test_evaluation_stores_a_calibration_shown_with_its_coverage_curve(service, runs):
    stored = read_calibration(runs / "b")
    assert stored is not None and stored.questions == 12
    ui = CalibrationHandlers(service)
    shown = ui.show("b", 0.5)  # 12 questions are too few to fit a temperature on, and the panel says so
    assert shown["calibration"].startswith("No temperature fitted: too few evaluation questions to calibrate "
                                           "(12 answered, 50 needed)")
    assert f"error {stored.ece_before:.3f} on this run's 12 evaluation questions" in shown["calibration"]
    assert "T = " not in shown["calibration"]
    names = {t.name for t in shown["reliability"].data}
    assert {"fraction exactly right", "mean F1 / 100"} <= names and "after temperature scaling" not in names
    assert ui.pick("b", 0.0)["readout"].startswith("Answering only above 0.00: 12 questions answered (100%)")
    assert "threshold must be in [0, 1]" in ui.pick("b", 2.0)["readout"]
    assert "pick a run" in ui.show(None, 0.5)["calibration"]


def test_a_squad2_run_s_calibration_leaves_its_abstentions_out(service, runs, tmp_path):
    """Calibrated and plotted on its answers only, saying so; its abstentions never count as answered."""
    shutil.copytree(runs / "v2", tmp_path / "v2")
    records = read_records(tmp_path / "v2" / RECORDS_FILE)
    odds = sorted(r.null_odds for r in records)
    records = rescore(records, odds[len(odds) // 2])  # the run as if it abstained on half its questions
    write_records(tmp_path / "v2" / RECORDS_FILE, records)
    stored = fit_calibration(records)
    write_calibration(tmp_path / "v2", stored)  # as the evaluation writing the records does
    abstained = sum(r.null_odds is not None and r.span is None for r in records)
    assert 0 < abstained < len(records)
    assert (stored.questions, stored.abstentions) == (len(records) - abstained, abstained)
    shown = CalibrationHandlers(QAService(replace(service.settings, runs_root=tmp_path))).show("v2", 0.0)
    assert f"{abstained} abstentions left out" in shown["reliability"].layout.title.text
    assert f"{abstained} abstentions never answered" in shown["coverage"].layout.title.text
    assert shown["readout"].startswith(f"Answering only above 0.00: {len(records) - abstained} questions answered")


def test_why_this_answer_shows_attributions_within_the_budget(service):
    ui = ErrorsHandlers(service)
    row = ui.filter_table("b", False, 0, 100, "all", "", "id")["table"].iloc[0].tolist()
    shown = asyncio.run(ui.attribute_in_turn("b", row[0]))
    assert shown["attribution"].data[0].type == "heatmap"
    seconds = float(shown["attribution_note"].split(" in ")[1].split(" s ")[0])
    assert seconds <= 2 * 5.0 and "budget 5 s" in shown["attribution_note"]
    assert plots.ATTRIBUTION_LEGEND in shown["attribution_note"]
    assert "Click a row" in asyncio.run(ui.attribute_in_turn("b", ""))["attribution_note"]
    assert "not in this run" in asyncio.run(ui.attribute_in_turn("b", "no-such-id"))["attribution_note"]


def test_an_f1_range_set_high_to_low_reads_as_the_range_between(service):
    """Found by trying the app: F1 from 80 to 20 gave an empty table with no hint."""
    ui = ErrorsHandlers(service)
    ascending = ui.filter_table("b", False, 0, 100, "all", "", "id")["table"]
    assert len(ascending) and ui.filter_table("b", False, 100, 0, "all", "", "id")["table"].equals(ascending)


def test_a_public_server_explains_its_own_runs_records(service, runs):
    """It refused every row ('not offered on this server'): the run went to the model check as a server path."""
    public = QAService(replace(service.settings, public=True))
    ui = ErrorsHandlers(public)
    row = ui.filter_table("b", False, 0, 100, "all", "", "id")["table"].iloc[0].tolist()
    shown = asyncio.run(ui.attribute_in_turn("b", row[0]))
    assert shown["attribution"] is not None, shown["attribution_note"]
    assert shown["attribution"].data[0].type == "heatmap" and str(runs) not in shown["attribution_note"]


def test_send_to_ask_without_a_row_says_why_and_changes_nothing(service):
    with pytest.warns(UserWarning, match="Click a row"):
        sent = ErrorsHandlers(service).send_to_ask("b", "")
    assert all(value == gr.skip() for value in sent.values()) and "Ask tab" in NO_ROW


def test_a_squad_v2_run_gets_answerability_slices_filters_and_a_live_threshold(service, runs):
    ui = ErrorsHandlers(service)
    v2 = str(runs / "v2")
    shown = ui.pick_run(v2)
    assert shown["threshold"]["visible"] and shown["threshold"]["value"] == 0.0 and shown["kind"]["visible"]
    assert list(shown["answerable"]["value"].data[0].x) == ["HasAns", "NoAns"]
    lengths = dict(zip(shown["lengths"].data[1].x, shown["lengths"].data[1].text))
    assert lengths["no answer"] == "n=3" and sum(int(n[2:]) for n in lengths.values()) == 8  # not 1-word answers
    never = ui.summarize(v2, shown["threshold"]["maximum"])  # abstain nowhere
    always = ui.summarize(v2, shown["threshold"]["minimum"])  # abstain everywhere: NoAns all right
    assert never["summary"] != always["summary"] and always["summary"].startswith("8 questions · EM 37.5")
    wrong_answers = ui.filter_table(v2, False, 0, 100, "all", "", "id", V2_ERRORS[1], shown["threshold"]["maximum"])
    assert len(wrong_answers["table"]) == 3 and set(wrong_answers["table"]["gold"]) == {"(unanswerable)"}
    abstained = ui.filter_table(v2, False, 0, 100, "all", "", "id", V2_ERRORS[2], shown["threshold"]["minimum"])
    assert len(abstained["table"]) == 5 and set(abstained["table"]["prediction"]) == {"(no answer)"}
    plain = ui.pick_run("b")
    assert not plain["threshold"]["visible"] and not plain["answerable"]["visible"]
    # the legend of a v1.1 run's spans has no abstentions to explain; a v2 run's has
    assert not [label for label in plain["detail"]["color_map"] if plots.PASSED_OVER in label]
    assert set(shown["detail"]["color_map"]) >= {plots.PASSED_OVER, f"gold + {plots.PASSED_OVER}"}


def test_records_and_calibration_of_an_evaluation_agree(runs):
    stored = read_calibration(runs / "v2")
    assert stored is not None and stored.questions == len((runs / "v2" / RECORDS_FILE).read_text().splitlines())


def test_send_to_ask_from_a_folder_without_a_model_keeps_the_ask_model(service, runs):
    """An evaluation folder holds records, not a model: sending its question must not make the Ask tab's model a
    name that cannot answer ('not a local folder, not in the hub cache'); the Ask tab says why it kept its model."""
    ui = ErrorsHandlers(service)
    evaluation = runs / "v2-unnamed"
    shutil.copytree(runs / "v2", evaluation)
    (evaluation / EVAL_MODEL_FILE).unlink()  # an evaluation folder written before the model was recorded
    row = ui.filter_table("v2-unnamed", False, 0, 100, "all", "", "id")["table"].iloc[0].tolist()
    sent = ui.send_to_ask("v2-unnamed", row[0])
    assert sent["tabs"].selected == "ask" and sent["question"] == row[2] and sent["model"] == gr.skip()
    assert sent["message"].startswith("Model not changed: ") and "do not name" in sent["message"], sent["message"]
    first_of_b = ui.filter_table("b", False, 0, 100, "all", "", "id")["table"].iloc[0, 0]
    sent = ui.send_to_ask("b", first_of_b)
    assert sent["model"]["value"] == "b"  # a run with its model answers as itself
    # Found by a tester: the Ask tab kept the answer, score, top 5 and plot of the question asked before
    assert sent["answer"] == "" and sent["score"] == "" and sent["plot"] is None and sent["answered"] is None
    assert sent["alternatives"].empty and sent["why_plot"] is None
    assert all(value == gr.skip() for value in ui.send_to_ask("b", "").values())  # nothing sent: nothing cleared


def test_send_to_ask_from_an_evaluation_picks_the_model_it_evaluated(service, runs):
    """Found by a tester: `train.py evaluate --model_name_or_path <a run> --output_dir runs/eval-x`, sent from the
    Errors tab, left the Ask tab on its default model with an empty message, though the row note named the model
    to ask; and the Ask tab's threshold, where that model abstains, went unsaid."""
    ui = ErrorsHandlers(service)
    evaluation = runs / "v2-run-eval"
    shutil.copytree(runs / "v2-run", evaluation, ignore=shutil.ignore_patterns("model", RUN_FILE))
    for named in (runs / "v2-run" / "model", runs / "v2-run"):  # the run's model, or the run folder, evaluated
        (evaluation / EVAL_MODEL_FILE).write_text(json.dumps({"model_name_or_path": str(named)}))
        sent = ui.send_to_ask("v2-run-eval", "n1", 0.0)
        assert sent["model"]["value"] == "v2-run" and "where it abstains" in sent["message"], sent["message"]
    # the default model, offered by its configured name
    assert ui.send_to_ask("v2", "n1", 0.0)["model"]["value"] == service.settings.default_model
    (evaluation / EVAL_MODEL_FILE).write_text(json.dumps({"model_name_or_path": str(runs / "elsewhere-model")}))
    sent = ui.send_to_ask("v2-run-eval", "n1", 0.0)
    assert sent["model"] == gr.skip() and sent["question"] and sent["message"].startswith("Model not changed: ")
    assert "elsewhere-model" in sent["message"] and "not offered" in sent["message"], sent["message"]
    public = QAService(Settings(runs, service.settings.default_model, training_enabled=False, fast_inference=False,
                                public=True))
    assert str(runs) not in ErrorsHandlers(public).send_to_ask("v2-run-eval", "n1", 0.0)["message"]


def test_a_squad_v2_evaluation_at_its_own_threshold_shows_its_own_scores(service, runs, tiny_model_dir):
    """`train.py evaluate --null_score_diff_threshold T` writes no run.json: the Errors tab must show its records as
    evaluated (the EM of eval_metrics.json and /list_runs), with the slider at a threshold that reproduces them,
    not re-score them at 0: at T itself, which the evaluation keeps in its eval_settings.json (the slider stood
    at one read off the records: the same scores, under another number than the one evaluated with)."""
    odds = sorted(r.null_odds for r in service.records("v2"))
    threshold = (odds[3] + odds[4]) / 2  # some questions answered, some abstained
    run_evaluation(QAConfig(model_name_or_path=str(tiny_model_dir), validation_file=str(runs / "v2-data.json"),
                            output_dir=str(runs / "v2-own"), version_2_with_negative=True,
                            null_score_diff_threshold=threshold), device="cpu")
    stored = json.loads((runs / "v2-own" / "eval_metrics.json").read_text())
    shown = ErrorsHandlers(service).pick_run("v2-own")
    assert f"EM {stored['exact']:.1f} · F1 {stored['f1']:.1f}" in shown["summary"]
    records = service.records("v2-own")
    assert [r.exact_match for r in rescore(records, shown["threshold"]["value"])] == [r.exact_match for r in records]
    assert shown["threshold"]["value"] == threshold == service.run_threshold("v2-own")


def test_a_row_click_takes_its_turn_on_the_model_thread_within_the_callers_bound(runs, tiny_model_dir):
    """A row click runs the run's model for the question's logits: in turns between callers with the answers, and
    past QA_MAX_CALLER_REQUESTS refused at once, so one visitor's many clicks never make another wait for all."""
    service = QAService(Settings(runs, str(tiny_model_dir), training_enabled=False, fast_inference=False,
                                 public=True, max_caller_requests=2))
    ui = ErrorsHandlers(service)
    table = ui.filter_table("b", False, 0, 100, "all", "", "id")["table"]
    rows = {name: table.iloc[n].tolist() for name, n in (("stranger", 0), ("visitor", 1))}
    # the run's model loaded first
    assert asyncio.run(ui.select_record_in_turn("b", select(rows["visitor"])))["plot"] is not None
    loaded = service.models.get(service.check_question("b", "?", "")[0], exact=True)
    order = []  # whose question the model computes, in order: the stranger's and the visitor's differ
    visitor_ids = loaded.tokenizer(rows["visitor"][2], add_special_tokens=False)["input_ids"]
    loaded.model.register_forward_hook(lambda _, __, kwargs, ___: order.append(
        "visitor" if kwargs["input_ids"][0, 1:1 + len(visitor_ids)].tolist() == visitor_ids else "stranger"),
        with_kwargs=True)
    gate, worker = threading.Event(), service.models._model_thread
    held = worker.submit(Caller("192.0.2.1"), gate.wait, 30)  # the thread is busy answering

    def wait_until_queued(calls: int) -> None:  # on two busy cores a click takes a while to reach the line
        deadline = time.monotonic() + 10
        while queued(worker) < calls and time.monotonic() < deadline:
            time.sleep(0.05)
        assert queued(worker) == calls

    def click(name: str) -> str:
        return asyncio.run(ui.select_record_in_turn("b", select(rows[name]), None,
                                                    gr.Request(session_hash=name)))["question"]
    with ThreadPoolExecutor(6) as pool:
        strangers = [pool.submit(click, "stranger") for _ in range(5)]
        deadline = time.monotonic() + 10
        while sum(f.done() for f in strangers) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        wait_until_queued(2)  # two wait for their turn, three came back refused
        refusals = [f.result(0) for f in strangers if f.done()]
        visitors = pool.submit(click, "visitor")
        wait_until_queued(3)
        gate.set()
        titles = [f.result(30) for f in (*strangers, visitors)]
    assert held.result(0) and len(refusals) == 3
    # the setting's name goes to the host's log: a visitor cannot set it
    assert all("no logit plot: you already have 2 questions" in t and "QA_" not in t for t in refusals)
    assert order == ["stranger", "visitor", "stranger"]  # first come, first served: the visitor last
    assert all("no logit plot" not in t for t in titles if t not in refusals)


def queued(worker) -> int:
    """Calls waiting in a FairWorker's line (not the one running)."""
    with worker._ready:
        return sum(len(calls) for sessions in worker._line.values() for calls in sessions.values())


def test_a_context_without_a_span_leaves_the_threshold_slider_usable(service):
    """Found by trying the app: such a question's null odds are stored as the largest float, and the slider's maximum
    became a 309-digit int that Gradio could not send (orjson: "Integer exceeds 64-bit range"): every output of the
    event showed Error, and the session answered nothing more until the page was loaded again."""
    ui = ErrorsHandlers(service)
    records = service.records("v2-blank")
    assert max(r.null_odds for r in records) == sys.float_info.max  # what the evaluation stored
    shown = ui.pick_run("v2-blank")
    orjson.dumps(shown, default=str)  # as Gradio sends an event's outputs
    slider, odds = shown["threshold"], [r.null_odds for r in records if r.example_id != "blank"]
    assert min(odds) - 2 <= slider["minimum"] <= min(odds) - 1 and max(odds) + 1 <= slider["maximum"] <= max(odds) + 2
    assert slider["minimum"] <= slider["value"] <= slider["maximum"]
    assert ui.summarize("v2-blank", slider["maximum"])["summary"].startswith("9 questions")
    never = ui.filter_table("v2-blank", False, 0, 100, "all", "", "id", V2_ERRORS[0], slider["maximum"])["table"]
    assert (never["prediction"] == "(no answer)").sum() == 1  # answers wherever there is a span: not the blank
    picked = asyncio.run(ui.select_record_in_turn("v2-blank", select(["blank", "who", "Who is it?"]), slider["value"]))
    orjson.dumps(picked, default=str)
    assert "e+308" not in picked["question"] and "no span" in picked["question"]


def test_the_threshold_slider_reaches_the_run_s_thresholds_exactly(service, runs):
    """Found by trying the app: in steps of 0.1 the slider missed best_f1_thresh (-11.392): at -11.4 the summary read
    F1 59.7, not the evaluation's 62.5. Buttons set the evaluated and the best-F1 threshold (on the slider's grid
    where that re-scores the same, else exactly); finer steps reach between close null odds."""
    ui = ErrorsHandlers(service)
    metrics, records = json.loads((runs / "v2-run" / "eval_metrics.json").read_text()), service.records("v2-run")
    assert ui.pick_run("v2-run")["threshold"]["step"] <= 0.01
    best = ui.best_threshold("v2-run")["threshold"]["value"]
    assert best == metrics["best_f1_thresh"] or best == round(best, 2)
    assert rescore(records, best) == rescore(records, metrics["best_f1_thresh"])
    assert f"F1 {metrics['best_f1']:.1f}" in ui.summarize("v2-run", best)["summary"]
    evaluated = ui.evaluated_threshold("v2-run")["threshold"]["value"]
    assert evaluated == 0.0 and f"F1 {metrics['f1']:.1f}" in ui.summarize("v2-run", evaluated)["summary"]


def test_the_best_f1_button_shows_only_where_there_is_a_best_f1_threshold(service, runs):
    """Found in review: an evaluation whose metrics hold no best-F1 threshold kept a Best F1 button that did
    nothing when clicked."""
    ui = ErrorsHandlers(service)
    assert ui.pick_run("v2-run")["best"]["visible"] is True
    copy = runs / "v2-no-best"
    shutil.copytree(runs / "v2", copy)
    try:
        metrics = json.loads((copy / "eval_metrics.json").read_text())
        (copy / "eval_metrics.json").write_text(json.dumps({k: v for k, v in metrics.items() if not k.startswith("best")}))
        assert ui.pick_run("v2-no-best")["best"]["visible"] is False
    finally:
        shutil.rmtree(copy)


def test_the_tab_says_which_threshold_the_ask_tab_answers_at(service, runs):
    """The slider starts where the run was evaluated (its figures are eval_metrics.json's), while the Ask tab answers
    at the best-F1 threshold: a row sent there could flip, with nothing on the page to say why."""
    ui = ErrorsHandlers(service)
    shown, records = ui.pick_run("v2-run"), service.records("v2-run")
    asked = run_config(str(runs / "v2-run")).null_score_diff_threshold
    best = ui.best_threshold("v2-run")["threshold"]["value"]
    assert shown["threshold"]["value"] == 0.0 and rescore(records, best) == rescore(records, asked)
    assert f"the Ask tab answers at {best:.2f} (best F1)" in shown["threshold"]["info"]
    assert "Ask tab" not in ui.pick_run("v2")["threshold"]["info"]  # an evaluation folder has no model to ask


def test_an_abstained_row_marks_the_span_it_passed_over(service):
    """Found by trying the app: an abstained row showed only the gold, in the context and the logit plot, while Why
    this answer? explained the best span with no word that the model had passed it over."""
    ui = ErrorsHandlers(service)
    low = ui.pick_run("v2-run")["threshold"]["minimum"]  # abstains on every question
    row = ui.filter_table("v2-run", False, 0, 100, "all", "", "id", V2_ERRORS[0], low)["table"].iloc[0].tolist()
    record = find_record(service.records("v2-run"), row[0])
    assert row[3] == "(no answer)" and record.best_span
    picked = asyncio.run(ui.select_record_in_turn("v2-run", select(row), low))
    passed = "".join(text for text, label in picked["detail"] if label and plots.PASSED_OVER in label)
    assert passed == record.context[record.best_span[0]:record.best_span[1]]
    assert plots.PASSED_OVER in [a.text for a in picked["plot"].layout.annotations]
    assert f"null odds {record.null_odds:.2f} above threshold {low:.2f}" in picked["question"]
    explained = asyncio.run(ui.attribute_in_turn("v2-run", row[0], low))
    assert "abstained" in explained["attribution_note"] and "passed over" in explained["attribution_note"]
    # Found by a tester: the heat map framed the span as the "answer" while the note said it was passed over
    assert [a.text for a in explained["attribution"].layout.annotations] == [plots.PASSED_OVER]
    high = ui.pick_run("v2-run")["threshold"]["maximum"]
    framed = asyncio.run(ui.attribute_in_turn("v2-run", row[0], high))["attribution"]
    assert [a.text for a in framed.layout.annotations] == ["answer"]
    answered = asyncio.run(ui.select_record_in_turn("v2-run", select(row),
                                                    ui.pick_run("v2-run")["threshold"]["maximum"]))
    assert plots.PASSED_OVER not in [a.text for a in answered["plot"].layout.annotations]


def test_a_row_s_verdict_states_the_threshold_it_was_decided_at(service):
    """Found by a tester: at the run's own threshold (no slider value) the verdict said 'the run's threshold' with
    no number; it says the number, in the Ask tab's words (answer_views.odds_against)."""
    ui = ErrorsHandlers(service)
    record = find_record(service.records("v2-run"), "n2")  # abstained where the run was evaluated, at 0
    picked = asyncio.run(ui.select_record_in_turn("v2-run", select(["n2", "when", record.question])))
    assert record.span is None and answer_views.odds_against(record.null_odds, 0.0) in picked["question"]
    assert "the run's threshold" not in picked["question"]


def test_a_row_sent_to_the_ask_tab_says_when_it_flips_there(service, runs):
    """Found by a tester: the slider starts where the run was evaluated (0) and the Ask tab answers at the best-F1
    threshold, so a row answered in the Errors tab could abstain once sent, with nothing to say why."""
    ui = ErrorsHandlers(service)
    asked = run_config(str(runs / "v2-run")).null_score_diff_threshold
    at_slider, at_ask = (find_record(rescore(service.records("v2-run"), t), "n1") for t in (0.0, asked))
    assert at_slider.span is not None and at_ask.span is None  # null odds between the two thresholds
    note = ui.send_to_ask("v2-run", "n1", 0.0)["message"]
    assert note.startswith("⚠ Answered in the Errors tab at threshold 0.00") and len(note.splitlines()) == 1
    assert f"this tab answers at threshold {asked:.2f}, where it abstains" in note
    assert ui.send_to_ask("v2-run", "a1", 0.0)["message"] == ""  # answered at both thresholds
    assert ui.send_to_ask("v2-run", "n1", asked)["message"] == ""  # the slider where the Ask tab answers
    assert ui.send_to_ask("v2", "n1", 0.0)["message"] == ""  # an evaluation of the default model: no flip


def test_errors_summary_table_and_selection(ui, tiny_run):
    run = tiny_run.name
    shown = ui.errors.summarize(run)
    assert shown["summary"].startswith("12 questions") and "F1" in shown["summary"]
    assert list(shown["words"].data[1].x)[0] == "who" and sum(shown["histogram"].data[0].y) == 12
    table = ui.errors.filter_table(run, False, 0, 100, "all", "", errors_views.SORTS[0])["table"]
    assert len(table) == 12 and list(table["F1"]) == sorted(table["F1"])
    assert len(ui.errors.filter_table(run, False, 0, 100, "who", "", "id")["table"]) < 12
    assert len(ui.errors.filter_table(run, False, 0, 100, "all", "Fresnel", "id")["table"]) >= 1
    row = table.iloc[0].tolist()
    event = gr.SelectData(None, {"index": [0, 2], "value": row[2], "row_value": row})
    detail = asyncio.run(ui.errors.select_record_in_turn(run, event))
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


def test_a_run_without_its_model_still_shows_the_spans(ui, tiny_run, tmp_path):
    stopped = tmp_path / "stopped-run"  # a cancelled run: records from an epoch, no final model
    stopped.mkdir()
    (stopped / RECORDS_FILE).write_text((tiny_run / RECORDS_FILE).read_text(encoding="utf-8"), encoding="utf-8")
    row = ui.errors.filter_table(str(stopped), False, 0, 100, "all", "", "id")["table"].iloc[0].tolist()
    event = gr.SelectData(None, {"index": [0, 0], "value": row[0], "row_value": row})
    detail = asyncio.run(ui.errors.select_record_in_turn(str(stopped), event))
    assert detail["detail"] and detail["plot"] is None and detail["selected"] == row[0]
    assert "no logit plot" in detail["question"]


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
    assert set(labels) == {tiny_run.name, "eval-x"} and re.fullmatch(r"F1 [\d.]+ · eval-x · evaluation only", labels["eval-x"])
    pickers = app.pickers(ui.service, None)
    assert pickers["run"]["value"] == "eval-x"  # the newest folder with records
    assert "eval-x" not in [value for _, value in pickers["ask_model"]["choices"] + pickers["train_run"]["choices"]]
    assert ui.errors.pick_run("eval-x")["summary"].startswith("12 questions")
    row = ui.errors.filter_table("eval-x", False, 0, 100, "all", "", "id")["table"].iloc[0].tolist()
    event = gr.SelectData(None, {"index": [0, 0], "value": row[0], "row_value": row})
    # its rows are plotted and explained with the model it evaluated, which this server offers (found by a
    # tester: they said "no logit plot: eval-x is an evaluation folder" while Send to Ask used that model)
    detail = asyncio.run(ui.errors.select_record_in_turn("eval-x", event))
    assert detail["detail"] and detail["plot"] is not None and "no logit plot" not in detail["question"]
    assert asyncio.run(ui.errors.attribute_in_turn("eval-x", row[0]))["attribution"] is not None
    (root / "eval-x" / EVAL_MODEL_FILE).unlink()  # an evaluation folder written before the model was recorded
    detail = asyncio.run(ui.errors.select_record_in_turn("eval-x", event))
    assert detail["detail"] and "no logit plot: eval-x is an evaluation folder" in detail["question"]
    assert "is an evaluation folder" in asyncio.run(ui.errors.attribute_in_turn("eval-x", row[0]))["attribution_note"]
    assert "eval-x" in [value for _, value in CompareHandlers(ui.service).others(tiny_run.name)]
    assert "12 questions" in CompareHandlers(ui.service).compare(tiny_run.name, "eval-x", "all")["comparison"]
    listed = {r["run"]: r for r in ui.service.runs_json()}
    assert listed["eval-x"]["status"] == "evaluation" and listed["eval-x"]["has_records"]


def test_a_row_is_plotted_and_explained_with_the_windows_its_evaluation_used(settings, tiny_run, tmp_path):
    """The logit plot (and Why this answer?) of a row re-ran the model with its run's windows (128 tokens, stride
    32), not those of the evaluation that scored the row (`train.py evaluate --max_seq_length 64 --doc_stride 16`):
    other windows, other logits than the records came from. The evaluation records its windows; rows use them."""
    from qa_core.inference import answer_question
    from qa_core.modeling import load_model

    root = tmp_path / "runs"
    copy_run(tiny_run, root / tiny_run.name)
    windows = dict(max_seq_length=64, doc_stride=16, max_query_length=16)
    run_evaluation(QAConfig(model_name_or_path=str(root / tiny_run.name), validation_file="sample",
                            output_dir=str(root / "eval-short"), max_eval_samples=12, **windows), device="cpu")
    ui = handlers(replace(settings, runs_root=root))
    record = max(ui.service.records("eval-short"), key=lambda r: len(r.context))  # the most windows
    loaded = load_model(str(root / tiny_run.name))
    trained = run_config(str(root / tiny_run.name))
    evaluated, as_trained = (answer_question(loaded, record.question, record.context, config)
                             for config in (trained.replace(**windows), trained))
    assert evaluated.windows > as_trained.windows  # the two settings cut this context differently
    detail = asyncio.run(ui.errors.select_record_in_turn("eval-short", select([record.example_id, "", ""])))
    shown = detail["shown"].logits
    assert shown.offsets == evaluated.logits.offsets
    for logits, other in ((evaluated.logits, True), (as_trained.logits, False)):  # the same logits, not the run's
        assert all(np.allclose(a, b, rtol=0, atol=1e-6) == other for a, b in (
            (shown.start_logits, logits.start_logits), (shown.end_logits, logits.end_logits)))
    explained = asyncio.run(ui.errors.attribute_in_turn("eval-short", record.example_id))["explained"].attribution
    assert explained.windows == evaluated.windows and len(explained.tokens) <= windows["max_seq_length"]


def test_picking_another_run_forgets_the_selected_question(ui, settings, tiny_run):
    """The selected row, its spans, logit plot and attributions belong to one run: picking another run clears them,
    so neither the page nor Why/Send acts on a question of the run picked before."""
    cleared = ui.errors.forget_selection()
    assert cleared == {"question": "", "detail": None, "plot": None, "selected": "", "shown": None,
                       "attribution": None, "attribution_note": "", "explained": None}
    demo = app.build_app(settings)
    ids = {c.elem_id: c._id for c in demo.blocks.values() if getattr(c, "elem_id", None)}
    events = {d["api_name"]: d for d in demo.config["dependencies"]}
    forget = events["ui_forget_selection"]
    assert [ids["errors-run"], "change"] in [list(t) for t in forget["targets"]]
    assert {ids[name] for name in ("errors-question", "errors-detail", "errors-plot", "errors-why-note",
                                   "errors-why")} <= set(forget["outputs"])


def test_an_evaluation_folder_copied_with_its_runs_folder_still_finds_the_model_it_evaluated(settings, tiny_run,
                                                                                           tmp_path):
    """Found by a tester: eval_model.json held the evaluated run's absolute path, so an evaluation folder copied
    with that run into another runs folder said "no logit plot: … evaluated <run>, which is not offered in the
    Model list" and Send to Ask kept its model, though the Model list offered that run. A sibling run is now stored
    relative to the evaluation folder; a stored path this server does not offer (a folder written before, copied
    or moved since) falls back to the run of that name beside the evaluation folder."""
    root = tmp_path / "runs"
    copy_run(tiny_run, root / tiny_run.name)
    run_evaluation(QAConfig(model_name_or_path=str(root / tiny_run.name / "model"), validation_file="sample",
                            output_dir=str(root / "eval-x"), max_eval_samples=4, max_seq_length=128, doc_stride=32),
                   device="cpu")
    assert str(tmp_path) not in (root / "eval-x" / EVAL_MODEL_FILE).read_text()
    shutil.copytree(root / "eval-x", root / "eval-old")
    (root / "eval-old" / EVAL_MODEL_FILE).write_text(json.dumps({"model_name_or_path": str(root / tiny_run.name)}))
    public_root = tmp_path / "public"
    shutil.copytree(root, public_root)
    for public in (False, True):
        ui = handlers(replace(settings, runs_root=public_root, public=public, training_enabled=False))
        for evaluation in ("eval-x", "eval-old"):  # the old one names tmp_path/runs/<run>, still there
            row = ui.errors.filter_table(evaluation, False, 0, 100, "all", "", "id")["table"].iloc[0].tolist()
            sent = ui.errors.send_to_ask(evaluation, row[0])
            assert sent["model"]["value"] == tiny_run.name and sent["message"] == "", sent["message"]
            detail = asyncio.run(ui.errors.select_record_in_turn(evaluation, select(row)))
            assert detail["plot"] is not None and "no logit plot" not in detail["question"], detail["question"]
    shutil.rmtree(root)  # the stored path gone
    ui = handlers(replace(settings, runs_root=public_root))
    assert ui.service.record_model("eval-old") == tiny_run.name
    shutil.rmtree(public_root / tiny_run.name)  # and no namesake beside it: nothing to offer
    refused = ui.errors.send_to_ask("eval-old", row[0])["message"]
    assert refused.startswith("Model not changed") and tiny_run.name in refused, refused


def test_moving_the_threshold_redraws_the_selected_row_at_the_new_threshold(service, settings):
    """Found by a tester: with a row selected, a new threshold re-scored its table row ("(no answer) 0 0") while the
    panel below kept the old verdict ("Answered: null odds -10.24 not above threshold 0.00"), its "gold + predicted"
    marks, the plot's "predicted" and a note on an answered question. The row is drawn again at the new threshold,
    from the logits and attributions already computed (the threshold changes neither)."""
    ui = ErrorsHandlers(service)
    low = ui.pick_run("v2-run")["threshold"]["minimum"]  # abstains on every question
    record = find_record(service.records("v2-run"), "a1")  # answered with its gold where evaluated, at 0
    picked = asyncio.run(ui.select_record_in_turn("v2-run", select(["a1", "when", record.question]), 0.0))
    explained = asyncio.run(ui.attribute_in_turn("v2-run", "a1", 0.0))
    assert "Answered: null odds" in picked["question"] and "passed over" not in explained["attribution_note"]
    moved = ui.rescore("v2-run", low, picked["shown"], explained["explained"])
    assert moved["summary"] == ui.summarize("v2-run", low)["summary"]
    assert moved["question"].startswith(f"{record.question}  (F1 0.0)")
    assert f"Abstained: null odds {record.null_odds:.2f} above threshold {low:.2f}" in moved["question"]
    labels = {label for _, label in moved["detail"] if label}
    assert any(plots.PASSED_OVER in label for label in labels) and not any("predicted" in label for label in labels)
    assert plots.PASSED_OVER in [a.text for a in moved["plot"].layout.annotations]
    assert "predicted" not in [a.text for a in moved["plot"].layout.annotations]
    assert [a.text for a in moved["attribution"].layout.annotations] == [plots.PASSED_OVER]
    assert "abstained" in moved["attribution_note"] and "passed over" in moved["attribution_note"]
    back = ui.rethreshold("v2-run", 0.0, picked["shown"], explained["explained"])
    assert back["question"] == picked["question"] and back["detail"] == picked["detail"]
    assert back["attribution_note"] == explained["attribution_note"]
    # nothing selected or explained yet, or kept from the run picked before: nothing to draw again
    assert all(value == gr.skip() for value in ui.rethreshold("v2-run", low, None, None).values())
    assert all(value == gr.skip() for value in ui.rethreshold("v2", low, picked["shown"],
                                                              explained["explained"]).values())
    demo = app.build_app(settings)
    ids = {c.elem_id: c._id for c in demo.blocks.values() if getattr(c, "elem_id", None)}
    redraw = {d["api_name"]: d for d in demo.config["dependencies"]}["ui_rescore"]
    assert [ids["errors-threshold"], "change"] in [list(t) for t in redraw["targets"]]
    assert {ids[name] for name in ("errors-question", "errors-detail", "errors-plot", "errors-why-note",
                                   "errors-why")} <= set(redraw["outputs"])


def test_a_row_sent_to_a_model_that_never_abstains_says_when_it_abstained_here(service):
    """Found by a tester: a SQuAD v1.1 model's evaluation with --version_2_with_negative, at a threshold where a row
    abstained, sent it to the Ask tab without a word, and the Ask tab answered it ("France"): that model answers
    every question there, having no SQuAD 2.0 threshold of its own."""
    ui = ErrorsHandlers(service)
    slider = ui.pick_run("v2")["threshold"]  # an evaluation of the default model, which answers SQuAD v1.1 style
    low, high = slider["minimum"], slider["maximum"]
    record = find_record(rescore(service.records("v2"), low), "n1")
    assert record.abstained and service.model_threshold(service.settings.default_model) is None
    sent = ui.send_to_ask("v2", "n1", low)
    assert sent["model"]["value"] == service.settings.default_model
    assert sent["message"] == (f"⚠ Abstained in the Errors tab at threshold {low:.2f} (null odds "
                               f"{record.null_odds:.2f}); this tab answers every question with this model (it has no "
                               f"SQuAD 2.0 threshold of its own)."), sent["message"]
    assert ui.send_to_ask("v2", "n1", high)["message"] == ""  # answered here and there
