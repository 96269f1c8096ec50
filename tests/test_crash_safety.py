"""Kills at every point of a run, then --resume: the same weights, bit for bit, and records that agree; full disks."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import resource
import shutil
import signal
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from qa_core import checkpoints, cli, file_writes
from qa_core.calibration import fit_calibration, read_calibration
from qa_core.config import QAConfig
from qa_core.error_analysis import read_records
from qa_core.progress import read_history
from qa_core.run_files import RECORDS_FILE, STATE_FILE, TRAINING_LOCK, find_checkpoint, read_run_info
from qa_core.training import TrainingError, train
from tests.overfit_data import write_tiny_squad
from tests.tiny_runs import assert_same_weights, cli as train_py, tiny_config

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # the children are forked
KILLED = 77


def run_config(model_dir: Path, data: Path, output_dir: Path) -> QAConfig:
    """5 windows, batches of 2: 3 steps an epoch, 2 epochs; checkpoints at steps 2 (mid-epoch), 3 (epoch end,
    evaluated), 4 (mid-epoch) and 6 (the end, evaluated), then the final model."""
    return tiny_config(model_dir, data, output_dir, num_train_epochs=2, save_steps=2, logging_steps=1,
                       learning_rate=5e-3)


def _killed_child(config: QAConfig, point: str, nth: int) -> None:
    seen: Counter[str] = Counter()

    def reach(name: str) -> None:
        seen[name] += 1
        if name == point and seen[name] == nth:
            os._exit(KILLED)

    checkpoints.crash_hook = reach
    train(config, callback=lambda event: reach(f"event_{event.kind}"))
    os._exit(0)


def train_killed_at(config: QAConfig, point: str, nth: int = 1) -> None:
    """Train in a forked child that dies (os._exit, no clean-up) the nth time it reaches `point`."""
    child = multiprocessing.get_context("fork").Process(target=_killed_child, args=(config, point, nth))
    child.start()
    child.join(120)
    assert child.exitcode == KILLED, f"{point}#{nth} was not reached (exit code {child.exitcode})"


def assert_records_agree(run: Path) -> None:
    """run.json, the checkpoint and the evaluation files tell the same story."""
    info = read_run_info(run)
    state = torch.load(run / "checkpoint" / STATE_FILE, weights_only=True)["state"]
    assert info.history == list(state["history"]) and info.step == state["step"]
    metrics = json.loads((run / "eval_metrics.json").read_text())
    assert {k: metrics[k] for k in info.metrics} == info.metrics
    assert json.loads((run / "checkpoint" / "eval_metrics.json").read_text()) == metrics
    fitted = fit_calibration(read_records(run / RECORDS_FILE))  # the temperature belongs to the records beside it
    assert read_calibration(run) == read_calibration(run / "checkpoint") == fitted


@pytest.fixture(scope="module")
def straight(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, QAConfig]:
    """An uninterrupted run, the reference for every killed-and-resumed one."""
    folder = tmp_path_factory.mktemp("straight")
    data = write_tiny_squad(folder / "d.json")
    result = train(run_config(tiny_model_dir, data, folder / "run"))
    assert result.status == "finished" and result.step == 6
    return folder / "run", run_config(tiny_model_dir, data, folder / "run")


# (point, occurrence, what --resume finds)
KILL_POINTS = [
    ("run_file_written", 1, None),  # the very first run.json not yet in place
    ("event_start", 1, None),  # before the first checkpoint
    ("checkpoint_written", 1, None),  # the first checkpoint complete under checkpoint.tmp, not swapped in
    ("checkpoint_done", 1, 2),  # the first checkpoint in place, its run.json not yet
    ("event_step", 3, 2),  # mid-epoch, a step after the mid-epoch checkpoint
    ("event_eval", 1, 2),  # evaluated at the end of epoch 1, its checkpoint not yet written
    ("checkpoint_swapping", 2, 2),  # between the two renames: the previous one under checkpoint.old
    ("run_file_written", 3, 3),  # the epoch-end checkpoint in place, run.json.tmp written, not renamed
    ("checkpoint_written", 3, 3),  # the mid-epoch checkpoint of epoch 2 under checkpoint.tmp
    ("checkpoint_done", 4, 6),  # the last checkpoint in place, its run.json not yet
    ("model_saved", 5, 6),  # the final model written under model.tmp, run.json still "running"
    ("model_swapping", 1, 6),  # the final model with its card complete under model.tmp, not yet renamed
    ("run_file_written", 6, 6),  # the final run.json under run.json.tmp
]


@pytest.mark.parametrize("point, nth, resumes_at", KILL_POINTS, ids=[f"{p}#{n}" for p, n, _ in KILL_POINTS])
def test_a_kill_at_any_point_resumes_to_the_same_weights(straight, tmp_path: Path, point: str, nth: int,
                                                         resumes_at: int | None) -> None:
    reference, config = straight
    config = config.replace(output_dir=str(tmp_path / "run"))
    train_killed_at(config, point, nth)
    checkpoint = find_checkpoint(tmp_path / "run")
    if resumes_at is None:
        assert checkpoint is None
        with pytest.raises(ValueError, match="nothing to resume"):
            train(config.replace(resume=True))
        return
    assert torch.load(checkpoint / STATE_FILE, weights_only=True)["state"]["step"] == resumes_at
    assert read_run_info(tmp_path / "run").status == "running" or point == "run_file_written"
    events = []
    result = train(config.replace(resume=True), callback=events.append)
    assert result.status == "finished" and result.step == 6 and events[0].step == resumes_at
    assert_same_weights(tmp_path / "run", reference)
    assert_records_agree(tmp_path / "run")
    assert read_run_info(tmp_path / "run").history == read_run_info(reference).history
    steps = [e.step for e in read_history(tmp_path / "run" / "history.jsonl") if e.kind == "step"]
    assert steps == [1, 2, 3, 4, 5, 6]  # each step once: those after the checkpoint were dropped and redone


def test_a_resumed_run_logs_the_losses_of_an_uninterrupted_one(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Found by trying the CLI: a resume between two logged steps restarted the logged mean, so the history's
    loss curve changed though the weights did not."""
    data = write_tiny_squad(tmp_path / "d.json")
    straight = run_config(tiny_model_dir, data, tmp_path / "straight").replace(logging_steps=3)
    assert train(straight).status == "finished"
    cut = straight.replace(output_dir=str(tmp_path / "cut"))
    asked: list[int] = []
    stopped = train(cut, should_stop=lambda: asked.append(1) or len(asked) >= 3)  # also asked before step 1
    assert stopped.status == "cancelled" and stopped.step == 2  # between the logged steps 0 and 3
    assert train(cut.replace(resume=True)).status == "finished"

    def losses(run: Path) -> list[tuple[int, float]]:
        return [(e.step, e.loss) for e in read_history(run / "history.jsonl") if e.kind == "step"]

    assert losses(tmp_path / "cut") == losses(tmp_path / "straight") and len(losses(tmp_path / "cut")) == 2


