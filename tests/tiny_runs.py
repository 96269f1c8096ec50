"""Training runs of the tiny BERT for the tests: its settings on the overfit data, train.py as a command, weights
compared bit for bit, and a run folder faked as the checks before training read it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from qa_core.config import QAConfig

ROOT = Path(__file__).resolve().parent.parent


def tiny_config(model_dir: Path, data: Path, output_dir: Path, **overrides) -> QAConfig:
    settings = dict(model_name_or_path=str(model_dir), train_file=str(data), validation_file=str(data),
                    output_dir=str(output_dir), max_seq_length=64, doc_stride=16, max_query_length=16,
                    learning_rate=1e-2, warmup_ratio=0.0, per_device_train_batch_size=2, num_train_epochs=15,
                    logging_steps=5, save_steps=100, seed=7)
    return QAConfig(**{**settings, **overrides})


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(run / "model" / "model.safetensors")


def assert_same_weights(run: Path, reference: Path) -> None:
    mine, theirs = weights(run), weights(reference)
    assert mine.keys() == theirs.keys()
    different = [name for name in mine if not torch.equal(mine[name], theirs[name])]
    assert not different, f"weights differ from the uninterrupted run: {different[:5]}"


def cli(*args: str) -> list[str]:
    return [sys.executable, str(ROOT / "train.py"), *args]


def fake_run(folder: Path, status: str = "cancelled", checkpoint: bool = True, **config) -> Path:
    """A run folder as the checks before training read it: run.json, a checkpoint's state file, a final model."""
    (folder / "model").mkdir(parents=True)
    (folder / "model" / "config.json").write_text("{}")
    stored = {**QAConfig(output_dir=str(folder)).to_dict(), "bf16": False, **config}
    (folder / "run.json").write_text(json.dumps({"status": status, "config": stored}))
    if checkpoint:
        (folder / "checkpoint").mkdir()
        (folder / "checkpoint" / "trainer_state.pt").write_bytes(b"")
    return folder
