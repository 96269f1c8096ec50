"""Fine-tune a QA model: AdamW with warm-up and decay, accumulation, mixed precision, checkpoints, exact resume."""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from qa_core.batching import training_batches
from qa_core.checkpoints import TrainState, publish, remove_partial_files, save_checkpoint
from qa_core.config import QAConfig
from qa_core.divergence import diverged_message, nonfinite_parameters, ruined_message
from qa_core.distributed import all_reduce_mean, any_rank, barrier, cleanup, init_distributed, shard, unwrap_ddp
from qa_core.evaluation import EvalResult, evaluate, write_eval_outputs
from qa_core.file_writes import no_room, no_room_line
from qa_core.precision import inference_copy
from qa_core.progress import ProgressCallback, ProgressEvent, pace_of
from qa_core.run_files import find_checkpoint
from qa_core.run_lock import training_lock
from qa_core.train_records import earlier_finish, finish, open_records, run_info
from qa_core.train_setup import Setup, prepare
from qa_core.train_step import batch_loader, forward_backward, optimizer_step, step_micro_batches
from qa_core.wording import TwoWordings

logger = logging.getLogger(__name__)


class TrainingError(TwoWordings, RuntimeError):
    """Training stopped for a reason the user can act on (divergence, a full disk); run.json says which."""


@dataclass(frozen=True)
class TrainResult:
    output_dir: str
    status: str  # finished | cancelled
    step: int
    metrics: dict[str, float]  # the latest evaluation's figures (a SQuAD 2.0 one's too), as `evaluate` gives them
    train_seconds: float  # this session's training time (run.json and the model card: every session's)
    windows_trained: int  # training windows processed in this session, all processes together
    total_train_seconds: float = 0.0  # every session's training time, as run.json counts it


def train(config: QAConfig, callback: ProgressCallback | None = None, should_stop: Callable[[], bool] | None = None,
          device: str | None = None) -> TrainResult:
    """Train on config.train_file, evaluating on config.validation_file after each epoch; resumable at any step."""
    if not config.train_file:
        raise ValueError("train_file is required for training")
    dist_ctx = init_distributed()
    try:
        with training_lock(Path(config.output_dir)) if dist_ctx.is_main else contextlib.nullcontext():
            setup = prepare(config, dist_ctx, device)
            return fit(setup, callback or (lambda event: None), should_stop or (lambda: False))
    finally:
        cleanup(dist_ctx)  # destroys the process group only if init_distributed created it here


@dataclass
class _Loop:
    """The training loop's running values. Mutable on purpose: a failure at any instant (a second Ctrl-C inside a
    listener, say) reports the state reached then, which helpers returning new values would hand back too late."""
    state: TrainState
    saved: TrainState  # the last checkpoint's state: what a failure reports, and where --resume continues
    loss_sum: float | torch.Tensor  # losses since the last logged step (a device scalar once a batch has run)
    losses: int
    windows: int = 0  # training windows of this session, all processes together
    seconds: float = 0.0  # this session's training time
    clock: float = 0.0  # when the current step's training time started


def fit(setup: Setup, callback: ProgressCallback, should_stop: Callable[[], bool]) -> TrainResult:
    """The whole loop: step, log, evaluate, checkpoint, cancel. A kill at any instant leaves a resumable folder."""
    output_dir = Path(setup.config.output_dir)
    emit = partial(_emit, setup, (callback, *setup.trackers))
    loop, cancelled = _Loop(setup.start, setup.start, *setup.start.pending_loss), False
    earlier = earlier_finish(setup)  # read before open_records rewrites run.json
    if earlier is not None:  # its results are written again, unchanged: say so rather than look freshly trained
        logger.info("the run in %s had already finished at step %d: nothing was trained", output_dir, earlier.step)
    try:
        open_records(setup)
        emit("start", loop.state, message=f"resumed at step {loop.state.step}" if setup.resumed_from else "started")
        loop.state, cancelled = _before_first_step(setup, loop.state, emit, should_stop)
        loop.saved = loop.state
        while loop.state.step < setup.total_steps and not cancelled:
            batches = shard(training_batches(setup.train_features, setup.config, loop.state.epoch), setup.dist_ctx)
            setup.model.train()
            loop.clock = time.perf_counter()
            for batch in _loader(setup, batches[loop.state.batch_in_epoch:], loop.state.epoch):
                if not _micro_batch(setup, loop, batch, len(batches)):
                    continue
                cancelled = _after_step(setup, loop, emit, should_stop, len(batches))
                if cancelled or loop.state.step >= setup.total_steps:
                    break
        status = "cancelled" if cancelled else "finished"
        finish(setup, loop.state, status, earlier)
    except BaseException as err:
        failure = _failed(setup, loop.saved, loop.state, err, emit)
        if failure is err:  # `from err` would make it its own cause, a cycle for whoever follows causes
            raise
        raise failure from err
    emit("done" if status == "finished" else "cancelled", loop.state, metrics=loop.state.metrics,
         message=status)  # how to continue is each front end's to say: a flag, or a button
    return TrainResult(str(output_dir), status, loop.state.step, loop.state.figures, loop.seconds, loop.windows,
                       loop.state.train_seconds)


