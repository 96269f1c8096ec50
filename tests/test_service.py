"""The web app's operations as plain calls: a question to a run named as callers name it, and a folder without a
model refused with why."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from qa_core.checkpoints import write_run_info
from qa_core.config import QAConfig
from qa_core.hosting import Settings, answer_limits
from qa_core.run_files import RECORDS_FILE, RunInfo
from qa_core.service import QAService, check_model_folder

CONTEXT = "A beekeeper named Tomas keeps four hives behind the old mill."


def test_a_run_named_as_callers_name_it_answers_in_json(tiny_model_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "runs" / "20250101-000000-tiny"
    shutil.copytree(tiny_model_dir, run / "model")
    write_run_info(run, RunInfo("finished", QAConfig(output_dir=str(run)).to_dict()))
    service = QAService(Settings(tmp_path / "runs", str(tiny_model_dir), training_enabled=False,
                                 fast_inference=False))
    answered = asyncio.run(service.answer_json(run.name, "Who keeps the hives?", CONTEXT))
    assert answered["model"] == run.name and answered["answer"] and answered["answer"] in CONTEXT
    by_default = asyncio.run(service.answer_json("", "Who keeps the hives?", CONTEXT))
    assert by_default["model"] == str(tiny_model_dir) and by_default["answer"] in CONTEXT


def test_a_folder_without_a_model_is_refused_with_why(tiny_model_dir: Path, tmp_path: Path) -> None:
    evaluation = tmp_path / "evaluation"
    evaluation.mkdir()
    (evaluation / RECORDS_FILE).write_text("", encoding="utf-8")
    with pytest.raises(ValueError, match="evaluation is an evaluation folder"):
        check_model_folder(str(evaluation))
    stopped = tmp_path / "stopped"
    write_run_info(stopped, RunInfo("cancelled", QAConfig(output_dir=str(stopped)).to_dict()))
    with pytest.raises(ValueError, match="run stopped is cancelled and has no final model; resume it in the Train"):
        check_model_folder(str(stopped))
    with pytest.raises(ValueError, match="run stopped is cancelled and has no final model$"):
        check_model_folder(str(stopped), can_resume=False)  # a server that does not train offers no Resume
    assert check_model_folder(str(tiny_model_dir)) == str(tiny_model_dir)


def test_a_public_server_searches_spans_within_its_caps_whatever_a_run_says(tiny_model_dir: Path,
                                                                            tmp_path: Path) -> None:
    """A run put in the runs folder by hand, or trained before the caps, answers with its own span search settings:
    n_best_size 512 made every answer's search many times the work a public server allows a job."""
    run = tmp_path / "runs" / "20250101-000000-wide"
    shutil.copytree(tiny_model_dir, run / "model")
    config = QAConfig(output_dir=str(run), n_best_size=512, max_answer_length=512)
    write_run_info(run, RunInfo("finished", config.to_dict()))
    caps = Settings().train_limits
    for public, expected in ((False, (512, 512)), (True, (caps.n_best_size, caps.max_answer_length))):
        service = QAService(Settings(tmp_path / "runs", run.name, training_enabled=False, fast_inference=False,
                                     public=public))
        result, _, _ = asyncio.run(service.answer_in_turn(run.name, "Who keeps the hives?", CONTEXT))
        assert result.prediction.text in CONTEXT
        _, used = asyncio.run(service.models.get_in_turn(service.check_question(run.name, "q", "c")[0]))
        assert (used.n_best_size, used.max_answer_length) == expected
    assert answer_limits(config, Settings(public=True)).learning_rate == config.learning_rate  # the rest kept
