"""The official SQuAD v1.1 metric: normalization, token F1, max over gold answers, and the scoring command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from qa_core.metrics import SquadV2Metrics, compute_exact, compute_f1, compute_metrics, normalize_answer
from tests.conftest import write_squad


@pytest.mark.parametrize("raw, normalized", [
    ("The Eiffel Tower!", "eiffel tower"),
    ("  an   apple,  a pear ", "apple pear"),
    ("Theatre of the Absurd", "theatre of absurd"),  # 'the' inside a word stays
    ("U.S.A.", "usa"),
    ("Zürich's café", "zürichs café"),
    ("", ""),
])
def test_normalize_answer(raw: str, normalized: str) -> None:
    assert normalize_answer(raw) == normalized


def test_exact_match_ignores_case_articles_and_punctuation() -> None:
    assert compute_exact("the Keeper.", "Keeper") == 1.0
    assert compute_exact("keeper's", "keeper") == 0.0


@pytest.mark.parametrize("prediction, gold, f1", [
    ("stone cottage", "a stone cottage", 1.0),
    ("the old stone cottage", "stone cottage", 0.8),  # p = 2/3, r = 1
    ("cottage", "stone cottage", 2 / 3),
    ("harbour", "stone cottage", 0.0),
    ("", "stone cottage", 0.0),
    ("the", "a", 0.0),  # both normalize to nothing: no tokens, F1 0 as in v1.1
    ("red red", "red", 2 / 3),  # counts, not sets
])
def test_token_f1(prediction: str, gold: str, f1: float) -> None:
    assert compute_f1(prediction, gold) == pytest.approx(f1)


def test_metrics_take_the_best_gold_and_count_missing_as_zero() -> None:
    golds = {"a": ["the keeper", "keeper of the lamp"], "b": ["stone cottage"], "c": ["evening"]}
    metrics = compute_metrics({"a": "keeper of the lamp", "b": "cottage", "x": "ignored"}, golds)
    assert metrics.exact_match == pytest.approx(100 / 3)
    assert metrics.f1 == pytest.approx(100 * (1 + 2 / 3) / 3)
    assert metrics.count == 3


def test_score_command_has_the_official_interface(tmp_path: Path) -> None:
    context = "The lamp was lit by the keeper."
    data = write_squad(tmp_path / "dev.json", [{"context": context, "qas": [
        {"id": "q1", "question": "Who lit it?", "answers": [{"text": "the keeper", "answer_start": 20}]},
        {"id": "q2", "question": "What was lit?", "answers": [{"text": "The lamp", "answer_start": 0}]}]}])
    predictions = tmp_path / "pred.json"
    predictions.write_text(json.dumps({"q1": "keeper"}))
    done = subprocess.run([sys.executable, "-m", "qa_core.score", str(data), str(predictions)],
                          capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == {"exact_match": 50.0, "f1": 50.0}
    assert "Unanswered question q2" in done.stderr


def test_score_command_names_a_bad_predictions_file(tmp_path: Path) -> None:
    data = write_squad(tmp_path / "dev.json", [{"context": "abc", "qas": [
        {"id": "q1", "question": "?", "answers": [{"text": "abc", "answer_start": 0}]}]}])
    (tmp_path / "p.json").write_text("[1, 2")
    done = subprocess.run([sys.executable, "-m", "qa_core.score", str(data), str(tmp_path / "p.json")],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "p.json" in done.stderr


def _one_question_data(tmp_path: Path) -> Path:
    return write_squad(tmp_path / "dev.json", [{"context": "abc", "qas": [
        {"id": "q1", "question": "?", "answers": [{"text": "abc", "answer_start": 0}]}]}])


@pytest.mark.parametrize("value", [None, 3, ["abc"], True])
def test_score_refuses_a_prediction_that_is_not_text(tmp_path: Path, value: object) -> None:
    from qa_core.data import DataError
    from qa_core.score import score_files

    (tmp_path / "p.json").write_text(json.dumps({"q1": value}))
    with pytest.raises(DataError, match=r"p\.json: question 'q1' has .*, expected answer text"):
        score_files(str(_one_question_data(tmp_path)), str(tmp_path / "p.json"))


def test_score_names_the_null_odds_file_when_it_lacks_a_question(tmp_path: Path) -> None:
    from qa_core.data import DataError
    from qa_core.score import score_files

    (tmp_path / "p.json").write_text(json.dumps({"q1": "abc"}))
    (tmp_path / "odds.json").write_text("{}")
    with pytest.raises(DataError, match=r"odds\.json: 1 questions have no null odds \(first: 'q1'\)"):
        score_files(str(_one_question_data(tmp_path)), str(tmp_path / "p.json"), str(tmp_path / "odds.json"))


def test_squad2_metrics_come_back_from_their_dict() -> None:
    """eval_metrics.json holds to_dict's keys: from_dict gives the same figures back, a slice the script left
    out stays None, and a missing or non-numeric figure is named."""
    full = SquadV2Metrics(55.0, 56.5, 40, (40.0, 43.4, 17), (66.1, 66.1, 23), (60.0, -0.11), (61.2, -0.11))
    assert SquadV2Metrics.from_dict(json.loads(json.dumps(full.to_dict()))) == full
    answerable_only = SquadV2Metrics(50.0, 60.0, 4, has_ans=(50.0, 60.0, 4))
    assert SquadV2Metrics.from_dict(answerable_only.to_dict()) == answerable_only
    with pytest.raises(ValueError, match="total"):
        SquadV2Metrics.from_dict({"exact": 50.0, "f1": 50.0})
    with pytest.raises(ValueError, match="HasAns_f1"):
        SquadV2Metrics.from_dict({**full.to_dict(), "HasAns_f1": "high"})