def _micro_batch(setup: Setup, loop: _Loop, batch: dict[str, torch.Tensor], epoch_batches: int) -> bool:
    """Forward and backward on one micro-batch; whether it is its optimizer step's last (DDP then syncs)."""
    accumulation = setup.config.gradient_accumulation_steps
    position = loop.state.batch_in_epoch + 1
    step_ends = position % accumulation == 0 or position == epoch_batches
    no_sync = setup.model.no_sync() if setup.dist_ctx.enabled and not step_ends else None
    micro_batches = step_micro_batches(position, accumulation, epoch_batches)
    loop.loss_sum += forward_backward(setup.model, batch, setup.bf16, micro_batches, no_sync)
    loop.losses += 1
    loop.windows += len(batch["input_ids"]) * setup.dist_ctx.world_size
    loop.state = replace(loop.state, batch_in_epoch=position)
    return step_ends


def _after_step(setup: Setup, loop: _Loop, emit: Callable[..., None], should_stop: Callable[[], bool],
                epoch_batches: int) -> bool:
    """The optimizer step, its report, and a checkpoint (evaluated at an epoch's end) when one is due; whether
    training is cancelled (asked before the checkpoint or while it was made)."""
    grad_norm = float(optimizer_step(setup.model, setup.optimizer, setup.scheduler, setup.config.max_grad_norm))
    loop.seconds += time.perf_counter() - loop.clock
    loop.state = replace(loop.state, step=loop.state.step + 1, train_seconds=setup.start.train_seconds + loop.seconds)
    if not math.isfinite(grad_norm):  # the same on every rank: gradients are all-reduced
        raise TrainingError(*diverged_message(setup.config, loop.state.step, float(loop.loss_sum) / loop.losses,
                                              grad_norm))
    _report_step(setup, loop, emit, grad_norm)
    if loop.state.batch_in_epoch == epoch_batches:
        loop.state = replace(loop.state, epoch=loop.state.epoch + 1, batch_in_epoch=0)
    done = loop.state.step >= setup.total_steps
    cancelled = not done and any_rank(should_stop(), setup.dist_ctx)  # all ranks stop together
    epoch_ends = loop.state.batch_in_epoch == 0 or done
    if epoch_ends or loop.state.step % setup.config.save_steps == 0 or cancelled:
        loop.state = replace(loop.state, pending_loss=(float(loop.loss_sum), loop.losses))
        loop.state = loop.saved = _save_point(setup, loop.state, emit, evaluate=epoch_ends)
        # a stop asked while it evaluated or saved stops at this checkpoint, rather than after one more step
        cancelled = cancelled or (not done and any_rank(should_stop(), setup.dist_ctx))
    loop.clock = time.perf_counter()  # evaluation and checkpoints are not training time
    return cancelled


def _report_step(setup: Setup, loop: _Loop, emit: Callable[..., None], grad_norm: float) -> None:
    """The bar moves at every step; the loss is read (and its sum restarted) only when logged, since reading it
    waits for a GPU."""
    state = loop.state
    pace = pace_of(loop.windows, loop.seconds, state.train_seconds, state.step, setup.total_steps,
                   state.untimed_steps)
    if state.step % setup.config.logging_steps == 0 or state.step == setup.total_steps:
        emit("step", state, loss=all_reduce_mean(float(loop.loss_sum) / loop.losses, setup.dist_ctx),
             learning_rate=setup.scheduler.get_last_lr()[0], grad_norm=grad_norm, **pace)
        loop.loss_sum, loop.losses = 0.0, 0
    else:
        emit("advance", state, **pace)


def _before_first_step(setup: Setup, state: TrainState, emit: Callable[..., None],
                       should_stop: Callable[[], bool]) -> tuple[TrainState, bool]:
    """A stop asked while the model and data loaded (Ctrl-C early) stops before the first step, not after it; a
    fresh run then keeps a step-0 checkpoint, so --resume continues it as it would any cancelled run. A run
    resumed at its last step evaluates it if its checkpoint had not. Returns the state and whether to stop."""
    cancelled = state.step < setup.total_steps and any_rank(should_stop(), setup.dist_ctx)
    if state.step >= setup.total_steps and not _evaluated_now(setup, state):
        state = _save_point(setup, state, emit, evaluate=True)
    if cancelled and not setup.resumed_from:
        state = _save_point(setup, state, emit, evaluate=False)
    return state, cancelled


def _loader(setup: Setup, batches: list[list[int]], epoch: int) -> DataLoader:
    pad_to = setup.config.max_seq_length if setup.config.pad_to_max_length else None
    return batch_loader(setup.train_features, batches, next(setup.loaded.model.parameters()).device,
                        setup.loaded.batch_format, pad_to, setup.config.dataloader_num_workers,
                        seed=setup.config.seed + epoch)


