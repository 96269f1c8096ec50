"""Checkpoints: a resume trains and evaluates on the questions the run started with (its data fingerprints)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qa_core.training import train
from tests.conftest import write_squad
from tests.overfit_data import write_tiny_squad
from tests.tiny_runs import tiny_config


def test_a_resume_on_other_training_data_is_refused_naming_the_file(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = write_tiny_squad(tmp_path / "d.json")
    config = tiny_config(tiny_model_dir, data, tmp_path / "run", max_steps=1, validation_file=None)
    train(config)
    other = write_squad(tmp_path / "other.json", [{"context": "Mara kept bees.", "qas": [
        {"id": "o1", "question": "Who kept bees?", "answers": [{"text": "Mara", "answer_start": 0}]}]}])
    with pytest.raises(ValueError, match=rf"--train_file {other}: its questions differ from those the run in "
                                         rf".*run trained on"):
        train(config.replace(resume=True, max_steps=2, train_file=str(other)))


def test_resume_refuses_validation_data_edited_since_the_run_began(tiny_model_dir: Path, tmp_path: Path) -> None:
    """The same --validation_file name with other questions would mix two dev sets in one learning curve."""
    data, dev = write_tiny_squad(tmp_path / "d.json"), write_tiny_squad(tmp_path / "dev.json")
    config = tiny_config(tiny_model_dir, data, tmp_path / "run", validation_file=str(dev), max_steps=6, save_steps=2)
    assert train(config, should_stop=lambda: True).status == "cancelled"
    squad = json.loads(dev.read_text())
    squad["data"][0]["paragraphs"][0]["qas"].pop()
    dev.write_text(json.dumps(squad))
    with pytest.raises(ValueError, match=r"--validation_file .*dev\.json.*differ"):
        train(config.replace(resume=True))
