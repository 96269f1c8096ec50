"""The official-style scorer: `python -m qa_core.score`'s interface and output, and the files it refuses."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import write_squad
from tests.v2_data import NULL_ODDS, PREDICTIONS, official, write_v2

ROOT = Path(__file__).parent.parent


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


@pytest.mark.parametrize("text, said", [("[" * 200_000 + "]" * 200_000, "file nests lists or objects too deeply"),
                                         ('{"q1": ' + "9" * 5000 + "}", "q1 is a number of 5,000 digits")])
def test_score_names_a_file_too_deep_or_with_too_long_a_number(tmp_path: Path, text: str, said: str) -> None:
    """As data files (test_data_sources.py): a RecursionError, or Python's 'Exceeds the limit (4300 digits)', escaped
    the scorer's handling of bad files."""
    from qa_core.data import DataError
    from qa_core.score import score_files

    (tmp_path / "p.json").write_text(text)
    with pytest.raises(DataError, match=rf"p\.json: {re.escape(said)}"):
        score_files(str(_one_question_data(tmp_path)), str(tmp_path / "p.json"))
    (tmp_path / "p.json").write_text('{"q1": "abc"}')
    (tmp_path / "odds.json").write_text(text)
    with pytest.raises(DataError, match=rf"odds\.json: {re.escape(said)}"):
        score_files(str(_one_question_data(tmp_path)), str(tmp_path / "p.json"), str(tmp_path / "odds.json"))


def test_score_names_the_null_odds_file_when_it_lacks_a_question(tmp_path: Path) -> None:
    from qa_core.data import DataError
    from qa_core.score import score_files

    (tmp_path / "p.json").write_text(json.dumps({"q1": "abc"}))
    (tmp_path / "odds.json").write_text("{}")
    with pytest.raises(DataError, match=r"odds\.json: 1 questions have no null odds \(first: 'q1'\)"):
        score_files(str(_one_question_data(tmp_path)), str(tmp_path / "p.json"), str(tmp_path / "odds.json"))


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
