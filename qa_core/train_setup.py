"""Set up a training run: check its folder, load the model and data, build the optimizer, restore a checkpoint."""

from __future__ import annotations

import contextvars
import logging
import math
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from transformers import get_scheduler, set_seed

from qa_core.batching import training_batches
from qa_core.checkpoints import TrainState, clear_outputs, load_trainer_state
from qa_core.config import QAConfig
from qa_core.data import Example, fingerprint, load_examples
from qa_core.distributed import DistContext, device_for, shard
from qa_core.evaluation import check_scorable
from qa_core.features import Feature, featurize
from qa_core.modeling import LoadedModel, fit_config, load_model
from qa_core.precision import set_up_precision
from qa_core.preflight import check_not_training_into_its_model, check_resume, check_resumed_windows
from qa_core.progress import ProgressCallback, append_history, tensorboard_writer
from qa_core.run_files import (HISTORY_FILE, RUN_FILE, RUN_OUTPUTS, TENSORBOARD_DIR, RunRefused, check_output_dir,
                               find_checkpoint)
from qa_core.settings import limits_within
from qa_core.train_step import build_optimizer, wrap_model

logger = logging.getLogger(__name__)
_STEP_LIMITS: contextvars.ContextVar[tuple[int | None, float | None]] = contextvars.ContextVar(
    "step_limits", default=(None, None))


def step_limits(steps: int | None, epochs: float | None) -> AbstractContextManager[None]:
    """Within this block a training takes at most `steps` optimizer steps and `epochs` epochs, whatever its options
    make (a public server's caps, settings.TrainLimits): its total_steps counts to them, and so do its progress,
    its learning-rate schedule and run.json, and it finishes there."""
    return limits_within(_STEP_LIMITS, (steps, epochs))


@dataclass(frozen=True)
class Setup:
    """What one training works with, fixed for the whole run; its progress is the TrainState."""

    config: QAConfig
    dist_ctx: DistContext
    loaded: LoadedModel
    model: torch.nn.Module  # the loaded model, maybe wrapped by DDP or torch.compile
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    train_features: tuple[Feature, ...]
    eval_examples: tuple[Example, ...]
    eval_features: tuple[Feature, ...]
    epoch_batches: int  # micro-batches of an epoch on this rank
    total_steps: int
    bf16: bool
    data_fingerprint: dict[str, str]
    start: TrainState  # step 0, or where the checkpoint left off
    resumed_from: Path | None
    trackers: tuple[ProgressCallback, ...]  # history.jsonl, TensorBoard (main process only)

    @property
    def steps_per_epoch(self) -> int:
        """Optimizer steps of an epoch: its micro-batches over gradient_accumulation_steps, rounded up."""
        return math.ceil(self.epoch_batches / self.config.gradient_accumulation_steps)


def prepare(config: QAConfig, dist_ctx: DistContext, device: str | None) -> Setup:
    """Check the output folder, load the model and data, and build the optimizer, resuming from a checkpoint."""
    output_dir = Path(config.output_dir)
    checkpoint = _checkpoint_to_resume(output_dir, config)
    train_examples = load_examples(config.train_file, "train", config.max_train_samples).examples
    eval_examples = (load_examples(config.validation_file, "validation", config.max_eval_samples).examples
                     if config.validation_file else ())
    check_scorable(eval_examples, config, config.validation_file)  # before the model loads
    set_seed(config.seed)
    torch_device = device_for(dist_ctx, device)
    loaded = load_model(str(checkpoint) if checkpoint else config.model_name_or_path, torch_device,
                        config.attention_dropout, head_seed=config.seed)
    config = fit_config(config, loaded)  # windows the model can take (a warning says what changed)
    if checkpoint:
        check_resumed_windows(config)
    train_features = featurize(train_examples, loaded.tokenizer, config, training=True).features
    if not train_features:
        raise ValueError(f"{config.train_file}: no training window holds an answer")
    eval_features = featurize(eval_examples, loaded.tokenizer, config, training=False).features
    epoch_batches = len(shard(training_batches(train_features, config, 0), dist_ctx))
    steps_per_epoch = math.ceil(epoch_batches / config.gradient_accumulation_steps)
    if steps_per_epoch == 0:  # else every rank loops over empty epochs forever
        raise ValueError(f"{len(train_features)} training windows make fewer batches than the "
                         f"{dist_ctx.world_size} processes; use fewer processes or a smaller batch size")
    total_steps = planned_steps(config, steps_per_epoch)
    bf16 = set_up_precision(loaded.model, config.bf16, torch_device)
    config = config.replace(bf16=bf16)  # run.json and the model card say what ran, not "default"
    optimizer = build_optimizer(loaded.model, config, torch_device)
    scheduler = get_scheduler(config.lr_scheduler_type, optimizer, math.ceil(config.warmup_ratio * total_steps),
                              total_steps)
    data = {"train": fingerprint(train_examples), "validation": fingerprint(eval_examples)}
    model = wrap_model(loaded.model, config, dist_ctx, torch_device)
    if dist_ctx.is_main and not checkpoint:
        clear_outputs(output_dir, RUN_OUTPUTS)  # only what check_output_dir allowed to be overwritten
    # Last: restoring the RNG state must come after everything that draws from it.
    start = (load_trainer_state(checkpoint, optimizer, scheduler, data,
                                {"train": config.train_file, "validation": config.validation_file}) if checkpoint
             else TrainState())
    if start.step > total_steps:  # else "finished" at a step past its total, and never evaluated
        done = f"has done {start.step} steps, more than the {total_steps}"
        raise RunRefused(f"--resume: the run in {output_dir} {done} asked for (--max_steps, --num_train_epochs); "
                         f"ask for at least {start.step}", f"run {output_dir.name} {done} its settings ask for "
                         f"(max_steps, num_train_epochs in its {RUN_FILE}); start a new run")
    trackers = _trackers(config, output_dir) if dist_ctx.is_main else ()  # after every refusal: a writer stays open
    return Setup(config, dist_ctx, loaded, model, optimizer, scheduler, train_features, eval_examples, eval_features,
                 epoch_batches, total_steps, bf16, data, start, checkpoint, trackers)


def planned_steps(config: QAConfig, steps_per_epoch: int) -> int:
    """The optimizer steps a training takes: its max_steps, else its epochs' steps; at most the step_limits."""
    steps = config.max_steps if config.max_steps > 0 else math.ceil(config.num_train_epochs * steps_per_epoch)
    step_cap, epoch_cap = _STEP_LIMITS.get()
    caps = [cap for cap in (step_cap, None if epoch_cap is None else math.ceil(epoch_cap * steps_per_epoch))
            if cap is not None]
    if caps and min(caps) < steps:
        logger.info("this server's limits cap the training at %d steps; its options make %d", min(caps), steps)
    return min([steps, *caps])


def _checkpoint_to_resume(output_dir: Path, config: QAConfig) -> Path | None:
    """The checkpoint to resume from, or None for a fresh run; never silently write over a run or a model, and
    continue a run only with the options it ran with (the CLI checks the same before torch loads)."""
    if not config.resume:
        check_not_training_into_its_model(config)
        check_output_dir(output_dir, config.overwrite_output_dir)
        return None
    check_resume(config)
    return find_checkpoint(output_dir)


def _trackers(config: QAConfig, output_dir: Path) -> tuple[ProgressCallback, ...]:
    history = partial(append_history, output_dir / HISTORY_FILE)
    if config.report_to == "tensorboard":
        return history, tensorboard_writer(output_dir / TENSORBOARD_DIR)
    return (history,)