def _save_point(setup: Setup, state: TrainState, emit: Callable[..., None], evaluate: bool) -> TrainState:
    """Check the weights, evaluate if asked, then checkpoint: nothing non-finite is ever evaluated or saved."""
    if ruined := nonfinite_parameters(setup.loaded.model):
        raise TrainingError(*ruined_message(setup.config, state.step, ruined))
    result = None
    if evaluate:
        state, result = _evaluate(setup, state, emit)
    _checkpoint(setup, state, result, emit)
    return state


def _evaluate(setup: Setup, state: TrainState, emit: Callable[..., None]) -> tuple[TrainState, EvalResult | None]:
    if not setup.eval_features:
        return state, None
    # Without the DDP wrapper: its forward may broadcast buffers, a collective that hangs when ranks run
    # different numbers of evaluation batches (a rank may have none).
    model, bf16 = inference_copy(unwrap_ddp(setup.model), setup.bf16, next(setup.loaded.model.parameters()).device)
    result = evaluate(model, setup.eval_examples, setup.eval_features, setup.config, bf16, setup.dist_ctx,
                      setup.loaded.batch_format)
    metrics = result.metrics.to_dict()
    state = replace(state, history=(*state.history, {"step": state.step, "epoch": _epoch(setup, state), **metrics}))
    logger.info("step %d: exact_match %.2f f1 %.2f", state.step, metrics["exact_match"], metrics["f1"])
    emit("eval", state, metrics=metrics)
    return state, result


def _checkpoint(setup: Setup, state: TrainState, result: EvalResult | None, emit: Callable[..., None]) -> None:
    """The checkpoint first (with the evaluation files of `result`), then what readers see, made from it."""
    if setup.dist_ctx.is_main:
        output_dir = Path(setup.config.output_dir)
        write_eval = partial(write_eval_outputs, result=result) if result is not None else None
        checkpoint = save_checkpoint(output_dir, setup.model, setup.loaded.tokenizer, setup.optimizer,
                                     setup.scheduler, state, setup.data_fingerprint, write_eval,
                                     setup.loaded.model_settings)
        publish(output_dir, checkpoint, run_info(setup, state, "running"))
        emit("checkpoint", state)
    barrier(setup.dist_ctx)


def _failed(setup: Setup, state: TrainState, reached: TrainState, err: BaseException,
            emit: Callable[..., None]) -> BaseException:
    """Record a failure in run.json at `state`, the last checkpoint's (freeing partial files first on a full disk),
    so run.json never runs ahead of what --resume continues; the error to raise (its message names the step that
    failed). A second Ctrl-C (KeyboardInterrupt) is no failure: the run is cancelled, to continue from there; its
    event names the step `reached` and whether a checkpoint was kept."""
    output_dir = Path(setup.config.output_dir)
    if reason := no_room(err):
        err = no_room_error(output_dir, reason, resumable=find_checkpoint(output_dir) is not None)
    interrupted = isinstance(err, KeyboardInterrupt)
    status, error = ("cancelled", "") if interrupted else ("failed", str(err) or repr(err))
    if setup.dist_ctx.is_main:
        remove_partial_files(output_dir)
        try:
            publish(output_dir, None, run_info(setup, state, status, error=error))
        except OSError:
            remove_partial_files(output_dir)
        message = _stopped_at_once(output_dir, state, reached) if interrupted else error
        with contextlib.suppress(Exception):  # the failure to report is err, not a listener's
            emit(status, reached if interrupted else state, message=message)
    return err


def _stopped_at_once(output_dir: Path, saved: TrainState, reached: TrainState) -> str:
    if find_checkpoint(output_dir) is None:
        return "stopped at once, before its first checkpoint"
    kept = f"; its checkpoint of step {saved.step} is kept" if saved.step != reached.step else ""
    return f"stopped at once{kept}"


def no_room_error(output_dir: Path, reason: str, resumable: bool = True) -> TrainingError:
    """A full disk in train.py's words and the web app's; resumable: a checkpoint was kept to continue from."""
    thens = (("continue with --resume", "press Resume to continue the run") if resumable else
             ("run the command again with --overwrite_output_dir (no checkpoint was kept)",
              "start a new run (no checkpoint was kept)"))
    return TrainingError(*(no_room_line(f"in {output_dir}", reason, then) for then in thens))


def _evaluated_now(setup: Setup, state: TrainState) -> bool:
    """Whether the latest evaluation is of this step (or there is nothing to evaluate on)."""
    return not setup.eval_features or bool(state.history and state.history[-1]["step"] == state.step)


def _emit(setup: Setup, sinks: tuple[ProgressCallback, ...], kind: str, state: TrainState,
          **values: object) -> None:
    if setup.dist_ctx.is_main:
        event = ProgressEvent(kind, state.step, setup.total_steps, _epoch(setup, state), **values)
        for sink in sinks:
            sink(event)


def _epoch(setup: Setup, state: TrainState) -> float:
    return round(state.epoch + state.batch_in_epoch / max(setup.epoch_batches, 1), 3)
