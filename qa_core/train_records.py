"""What a training run writes for its readers: run.json at its start, checkpoints and end, and the final model."""

from __future__ import annotations

import os
from dataclasses import replace
from functools import partial
from pathlib import Path

from qa_core.checkpoints import TrainState, publish, save_final_model
from qa_core.distributed import barrier, describe_hardware
from qa_core.model_card import base_model_name, write_model_card
from qa_core.progress import truncate_history
from qa_core.run_files import HISTORY_FILE, RunInfo, read_run_info
from qa_core.train_setup import Setup


def finish(setup: Setup, state: TrainState, status: str, earlier: RunInfo | None) -> None:
    """The final model (when finished) and run.json, with the training time of every session (the checkpoint
    carries the earlier ones'); a session that trained no step keeps the earlier one's time and hardware."""
    output_dir = Path(setup.config.output_dir)
    if setup.dist_ctx.is_main:
        info = run_info(setup, state, status, train_seconds=state.train_seconds)
        if earlier is not None and state.step == setup.start.step:
            info = replace(info, train_seconds=earlier.train_seconds, hardware=earlier.hardware)
        if status == "finished":  # model/ first: a run.json saying "finished" always has its model
            save_final_model(output_dir, setup.model, setup.loaded.tokenizer, setup.loaded.model_settings,
                             partial(write_model_card, output_dir, info=info))
        publish(output_dir, None, info)  # evaluation files: published already
    barrier(setup.dist_ctx)  # no rank returns before the final model is on disk


def open_records(setup: Setup) -> None:
    """run.json says 'running' from the start; a resumed run first restores what its checkpoint says."""
    output_dir = Path(setup.config.output_dir)
    if setup.dist_ctx.is_main:
        if setup.resumed_from:
            truncate_history(output_dir / HISTORY_FILE, setup.start.step)
        publish(output_dir, setup.resumed_from, run_info(setup, setup.start, "running"))
    barrier(setup.dist_ctx)


def earlier_finish(setup: Setup) -> RunInfo | None:
    """run.json of a finished run resumed with no step left to train: it keeps the training time and hardware of
    the session that trained it, which this one (0 s) would otherwise replace."""
    if not (setup.dist_ctx.is_main and setup.resumed_from and setup.start.step >= setup.total_steps):
        return None
    try:
        info = read_run_info(Path(setup.config.output_dir))
    except ValueError:  # unreadable: publish rebuilds it from the checkpoint
        return None
    return info if info.status == "finished" and info.step == setup.start.step else None


def run_info(setup: Setup, state: TrainState, status: str, error: str = "",
             train_seconds: float | None = None) -> RunInfo:
    """run.json's contents at `state`; train_seconds (with the hardware) only where the run ends."""
    hardware = describe_hardware(setup.dist_ctx.world_size) if train_seconds is not None else ""
    return RunInfo(status, setup.config.to_dict(), state.step, setup.total_steps, state.metrics,
                   setup.data_fingerprint, list(state.history), error,
                   base_model_name(setup.config.model_name_or_path), train_seconds, hardware, os.getcwd())