def test_the_uninterrupted_run_keeps_records_that_agree(straight) -> None:
    reference, _ = straight
    assert_records_agree(reference)
    assert read_run_info(reference).status == "finished"
    assert not list(reference.glob("*.tmp")) and not (reference / "checkpoint.old").exists()


def test_a_full_disk_stops_with_one_clear_error_and_resumes_after(straight, tmp_path: Path) -> None:
    """A tmpfs with room for one checkpoint but not for its successor beside it (needs root to mount)."""
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root); the file-size-limit test covers the write error")
    try:
        reference, config = straight
        config = config.replace(output_dir=str(mount / "run"))
        with pytest.raises(TrainingError, match="no room to write"):
            train(config)
        info = read_run_info(mount / "run")
        assert info.status == "failed" and "No space left on device" in info.error
        assert not list((mount / "run").glob("*.tmp")) and not (mount / "run" / "checkpoint.tmp").exists()
        assert find_checkpoint(mount / "run") is not None
        subprocess.run(["mount", "-o", "remount,size=64m", str(mount)], check=True)
        assert train(config.replace(resume=True)).status == "finished"
        assert_same_weights(mount / "run", reference)
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=False)


def limit_file_size(limit: int) -> None:
    """In this process and those it starts: a write past `limit` bytes of a file fails, as on a full disk."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # then a write past the limit fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def _train_with_a_file_size_limit(config: QAConfig, limit: int) -> None:
    limit_file_size(limit)
    try:
        train(config)
    except TrainingError:
        os._exit(3)
    os._exit(0)


def test_a_write_error_stops_with_one_clear_error_and_leaves_no_partial_files(straight, tmp_path: Path) -> None:
    """A file-size limit below the checkpoint's weights: the kernel refuses the write, as on a full disk."""
    _, config = straight
    config = config.replace(output_dir=str(tmp_path / "run"))
    child = multiprocessing.get_context("fork").Process(target=_train_with_a_file_size_limit,
                                                        args=(config, 1 << 20))
    child.start()
    child.join(120)
    assert child.exitcode == 3
    info = read_run_info(tmp_path / "run")
    assert info.status == "failed" and "no room to write" in info.error and "File too large" in info.error
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [TRAINING_LOCK, "history.jsonl", "run.json"]
    # found by trying the CLI: the first checkpoint failed, yet the error said to continue with --resume
    assert info.error.endswith("then run the command again with --overwrite_output_dir (no checkpoint was kept)")
    with pytest.raises(ValueError, match="nothing to resume"):
        train(config.replace(resume=True))


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def run_with_a_file_size_limit(limit: int, *args: str) -> str:
    """train.py in a process whose writes fail past `limit` bytes a file: its one error line (exit code 1)."""
    done = subprocess.run(train_py(*args), capture_output=True, text=True, timeout=300,
                          preexec_fn=lambda: limit_file_size(limit))
    errors = [line for line in done.stderr.splitlines() if " ERROR " in line]
    assert done.returncode == 1 and "Traceback" not in done.stderr and len(errors) == 1, done.stderr
    return errors[0]


