"""Training progress events: the run's history.jsonl and TensorBoard scalars."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa_core.progress import pace_of, read_history
from qa_core.run_files import HISTORY_FILE
from qa_core.training import train
from tests.overfit_data import write_tiny_squad
from tests.tiny_runs import tiny_config


def test_step_history_and_tensorboard_are_written_as_training_runs(tiny_model_dir: Path, tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = tiny_config(tiny_model_dir, write_tiny_squad(tmp_path / "d.json"), tmp_path / "run",
                         num_train_epochs=2, logging_steps=1, report_to="tensorboard")
    train(config)
    events = read_history(tmp_path / "run" / HISTORY_FILE)
    assert read_history(str(tmp_path / "run")) == events  # the run folder too, as a student may pass it
    steps = [e for e in events if e.kind == "step"]
    assert [e.step for e in steps] == list(range(1, 7))
    assert all(e.loss > 0 and e.learning_rate >= 0 and e.grad_norm > 0 and e.windows_per_s > 0 for e in steps)
    assert steps[0].learning_rate > steps[-1].learning_rate == 0.0  # linear decay to 0
    assert [(e.epoch, e.metrics["f1"] >= 0) for e in events if e.kind == "eval"] == [(1.0, True), (2.0, True)]
    board = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    board.Reload()
    assert {"train/loss", "train/learning_rate", "train/grad_norm", "eval/f1"} <= set(board.Tags()["scalars"])
    assert [s.step for s in board.Scalars("train/loss")] == list(range(1, 7))


def test_a_refused_resume_opens_no_tensorboard_writer(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Found in review: the writer (a thread and an open file) was opened before the resume's last checks, and only
    a run's end event closes it, so every refused resume left one open in the web app's process."""
    from qa_core.run_files import RunRefused

    config = tiny_config(tiny_model_dir, write_tiny_squad(tmp_path / "d.json"), tmp_path / "run", max_steps=3,
                         validation_file=None, report_to="tensorboard")
    train(config)
    board = tmp_path / "run" / "tensorboard"
    files = sorted(board.iterdir())
    with pytest.raises(RunRefused, match="has done 3 steps, more than the 2"):
        train(config.replace(resume=True, max_steps=2))
    assert sorted(board.iterdir()) == files


def test_the_time_left_after_a_resume_goes_by_the_whole_runs_pace() -> None:
    """Found by trying the app: one step after a resume the estimate jumped from 2m51s to 8m44s, set by that
    step alone (slow while kernels warm up)."""
    # 50 of 100 steps at 1 s each before the resume; the first step after it took 5 s
    assert pace_of(16, 5.0, 55.0, 51, 100)["eta_s"] == pytest.approx(55 / 51 * 49)
    assert pace_of(32, 2.0, 2.0, 2, 10) == {"windows_per_s": 16.0, "eta_s": 8.0}  # a fresh run: its own pace


def test_read_history_takes_a_path_as_a_string(tmp_path: Path) -> None:
    """As the README names it, qa_core.progress.read_history("runs/x/history.jsonl"): a str raised AttributeError."""
    (tmp_path / HISTORY_FILE).write_text('{"kind": "step", "step": 1, "epoch": 0.5, "loss": 2.5}\n', encoding="utf-8")
    assert [(e.kind, e.step, e.loss) for e in read_history(str(tmp_path / HISTORY_FILE))] == [("step", 1, 2.5)]
    assert read_history(str(tmp_path / "missing.jsonl")) == []
