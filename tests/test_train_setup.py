"""Setting up a training run: the steps it will take, and where a resumed run starts."""

from __future__ import annotations

from pathlib import Path

import torch

from qa_core.checkpoints import TrainState
from qa_core.distributed import DistContext
from qa_core.precision import resolve_bf16
from qa_core.run_files import find_checkpoint
from qa_core.train_setup import prepare
from qa_core.training import train
from tests.overfit_data import write_tiny_squad
from tests.tiny_runs import tiny_config


def test_a_fresh_run_starts_at_step_0_with_its_steps_counted(tiny_model_dir: Path, tmp_path: Path) -> None:
    """5 windows in batches of 2: 3 steps an epoch; max_steps, when given, wins over the epochs."""
    config = tiny_config(tiny_model_dir, write_tiny_squad(tmp_path / "d.json"), tmp_path / "run", num_train_epochs=2)
    setup = prepare(config, DistContext(), "cpu")
    assert (setup.steps_per_epoch, setup.total_steps) == (3, 6)
    assert setup.start == TrainState() and setup.resumed_from is None
    assert len(setup.train_features) == len(setup.eval_examples) == 5
    assert setup.config.bf16 is setup.bf16 is resolve_bf16(None, torch.device("cpu"))  # what runs, not "default"
    assert prepare(config.replace(max_steps=4), DistContext(), "cpu").total_steps == 4


def test_a_resumed_run_starts_where_its_checkpoint_left_off(tiny_model_dir: Path, tmp_path: Path) -> None:
    config = tiny_config(tiny_model_dir, write_tiny_squad(tmp_path / "d.json"), tmp_path / "run", num_train_epochs=2,
                         validation_file=None)
    asked: list[int] = []
    assert train(config, should_stop=lambda: asked.append(1) or len(asked) >= 3).step == 2  # before step 1, after each
    setup = prepare(config.replace(resume=True), DistContext(), "cpu")
    assert setup.resumed_from == find_checkpoint(tmp_path / "run") and setup.start.step == 2
    assert (setup.start.epoch, setup.start.batch_in_epoch) == (0, 2) and setup.total_steps == 6
