"""Divergence: a run whose loss or weights stop being finite fails with one line of advice and keeps no NaN model."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from qa_core.divergence import diverged_message, ruined_message
from qa_core.run_files import find_checkpoint, read_run_info
from qa_core.run_picker import model_choices
from qa_core.training import TrainingError, train
from tests.conftest import tiny_bert
from tests.overfit_data import write_tiny_squad
from tests.tiny_runs import cli, tiny_config


def test_a_diverging_run_fails_clearly_keeps_its_checkpoint_and_is_not_offered(overflowing_model_dir: Path,
                                                                              tmp_path: Path) -> None:
    """Two steps train, then the window holding the word the model overflows on makes the gradients NaN (a rate
    high enough to do it is refused as an option: tests/test_config.py)."""
    data = write_tiny_squad(tmp_path / "d.json")
    run = tmp_path / "runs" / "nan"
    done = subprocess.run(cli("train", "--model_name_or_path", str(overflowing_model_dir), "--train_file", str(data),
                              "--validation_file", str(data), "--output_dir", str(run), "--seed", "42",
                              "--max_steps", "20", "--max_seq_length", "64", "--doc_stride", "16",
                              "--max_query_length", "16", "--per_device_train_batch_size", "2", "--save_steps", "2",
                              "--no-bf16"),
                          capture_output=True, text=True)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "training diverged at step 3: loss nan" in done.stderr and "--learning_rate" in done.stderr
    assert "Start a new run (another --output_dir)" in done.stderr  # --resume keeps the run's learning rate
    assert "--no-bf16" not in done.stderr.split("training diverged")[-1]  # it trained in fp32 already
    info = read_run_info(run)
    assert info.status == "failed" and "diverged" in info.error and info.step == 2
    assert not (run / "model").exists()  # no NaN model
    state = json.loads(json.dumps(info.history))  # the last good checkpoint is kept, and finite
    checkpoint = find_checkpoint(run)
    assert checkpoint is not None and state == read_run_info(run).history
    assert all(torch.isfinite(t).all() for t in load_file(checkpoint / "model.safetensors").values())
    assert all(path != str(run) for _, path in model_choices(tmp_path / "runs"))


def test_weights_ruined_by_the_last_step_are_not_saved_as_a_finished_run(tokenizer, tmp_path: Path) -> None:
    """The gradient norm is checked before each update; weights that stop being finite with finite gradients show
    only in the weights. Here a position embedding past every window's length (64 of 512) is infinite: it is never
    gathered, so the loss and gradients stay finite, and AdamW leaves it infinite (its gradient is zero; the decay
    multiplies it by 1 - learning_rate * weight_decay, in [0, 1] at the options QAConfig takes)."""
    data = write_tiny_squad(tmp_path / "d.json")
    config = tiny_config(_model_with_an_infinite_unused_position(tokenizer, tmp_path / "model"), data,
                         tmp_path / "run", max_steps=1, bf16=False)
    with pytest.raises(TrainingError, match=r"weights are no longer finite after step 1 \(1 tensors, e\.g\. "
                                            r"bert\.embeddings\.position_embeddings\.weight\)"):
        train(config)
    info = read_run_info(tmp_path / "run")
    assert info.status == "failed" and "gradients were finite: check the model's weights" in info.error
    assert "--learning_rate (now 0.01) or --weight_decay (now 0.01)" in info.error  # no cause claimed alone
    assert not (tmp_path / "run" / "model").exists() and find_checkpoint(tmp_path / "run") is None


@pytest.mark.parametrize("weight_decay, cli_words, web_words", [
    (0.01, "lower --learning_rate (now 0.01) or --weight_decay (now 0.01)",
     "lower learning_rate (now 0.01) or weight_decay (now 0.01)"),
    (0.0, "lower --learning_rate (now 0.01)", "lower learning_rate (now 0.01)"),
])
def test_ruined_weights_advice_names_what_can_ruin_them_in_both_wordings(weight_decay, cli_words, web_words,
                                                                         tmp_path: Path) -> None:
    config = tiny_config(tmp_path, tmp_path / "d.json", tmp_path / "run", weight_decay=weight_decay)
    cli_text, web_text = ruined_message(config, 1, ["bert.embeddings.position_embeddings.weight"])
    assert "gradients were finite: check the model's weights" in cli_text and cli_words in cli_text
    assert "gradients were finite: check the model's weights" in web_text and web_words in web_text
    assert cli_text.endswith(cli_words) and web_text.endswith(web_words)  # weight_decay only where it is set
    assert "--" not in web_text and "another --output_dir" in cli_text


def _model_with_an_infinite_unused_position(tokenizer, folder: Path) -> Path:
    model = tiny_bert(len(tokenizer))
    with torch.no_grad():
        model.bert.embeddings.position_embeddings.weight[-1] = math.inf
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("bf16", [True, False])
def test_diverged_advice_offers_bf16_off_only_where_training_ran_in_bf16(bf16: bool, tmp_path: Path) -> None:
    """Found by a tester: a run trained in fp32 (--no-bf16) that diverged was told to try --no-bf16."""
    config = tiny_config(tmp_path, tmp_path / "d.json", tmp_path / "run", bf16=bf16)  # as train_setup resolves it
    cli_text, web_text = diverged_message(config, 3, math.nan, math.nan)
    assert ("--no-bf16" in cli_text) is bf16 and ("bf16 off" in web_text) is bf16
    assert "--learning_rate (now 0.01)" in cli_text and "learning_rate (now 0.01)" in web_text
    assert "--" not in web_text
