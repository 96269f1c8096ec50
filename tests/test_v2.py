"""SQuAD 2.0: the official figures, abstaining on the null score, re-scored records, a run's own threshold."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qa_core.config import QAConfig
from qa_core.data import Answer, Example, load_examples
from qa_core.error_analysis import (V2_ERRORS, answerable_slice, build_records, filter_records, group_scores,
                                    read_records, rescore, write_records)
from qa_core.evaluation import (BEST_SPANS_FILE, METRICS_FILE, NULL_ODDS_FILE, PREDICTIONS_FILE, run_evaluation,
                                squad_v2_metrics)
from qa_core.features import Feature
from qa_core.inference import answer_question, config_for_model
from qa_core.metrics import compute_metrics_v2
from qa_core.postprocess import Prediction, Span, SpanSearch, predict_example
from qa_core.score import score_files
from qa_core.views import answer_note

OFFICIAL = Path(__file__).parent / "official_squad_v2.py"
ROOT = Path(__file__).parent.parent

CONTEXT = "The ferry to Kessick leaves at noon, and the ferryman, Odo Brant, rows it alone across the firth."
# (id, question, gold answers: [] when unanswerable)
QUESTIONS = [
    ("a1", "When does the ferry leave?", ["noon", "at noon"]),
    ("a2", "Who rows the ferry?", ["Odo Brant", "the ferryman, Odo Brant"]),
    ("a3", "Where does the ferry go?", ["Kessick"]),
    ("a4", "What is crossed?", ["the firth"]),
    ("a5", "What article?", ["the"]),  # normalizes to nothing: v2.0 scores it against ""
    ("n1", "Who built the ferry?", []),
    ("n2", "When does it come back?", []),
    ("n3", "How much is a ticket?", []),
]
# Several golds, partial answers, empty answers (abstained) on both kinds of question, answers on unanswerable ones
PREDICTIONS = {"a1": "at noon", "a2": "Brant", "a3": "", "a4": "alone across the firth", "a5": "", "n1": "Odo Brant",
               "n2": "", "n3": "the"}
# Ties (0.5 twice, -1 twice) and negative odds, as null odds (score differences) are
NULL_ODDS = {"a1": -3.0, "a2": 0.5, "a3": 2.0, "a4": -1.0, "a5": 0.5, "n1": -1.0, "n2": 4.0, "n3": 1.5}


def write_v2(path: Path) -> Path:
    qas = [{"id": qid, "question": q, "is_impossible": not golds,
            "answers": [{"text": g, "answer_start": CONTEXT.find(g)} for g in golds]} for qid, q, golds in QUESTIONS]
    path.write_text(json.dumps({"version": "v2.0", "data": [{"title": "t", "paragraphs": [
        {"context": CONTEXT, "qas": qas}]}]}), encoding="utf-8")
    return path


def official(data: Path, predictions: dict, na_probs: dict | None, threshold: float | None, tmp: Path) -> dict:
    (tmp / "pred.json").write_text(json.dumps(predictions))
    args = [sys.executable, str(OFFICIAL), str(data), str(tmp / "pred.json")]
    if na_probs is not None:
        (tmp / "na.json").write_text(json.dumps(na_probs))
        args += ["--na-prob-file", str(tmp / "na.json")]
    if threshold is not None:
        args += ["--na-prob-thresh", str(threshold)]
    return json.loads(subprocess.run(args, capture_output=True, text=True, check=True).stdout)


GOLDS = {qid: golds for qid, _, golds in QUESTIONS}


@pytest.mark.parametrize("na_probs, threshold", [
    (None, None), (NULL_ODDS, None), (NULL_ODDS, 0.0), (NULL_ODDS, 0.5), (NULL_ODDS, -5.0), (NULL_ODDS, 10.0),
    ({k: 0.0 for k in NULL_ODDS}, None),  # all tied
])
def test_metrics_equal_the_official_v2_script(tmp_path: Path, na_probs: dict | None, threshold: float | None) -> None:
    data = write_v2(tmp_path / "dev.json")
    expected = official(data, PREDICTIONS, na_probs, threshold, tmp_path)
    ours = compute_metrics_v2(PREDICTIONS, GOLDS, na_probs, 1.0 if threshold is None else threshold).to_dict()
    assert list(ours) == list(expected) and ours == expected  # same keys, order and values
    assert score_files(str(data), str(tmp_path / "pred.json"), str(tmp_path / "na.json") if na_probs else None,
                       1.0 if threshold is None else threshold) == expected


def test_answerable_only_v2_data_and_one_kind_slices(tmp_path: Path) -> None:
    data = write_v2(tmp_path / "dev.json")
    only_no = {k: v for k, v in PREDICTIONS.items() if k.startswith("n")}
    golds = {k: GOLDS[k] for k in only_no}
    # the official script reads every question of the file; drop the answerable ones from a copy of it
    raw = json.loads(data.read_text())
    raw["data"][0]["paragraphs"][0]["qas"] = [q for q in raw["data"][0]["paragraphs"][0]["qas"] if q["id"] in golds]
    data.write_text(json.dumps(raw))
    expected = official(data, only_no, {k: NULL_ODDS[k] for k in only_no}, None, tmp_path)
    assert "HasAns_exact" not in expected
    assert compute_metrics_v2(only_no, golds, {k: NULL_ODDS[k] for k in only_no}).to_dict() == expected


def test_score_command_prints_the_official_v2_output(tmp_path: Path) -> None:
    data = write_v2(tmp_path / "dev.json")
    expected = official(data, PREDICTIONS, NULL_ODDS, None, tmp_path)
    done = subprocess.run([sys.executable, "-m", "qa_core.score", str(data), str(tmp_path / "pred.json"),
                           "--na-prob-file", str(tmp_path / "na.json")], capture_output=True, text=True, check=True,
                          cwd=ROOT)
    assert json.loads(done.stdout) == expected
    (tmp_path / "short.json").write_text(json.dumps({"a1": "noon"}))
    done = subprocess.run([sys.executable, "-m", "qa_core.score", str(data), str(tmp_path / "short.json")],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 2 and "7 questions have no prediction" in done.stderr


def test_hub_layout_with_empty_answer_lists_is_unanswerable(tmp_path: Path) -> None:
    rows = [{"id": "h1", "question": "Who rows?", "context": CONTEXT,
             "answers": {"text": ["Odo Brant"], "answer_start": [CONTEXT.find("Odo Brant")]}},
            {"id": "h2", "question": "Who built it?", "context": CONTEXT, "answers": {"text": [], "answer_start": []}}]
    path = tmp_path / "flat.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    result = load_examples(str(path))
    assert result.examples[1].answers == () and result.report.unanswerable == 1


# --- abstaining on the null score -----------------------------------------------------------------------------

OFFSETS = (None, None, None, (0, 3), (4, 9), (10, 12), (13, 20), None)  # [CLS] q [SEP] The ferry to Kessick [SEP]
EXAMPLE = Example("e", "q", CONTEXT, ())


def window(cls: float, best: float, index: int = 6) -> tuple[Feature, np.ndarray, np.ndarray]:
    start, end = np.zeros(len(OFFSETS), dtype=np.float32), np.zeros(len(OFFSETS), dtype=np.float32)
    start[0] = end[0] = cls / 2
    start[index] = end[index] = best / 2
    return Feature(0, "e", (0,) * len(OFFSETS), (0,) * len(OFFSETS), OFFSETS), start, end


def test_abstains_when_the_null_score_beats_the_best_span_by_more_than_the_threshold() -> None:
    windows = [window(cls=6.0, best=4.0)]
    answered = predict_example(EXAMPLE, windows, SpanSearch(null_threshold=2.5))
    assert answered.text == "Kessick" and answered.null_odds == pytest.approx(2.0) and not answered.abstained
    abstained = predict_example(EXAMPLE, windows, SpanSearch(null_threshold=1.5))
    assert abstained.text == "" and abstained.span is None and abstained.abstained
    assert abstained.alternatives[0].text == "Kessick"  # the best span stays visible
    assert abstained.score == pytest.approx(6.0) and abstained.null_score == pytest.approx(6.0)
    assert "No answer in this text" in answer_note(abstained) and "Kessick" in answer_note(abstained)
    v1 = predict_example(EXAMPLE, windows)  # without SQuAD 2.0 the span always wins
    assert v1.text == "Kessick" and v1.null_score is None and v1.null_odds is None


def test_null_score_is_the_lowest_over_the_windows() -> None:
    prediction = predict_example(EXAMPLE, [window(cls=9.0, best=1.0), window(cls=3.0, best=2.0)],
                                 SpanSearch(null_threshold=0.0))
    assert prediction.null_score == pytest.approx(3.0) and prediction.null_odds == pytest.approx(1.0)
    assert prediction.abstained


def test_config_maps_to_the_span_search() -> None:
    config = QAConfig(version_2_with_negative=True, null_score_diff_threshold=-1.5, whole_word_spans=False)
    assert SpanSearch.from_config(config, top_k=30) == SpanSearch(30, 30, False, -1.5)
    assert SpanSearch.from_config(QAConfig()).null_threshold is None


# --- records, re-scoring and slices ---------------------------------------------------------------------------

def predictions_from_odds() -> dict[str, Prediction]:
    """Predictions whose best span is the PREDICTIONS text (or a wrong one) with NULL_ODDS, cut at threshold 0."""
    out = {}
    for qid, _, _ in QUESTIONS:
        text = PREDICTIONS[qid] or "firth"
        start = CONTEXT.find(text)
        spans = (Span(start, start + len(text), text, 1.0, 1.0),)
        null = 1.0 + NULL_ODDS[qid]
        out[qid] = (Prediction(qid, "", None, null, spans, null) if NULL_ODDS[qid] > 0 else
                    Prediction(qid, text, (start, start + len(text)), 1.0, spans, null))
    return out


def examples() -> list[Example]:
    return [Example(qid, q, CONTEXT, tuple(Answer(g, CONTEXT.find(g)) for g in golds)) for qid, q, golds in QUESTIONS]


@pytest.mark.parametrize("threshold", [-5.0, -1.0, 0.0, 0.5, 1.7, 10.0])
def test_rescoring_records_equals_the_official_figures_at_that_threshold(threshold: float) -> None:
    predictions = predictions_from_odds()
    records = rescore(build_records(examples(), predictions), threshold)
    best = {k: p.alternatives[0].text for k, p in predictions.items()}
    expected = compute_metrics_v2(best, GOLDS, NULL_ODDS, threshold)
    assert sum(r.exact_match for r in records) / len(records) == pytest.approx(expected.exact)
    assert sum(r.f1 for r in records) / len(records) == pytest.approx(expected.f1)
    slices = group_scores(records, answerable_slice)
    assert slices["HasAns"] == pytest.approx(expected.has_ans[2:] + expected.has_ans[:2])
    assert slices["NoAns"] == pytest.approx(expected.no_ans[2:] + expected.no_ans[:2])


def test_outcome_filters_find_wrong_answers_and_wrong_abstentions() -> None:
    records = rescore(build_records(examples(), predictions_from_odds()), 0.0)
    answered = filter_records(records, kind=V2_ERRORS[1])
    abstained = filter_records(records, kind=V2_ERRORS[2])
    assert {r.example_id for r in answered} == {"n1"}  # n3's best span 'the' has odds 1.5 > 0: abstained
    assert {r.example_id for r in abstained} == {"a2", "a3", "a5"}
    with pytest.raises(ValueError, match="kind"):
        filter_records(records, kind="nonsense")


def test_rescoring_many_records_at_once_equals_rescoring_each() -> None:
    # Its speed for the threshold slider is a benchmark's business, not a timed test's (flaky on a busy machine).
    records = build_records(examples(), predictions_from_odds()) * 125
    for threshold in map(float, np.linspace(-5, 5, 10)):
        assert rescore(records, threshold) == [r for record in records for r in rescore([record], threshold)]


def test_records_round_trip_and_old_record_files_still_read(tmp_path: Path) -> None:
    records = build_records(examples(), predictions_from_odds())
    write_records(tmp_path / "r.jsonl", records)
    assert read_records(tmp_path / "r.jsonl") == records
    old = {"example_id": "q", "question": "Who?", "context": "c", "gold_answers": ["c"], "gold_spans": [[0, 1]],
           "prediction": "c", "span": [0, 1], "score": 1.5, "exact_match": 100.0, "f1": 100.0,
           "alternatives": [["c", 1.0]]}  # written before SQuAD 2.0 support
    (tmp_path / "old.jsonl").write_text(json.dumps(old) + "\n")
    (record,) = read_records(tmp_path / "old.jsonl")
    assert record.null_odds is None and record.answerable and rescore([record], 0.0) == [record]


def test_best_threshold_is_searched_over_the_best_spans() -> None:
    predictions = predictions_from_odds()
    metrics = squad_v2_metrics(examples(), predictions, 0.0)
    best = {k: p.alternatives[0].text for k, p in predictions.items()}
    searched = compute_metrics_v2(best, GOLDS, NULL_ODDS)
    at_zero = compute_metrics_v2({k: p.text for k, p in predictions.items()}, GOLDS, NULL_ODDS, 0.0)
    assert metrics.squad_v2.best_f1 == searched.best_f1 and metrics.squad_v2.exact == at_zero.exact
    assert metrics.to_dict()["exact_match"] == at_zero.exact


# --- end to end: evaluate a tiny model on v2 data, then answer with the run's threshold -----------------------

def test_evaluate_writes_official_v2_files_and_answering_uses_the_best_threshold(tiny_model_dir: Path,
                                                                                 tmp_path: Path) -> None:
    data = write_v2(tmp_path / "dev.json")
    out = tmp_path / "eval"
    config = QAConfig(model_name_or_path=str(tiny_model_dir), validation_file=str(data), output_dir=str(out),
                      version_2_with_negative=True, null_score_diff_threshold=0.25)
    result = run_evaluation(config, device="cpu")
    metrics = json.loads((out / METRICS_FILE).read_text())
    assert metrics["total"] == len(QUESTIONS) and metrics["NoAns_total"] == 3 and "best_f1_thresh" in metrics
    predictions = json.loads((out / PREDICTIONS_FILE).read_text())
    odds = json.loads((out / NULL_ODDS_FILE).read_text())
    assert set(predictions) == set(odds) == set(GOLDS)
    assert all((predictions[k] == "") == (odds[k] > 0.25) for k in GOLDS)
    at_threshold = official(data, predictions, odds, 0.25, tmp_path)
    searched = official(data, json.loads((out / BEST_SPANS_FILE).read_text()), odds, 0.25, tmp_path)
    assert {k: metrics[k] for k in at_threshold if not k.startswith("best")} == {
        k: v for k, v in at_threshold.items() if not k.startswith("best")}
    assert {k: metrics[k] for k in searched if k.startswith("best")} == {
        k: v for k, v in searched.items() if k.startswith("best")}
    assert len(result.records) == len(QUESTIONS) and all(r.null_odds is not None for r in result.records)

    # the evaluated model folder answers with the threshold its evaluation found
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        if (tiny_model_dir / name).exists():
            (out / name).write_bytes((tiny_model_dir / name).read_bytes())
    answering = config_for_model(str(out))
    assert answering.version_2_with_negative and answering.null_score_diff_threshold == metrics["best_f1_thresh"]
    assert config_for_model(str(tiny_model_dir)) == QAConfig()


def test_answer_question_abstains_with_a_v2_config(tiny_loaded) -> None:
    always = QAConfig(version_2_with_negative=True, null_score_diff_threshold=-1e9)
    result = answer_question(tiny_loaded, "Who rows the ferry?", CONTEXT, always)
    assert result.prediction.text == "" and result.prediction.alternatives  # best spans still listed
    never = answer_question(tiny_loaded, "Who rows the ferry?", CONTEXT, always.replace(null_score_diff_threshold=1e9))
    assert never.prediction.text == never.prediction.alternatives[0].text


def test_cli_predict_answers_with_the_runs_threshold(tiny_model_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    for item in tiny_model_dir.iterdir():
        (run / item.name).write_bytes(item.read_bytes())
    (run / METRICS_FILE).write_text(json.dumps({"exact": 50.0, "best_f1_thresh": -1e9}))  # abstains everywhere
    ask = [sys.executable, str(ROOT / "train.py"), "predict", "--model_name_or_path", str(run),
           "--question", "Who rows the ferry?", "--context", CONTEXT]
    abstained = json.loads(subprocess.run(ask, capture_output=True, text=True, check=True, cwd=ROOT).stdout)
    assert abstained["answer"] == "" and abstained["null_odds"] > -1e9 and abstained["alternatives"]
    answered = json.loads(subprocess.run(ask + ["--no-version_2_with_negative"], capture_output=True, text=True,
                                         check=True, cwd=ROOT).stdout)
    assert answered["answer"] == answered["alternatives"][0]["text"] and "null_score" not in answered


def test_records_of_a_context_without_any_span_are_strict_json(tmp_path: Path) -> None:
    """Infinite null odds and scores (nothing to weigh the null score against) are written as the largest floats,
    as eval_null_odds.json writes them, so strict JSON readers take the records too; abstaining is unchanged."""
    import dataclasses
    import math
    import sys

    record = dataclasses.replace(build_records(examples(), predictions_from_odds())[0], score=-math.inf,
                                 null_odds=math.inf)
    write_records(tmp_path / "r.jsonl", [record])
    line = (tmp_path / "r.jsonl").read_text().splitlines()[0]
    raw = json.loads(line, parse_constant=lambda constant: pytest.fail(f"not strict JSON: {constant}"))
    assert raw["score"] == -sys.float_info.max and raw["null_odds"] == sys.float_info.max
    (read,) = read_records(tmp_path / "r.jsonl")
    for threshold in (0.0, 1e9):
        assert [(r.prediction, r.exact_match, r.f1) for r in rescore([read], threshold)] == \
            [(r.prediction, r.exact_match, r.f1) for r in rescore([record], threshold)]


def test_unanswerable_questions_left_out_of_a_v1_evaluation_are_warned_about(caplog) -> None:
    """Evaluating SQuAD 2.0 data without --version_2_with_negative scores only its answerable questions: say so."""
    from qa_core.evaluation import check_scorable

    examples = [Example("a", "Who?", "Mara ran.", (Answer("Mara", 0),)), Example("b", "Why?", "Mara ran.", ())]
    with caplog.at_level("WARNING"):
        check_scorable(examples, QAConfig(), "dev-v2.json")
    assert "dev-v2.json: 1 of its 2 questions have no answer; a SQuAD v1.1 evaluation leaves them out of the " \
           "scores (--version_2_with_negative scores them)" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        check_scorable(examples, QAConfig(version_2_with_negative=True), "dev-v2.json")
        check_scorable(examples[:1], QAConfig(), "dev-v1.json")
    assert not caplog.text
