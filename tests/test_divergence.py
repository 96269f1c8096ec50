"""Divergence: a run whose loss or weights stop being finite fails with one line of advice and keeps no NaN model."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from qa_core.run_files import find_checkpoint, read_run_info
from qa_core.run_picker import model_choices
from qa_core.training import TrainingError, train
from tests.overfit_data import write_tiny_squad
from tests.tiny_runs import cli, tiny_config


def test_a_diverging_run_fails_clearly_keeps_its_checkpoint_and_is_not_offered(tiny_model_dir: Path,
                                                                              tmp_path: Path) -> None:
    data = write_tiny_squad(tmp_path / "d.json")
    run = tmp_path / "runs" / "nan"
    done = subprocess.run(cli("train", "--model_name_or_path", str(tiny_model_dir), "--train_file", str(data),
                              "--validation_file", str(data), "--output_dir", str(run), "--learning_rate", "1e6",
                              "--max_steps", "20", "--max_seq_length", "64", "--doc_stride", "16",
                              "--max_query_length", "16", "--per_device_train_batch_size", "2", "--save_steps", "2"),
                          capture_output=True, text=True)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "training diverged at step" in done.stderr and "--learning_rate" in done.stderr
    assert "Start a new run (another --output_dir)" in done.stderr  # --resume keeps the run's learning rate
    info = read_run_info(run)
    assert info.status == "failed" and "diverged" in info.error and info.step < 20
    assert not (run / "model").exists()  # no NaN model
    state = json.loads(json.dumps(info.history))  # the last good checkpoint is kept, and finite
    checkpoint = find_checkpoint(run)
    assert checkpoint is not None and state == read_run_info(run).history
    assert all(torch.isfinite(t).all() for t in load_file(checkpoint / "model.safetensors").values())
    assert all(path != str(run) for _, path in model_choices(tmp_path / "runs"))


def test_weights_ruined_by_the_last_step_are_not_saved_as_a_finished_run(tiny_model_dir: Path,
                                                                         tmp_path: Path) -> None:
    """The gradient norm is checked before each update; an update that overflows the weights shows only in them."""
    data = write_tiny_squad(tmp_path / "d.json")
    config = tiny_config(tiny_model_dir, data, tmp_path / "run", max_steps=1, learning_rate=1e38, bf16=False)
    with pytest.raises(TrainingError, match="weights are no longer finite after step 1"):
        train(config)
    info = read_run_info(tmp_path / "run")
    assert info.status == "failed" and "--learning_rate" in info.error
    assert not (tmp_path / "run" / "model").exists() and find_checkpoint(tmp_path / "run") is None
