"""Fine-tuning end to end on the tiny BERT: overfitting, resume after a kill, cancellation, the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qa_core.checkpoints import find_checkpoint, read_run_info
from qa_core.config import QAConfig
from qa_core.progress import ProgressEvent
from qa_core.training import train
from tests.overfit_data import write_tiny_squad

ROOT = Path(__file__).resolve().parent.parent


def tiny_config(model_dir: Path, data: Path, output_dir: Path, **overrides) -> QAConfig:
    settings = dict(model_name_or_path=str(model_dir), train_file=str(data), validation_file=str(data),
                    output_dir=str(output_dir), max_seq_length=64, doc_stride=16, max_query_length=16,
                    learning_rate=1e-2, warmup_ratio=0.0, per_device_train_batch_size=2, num_train_epochs=15,
                    logging_steps=5, save_steps=100, seed=7)
    return QAConfig(**{**settings, **overrides})


def test_overfits_a_handful_of_examples(tiny_model_dir: Path, tmp_path: Path) -> None:
    events: list[ProgressEvent] = []
    result = train(tiny_config(tiny_model_dir, write_tiny_squad(tmp_path / "d.json"), tmp_path / "run"),
                   callback=events.append)
    assert result.status == "finished" and result.metrics["exact_match"] == 100.0
    run = tmp_path / "run"
    assert (run / "model.safetensors").exists() and (run / "tokenizer.json").exists()
    assert json.loads((run / "eval_predictions.json").read_text())["q3"] == "Mara"
    info = read_run_info(run)
    assert info.status == "finished" and info.metrics["f1"] == 100.0 and info.data_fingerprint["train"]
    assert len(info.history) == 15  # evaluated after each epoch
    kinds = {e.kind for e in events}
    assert {"start", "step", "eval", "checkpoint", "done"} <= kinds
    step = next(e for e in events if e.kind == "step")
    assert step.loss > 0 and step.learning_rate > 0 and step.windows_per_s > 0 and step.grad_norm > 0 and step.eta_s >= 0


def test_cancel_between_steps_then_resume(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = write_tiny_squad(tmp_path / "d.json")
    config = tiny_config(tiny_model_dir, data, tmp_path / "run", num_train_epochs=2, validation_file=None)
    asked: list[int] = []
    result = train(config, should_stop=lambda: asked.append(1) or len(asked) >= 2)  # asked once per step
    assert result.status == "cancelled" and result.step == 2
    assert read_run_info(tmp_path / "run").status == "cancelled"
    resumed = train(config.replace(resume=True))
    assert resumed.status == "finished" and resumed.step == 6


def test_refuses_to_overwrite_a_run(tiny_model_dir: Path, tmp_path: Path) -> None:
    config = tiny_config(tiny_model_dir, write_tiny_squad(tmp_path / "d.json"), tmp_path / "run", max_steps=1,
                         validation_file=None)
    train(config)
    with pytest.raises(ValueError, match="already holds"):
        train(config)
    with pytest.raises(ValueError, match="nothing to resume"):
        train(config.replace(output_dir=str(tmp_path / "empty"), resume=True))


def cli(*args: str) -> list[str]:
    return [sys.executable, str(ROOT / "train.py"), *args]


def test_killed_cli_run_resumes_and_matches_an_uninterrupted_run(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = write_tiny_squad(tmp_path / "d.json")
    common = ["--model_name_or_path", str(tiny_model_dir), "--train_file", str(data), "--validation_file", str(data),
              "--max_seq_length", "64", "--doc_stride", "16", "--max_query_length", "16", "--learning_rate", "1e-2",
              "--per_device_train_batch_size", "1", "--num_train_epochs", "8", "--save_steps", "3", "--seed", "3"]
    killed = subprocess.Popen(cli("train", *common, "--output_dir", str(tmp_path / "killed")),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while find_checkpoint(tmp_path / "killed") is None and time.time() < deadline:
        time.sleep(0.05)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    assert read_run_info(tmp_path / "killed").status == "running"  # died without a word
    resumed = subprocess.run(cli("train", *common, "--output_dir", str(tmp_path / "killed"), "--resume"),
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    straight = subprocess.run(cli("train", *common, "--output_dir", str(tmp_path / "straight")),
                              capture_output=True, text=True, check=True)
    resumed_out, straight_out = json.loads(resumed.stdout), json.loads(straight.stdout)
    assert resumed_out["status"] == "finished" and resumed_out["step"] == straight_out["step"] == 40
    assert resumed_out["f1"] == pytest.approx(straight_out["f1"])
    assert (tmp_path / "killed" / "eval_predictions.json").read_text() == \
        (tmp_path / "straight" / "eval_predictions.json").read_text()


def test_cli_evaluate_and_predict(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = write_tiny_squad(tmp_path / "d.json")
    done = subprocess.run(cli("evaluate", "--model_name_or_path", str(tiny_model_dir), "--validation_file", str(data),
                              "--output_dir", str(tmp_path / "eval")), capture_output=True, text=True, check=True)
    assert set(json.loads(done.stdout)) >= {"exact_match", "f1"}
    assert (tmp_path / "eval" / "eval_records.jsonl").exists()
    done = subprocess.run(cli("predict", "--model_name_or_path", str(tiny_model_dir), "--question", "Who kept bees?",
                              "--context", "Mara kept bees."), capture_output=True, text=True, check=True)
    answer = json.loads(done.stdout)
    assert answer["answer"] in "Mara kept bees." and len(answer["alternatives"]) == 5


def test_cli_reports_bad_data_clearly(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("nope")
    done = subprocess.run(cli("train", "--train_file", str(tmp_path / "bad.json"), "--output_dir", str(tmp_path / "r")),
                          capture_output=True, text=True)
    assert done.returncode == 2 and "bad.json" in done.stderr and "not valid JSON" in done.stderr
