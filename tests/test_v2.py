"""SQuAD 2.0: the official figures, abstaining on the null score, a run's own threshold. Its records, scorer and
evaluation are tested with their modules (test_error_analysis.py, test_score.py, test_evaluation.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qa_core.config import QAConfig
from qa_core.data import Example, load_examples
from qa_core.evaluation import METRICS_FILE
from qa_core.features import Feature
from qa_core.metrics import compute_metrics_v2
from qa_core.postprocess import SpanSearch, predict_example
from qa_core.score import score_files
from qa_core.answer_views import answer_note
from tests.v2_data import CONTEXT, GOLDS, NULL_ODDS, PREDICTIONS, official, write_v2


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
    assert "above the threshold" in answer_note(abstained) and "Kessick" in answer_note(abstained)
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


# --- end to end: the CLI answers with a run's own threshold ---------------------------------------------------

def test_cli_predict_answers_with_the_runs_threshold(tiny_model_dir: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    from qa_core import cli

    run = tmp_path / "run"
    run.mkdir()
    for item in tiny_model_dir.iterdir():
        (run / item.name).write_bytes(item.read_bytes())
    (run / METRICS_FILE).write_text(json.dumps({"exact": 50.0, "best_f1_thresh": -1e9}))  # abstains everywhere
    ask = ["predict", "--model_name_or_path", str(run), "--question", "Who rows the ferry?", "--context", CONTEXT]
    assert cli.main(ask) == 0
    abstained = json.loads(capsys.readouterr().out)
    assert abstained["answer"] == "" and abstained["null_odds"] > -1e9 and abstained["alternatives"]
    assert cli.main(ask + ["--no-version_2_with_negative"]) == 0
    answered = json.loads(capsys.readouterr().out)
    assert answered["answer"] == answered["alternatives"][0]["answer"] and answered["null_score"] is None


def test_answers_decide_over_is_impossible_as_in_the_official_script(tmp_path: Path) -> None:
    """Found by a tester: a question marked is_impossible that lists answers lost them (scored unanswerable), while
    evaluate-v2.0.py reads answerability from the answers alone; and one not marked, with none, is unanswerable."""
    data = write_v2(tmp_path / "dev.json")
    raw = json.loads(data.read_text())
    qas = raw["data"][0]["paragraphs"][0]["qas"]
    qas[0]["is_impossible"] = True  # a1 keeps its answers
    qas[5]["is_impossible"] = False  # n1 has none
    data.write_text(json.dumps(raw))
    expected = official(data, PREDICTIONS, NULL_ODDS, 0.5, tmp_path)
    assert score_files(str(data), str(tmp_path / "pred.json"), str(tmp_path / "na.json"), 0.5) == expected
    assert load_examples(str(data)).examples[0].answers  # what training and evaluation read too