def test_an_evaluation_without_room_keeps_the_earlier_one_whole(straight, tmp_path: Path) -> None:
    """Found by trying the CLI under `ulimit -f`: evaluating a run into its own folder deleted its calibration,
    replaced its metrics and predictions, cut its records mid-line, and ended in a traceback. The new files are
    written aside and moved in once all are: a write that fails leaves the earlier evaluation as it was."""
    reference, config = straight
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    before = files_of(run)
    sizes = {name: len(content) for name, content in before.items() if name.startswith("eval_")}
    limit = sizes[RECORDS_FILE] // 2  # the predictions and metrics fit, the records do not: the reported case
    assert sizes["eval_predictions.json"] < limit and sizes["eval_metrics.json"] < limit
    line = run_with_a_file_size_limit(limit, "evaluate", "--model_name_or_path", str(run), "--validation_file",
                                      config.validation_file, "--output_dir", str(run))
    assert f"no room to write in {run}" in line and "File too large" in line and "partial files removed" in line
    assert files_of(run) == before  # eval_*, calibration.json, the model card: all kept, nothing left aside


def test_predict_without_room_leaves_the_output_file_as_it_was(straight, tmp_path: Path) -> None:
    """Found by trying the CLI under `ulimit -f`: a traceback, and the existing answers cut to invalid JSON."""
    reference, config = straight
    output = tmp_path / "answers" / "predictions.json"
    output.parent.mkdir()
    output.write_text('{"q1": "an earlier answer"}')
    line = run_with_a_file_size_limit(16, "predict", "--model_name_or_path", str(reference), "--test_file",
                                      config.validation_file, "--output_file", str(output), "--overwrite_output_dir")
    assert f"no room to write {output}" in line and "File too large" in line and "partial files removed" in line
    assert files_of(output.parent) == {"predictions.json": b'{"q1": "an earlier answer"}'}


@pytest.mark.gpu
def test_a_mid_epoch_resume_on_cuda_matches_within_float_tolerance(tiny_model_dir: Path, tmp_path: Path) -> None:
    """On CUDA some kernels add in a varying order: the same weights within float tolerance, not bit for bit."""
    data = write_tiny_squad(tmp_path / "d.json")
    straight = run_config(tiny_model_dir, data, tmp_path / "straight").replace(bf16=False)
    assert train(straight, device="cuda").status == "finished"
    cut = straight.replace(output_dir=str(tmp_path / "cut"))
    asked: list[int] = []
    stopped = train(cut, should_stop=lambda: asked.append(1) or len(asked) >= 3, device="cuda")  # also before step 1
    assert stopped.status == "cancelled" and stopped.step == 2  # mid-epoch: 3 steps an epoch
    assert train(cut.replace(resume=True), device="cuda").status == "finished"
    mine = load_file(tmp_path / "cut" / "model" / "model.safetensors")
    theirs = load_file(tmp_path / "straight" / "model" / "model.safetensors")
    for name, tensor in theirs.items():
        torch.testing.assert_close(mine[name], tensor, rtol=1e-4, atol=1e-5, msg=name)


class SecondCtrlC(logging.Handler):
    """Presses Ctrl-C twice as the first evaluation is logged: after steps were trained, before their checkpoint."""

    def __init__(self) -> None:
        super().__init__()
        self.pressed = False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.pressed and "exact_match" in record.getMessage():
            self.pressed = True
            os.kill(os.getpid(), signal.SIGINT)  # the first asks for a stop after this step
            os.kill(os.getpid(), signal.SIGINT)  # the second stops at once, inside the evaluation


def test_a_second_ctrl_c_before_the_first_checkpoint_promises_no_resume(tiny_model_dir: Path, tmp_path: Path,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    """Found by trying the CLI: it said 'stopped at step 0 ... continue with --resume', and --resume then found no
    checkpoint. The lines name the step reached and advice that works."""
    data = write_tiny_squad(tmp_path / "d.json")
    run = tmp_path / "run"
    args = ["train", "--model_name_or_path", str(tiny_model_dir), "--train_file", str(data), "--validation_file",
            str(data), "--output_dir", str(run), "--max_seq_length", "64", "--doc_stride", "16",
            "--max_query_length", "16", "--per_device_train_batch_size", "2", "--num_train_epochs", "2",
            "--save_steps", "100"]
    caplog.set_level(logging.INFO)
    presser = SecondCtrlC()
    logging.getLogger("qa_core.training").addHandler(presser)
    try:
        assert cli.main(args) == 130
    finally:
        logging.getLogger("qa_core.training").removeHandler(presser)
    assert presser.pressed and find_checkpoint(run) is None
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and "SIGINT" not in r.getMessage()]
    assert said and not [line for line in said if "--resume" in line], said
    assert any("stopped at step 3" in line for line in said), said  # 3 steps an epoch: evaluated at the third
    assert all("--overwrite_output_dir" in line for line in said), said
    caplog.clear()
    assert cli.main([*args, "--overwrite_output_dir", "--max_steps", "1"]) == 0  # the advice given works


def test_a_failed_write_is_raised_as_it_is_not_as_its_own_cause(straight, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Found in review: train() raised a failure it did not rewrite `from` itself, a cycle on which no_room (it
    follows causes to find a full disk) never returned."""
    def refuse(point: str) -> None:
        if point == "checkpoint_written":
            raise PermissionError(13, "Permission denied", "checkpoint.tmp")

    monkeypatch.setattr(checkpoints, "crash_hook", refuse)
    config = straight[1].replace(output_dir=str(tmp_path / "run"))
    with pytest.raises(PermissionError) as raised:
        train(config)
    assert raised.value.__cause__ is not raised.value
    assert file_writes.no_room(raised.value) is None
    looped = OSError(5, "Input/output error")
    looped.__cause__ = looped  # as any code raising an error from itself makes it
    assert file_writes.no_room(looped) is None
    assert read_run_info(tmp_path / "run").status == "failed"
