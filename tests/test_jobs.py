"""The one-job training manager, run-folder naming and the quick fine-tune."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import pytest

from qa_core.config import QAConfig
from qa_core.data_sources import DataError
from qa_core.jobs import JobBusyError, JobManager, JobRefused, JobSnapshot
from qa_core.progress import STEP_KINDS, ProgressEvent, read_history
from qa_core.run_files import HISTORY_FILE, RECORDS_FILE, RunRefused, new_run_dir
from qa_core.run_picker import model_choices
from qa_core.train_setup import planned_steps
from qa_core.training import TrainResult, train
from tests.conftest import write_squad
from tests.overfit_data import write_tiny_squad


class FakeTrainer:
    """Emits a step, then waits until released or cancelled, like a real training loop."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.release = threading.Event()
        self.fail = fail

    def __call__(self, config, callback, should_stop) -> TrainResult:
        callback(ProgressEvent("start", 0, 10, 0.0, message="started"))
        callback(ProgressEvent("step", 3, 10, 0.3, loss=2.5, windows_per_s=12.0, eta_s=7.0))
        while not (self.release.wait(0.01) or should_stop()):
            pass
        if self.fail:
            raise self.fail
        if should_stop():
            return TrainResult(config.output_dir, "cancelled", 3, {}, 1.0, 30)
        callback(ProgressEvent("eval", 10, 10, 1.0, metrics={"exact_match": 50.0, "f1": 60.0}))
        return TrainResult(config.output_dir, "finished", 10, {"exact_match": 50.0, "f1": 60.0}, 1.0, 100)


def config(tmp_path: Path) -> QAConfig:
    return QAConfig(train_file="sample", output_dir=str(tmp_path / "run"))


def test_job_reports_progress_and_refuses_a_second_job(tmp_path):
    trainer = FakeTrainer()
    jobs = JobManager(trainer)
    assert jobs.snapshot().status == "idle"
    first = jobs.start(config(tmp_path))
    assert first.job_id == 1 and first.active
    with pytest.raises(JobBusyError, match="already running"):
        jobs.start(config(tmp_path))
    trainer.release.set()
    assert jobs.wait(10)
    done = jobs.snapshot()
    assert done.status == "finished" and done.metrics["f1"] == 60.0
    assert done.losses == ((3, 2.5),) and done.fraction == 1.0 and done.windows_per_s == 12.0
    assert jobs.start(config(tmp_path)).job_id == 2  # a new job once the first has ended
    trainer.release.set()
    assert jobs.wait(10)


def test_cancel_stops_the_job(tmp_path):
    jobs = JobManager(FakeTrainer())
    jobs.start(config(tmp_path))
    assert jobs.cancel().status == "cancelling"
    assert jobs.wait(10)
    assert jobs.snapshot().status == "cancelled"
    assert jobs.cancel().status == "cancelled"  # nothing to cancel: unchanged


def test_a_job_trains_within_its_step_and_epoch_limits(tmp_path):
    """A public server's bound on total work, whatever epochs and data make of the options: the training plans
    its steps within them (train_setup.planned_steps), and the job's end names the limit it finished at."""
    planned: list[int] = []

    def trainer(config, callback, should_stop) -> TrainResult:
        planned.append(planned_steps(config, steps_per_epoch=100))
        callback(ProgressEvent("done", planned[-1], planned[-1], planned[-1] / 100))
        return TrainResult(config.output_dir, "finished", planned[-1], {}, 1.0, 30)

    jobs = JobManager(trainer)
    for limits, message in (({"step_limit": 3}, "finished at this server's limit of 3 steps"),
                            ({"step_limit": 2000, "epoch_limit": 0.5}, "finished at this server's limit of 0.5 epochs"),
                            ({"step_limit": 2000}, "finished"), ({}, "finished")):
        jobs.start(config(tmp_path), **limits)
        assert jobs.wait(10) and jobs.snapshot().message == message
    assert planned == [3, 50, 200, 200]  # QAConfig's 2 epochs of 100 steps


def test_a_job_by_steps_finishes_at_its_epoch_limit(tmp_path, tiny_model_dir):
    """max_steps overrides num_train_epochs, and every epoch ends in an evaluation and a checkpoint: a few training
    questions under many steps would make as many epochs. A public server's job ends at its epoch cap too, its
    total counting to it."""
    run = tmp_path / "run"
    jobs = JobManager()
    jobs.start(QAConfig(model_name_or_path=str(tiny_model_dir), train_file="sample", validation_file="sample",
                        output_dir=str(run), max_steps=40, max_train_samples=2, per_device_train_batch_size=64,
                        max_eval_samples=2, max_seq_length=384, doc_stride=32), step_limit=40, epoch_limit=3)
    assert jobs.wait(120)
    snapshot = jobs.snapshot()
    assert snapshot.status == "finished" and snapshot.epoch == 3.0, snapshot.message
    assert snapshot.message == "finished at this server's limit of 3 epochs"
    evaluations = [e for e in read_history(run / HISTORY_FILE) if e.metrics]
    assert len(evaluations) == 3 and snapshot.step == snapshot.total_steps == 3  # one step an epoch: 2 questions


def test_a_failing_job_reports_its_error(tmp_path):
    trainer = FakeTrainer(fail=ValueError("data/x.json: no such data file"))
    trainer.release.set()
    jobs = JobManager(trainer)
    jobs.start(config(tmp_path))
    assert jobs.wait(10)
    snapshot = jobs.snapshot()
    assert snapshot.status == "failed" and "no such data file" in snapshot.message


@pytest.mark.parametrize("fail, traced", [
    (RunRefused("--resume: the run in r has done 9 steps", "run r has done 9 steps"), False),
    (DataError("d.json: contains no questions"), False), (RuntimeError("a defect of ours"), True)])
def test_a_refused_job_is_logged_in_one_line_and_a_defect_with_its_traceback(tmp_path, caplog, fail, traced):
    """A refused resume or bad data is the visitor's to mend: one line in the server's log, not a traceback."""
    trainer = FakeTrainer(fail=fail)
    trainer.release.set()
    jobs = JobManager(trainer)
    with caplog.at_level(logging.INFO, logger="qa_core.jobs"):
        jobs.start(config(tmp_path))
        assert jobs.wait(10) and jobs.snapshot().status == "failed"
    said = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(said) == 1 and bool(said[0].exc_info) is traced and str(fail) in said[0].getMessage()


def refusing_trainer(config, callback, should_stop) -> TrainResult:
    raise RunRefused("--resume: the run in r is being trained", "run r is being trained; press Resume later")


def test_under_window_limits_a_job_that_fails_before_its_first_event_is_refused_by_start(tmp_path, caplog):
    """Cutting within window limits is bounded, so start() waits for it: a job that fails before its first progress
    event never was (start raises in the web's words, the snapshot is the one before, its on_end is not run, one
    log line); once it has reported, a failure is the job's, as without limits."""
    ended = threading.Event()
    jobs = JobManager(refusing_trainer, max_windows=10)
    before = jobs.snapshot()
    with caplog.at_level(logging.INFO, logger="qa_core.jobs"), \
            pytest.raises(ValueError, match=r"^run r is being trained; press Resume later$"):
        jobs.start(config(tmp_path), on_end=ended.set)
    refused = jobs.snapshot()
    assert (refused.job_id, refused.status) == (0, "idle") and refused.version > before.version
    assert not ended.is_set() and [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        "training job not started: --resume: the run in r is being trained"]
    trainer = FakeTrainer(fail=ValueError("diverged"))
    jobs = JobManager(trainer, max_windows=10)
    assert jobs.start(config(tmp_path), on_end=ended.set).status == "running"  # returned at its first event
    trainer.release.set()
    assert jobs.wait(10) and jobs.snapshot().status == "failed" and ended.is_set()


def test_versions_change_with_every_update(tmp_path):
    trainer = FakeTrainer()
    jobs = JobManager(trainer)
    before = jobs.snapshot().version
    jobs.start(config(tmp_path))
    trainer.release.set()
    jobs.wait(10)
    assert jobs.snapshot().version > before + 2


def test_real_training_of_the_tiny_model(tmp_path, tiny_model_dir):
    jobs = JobManager()
    run = tmp_path / "runs" / "tiny"
    jobs.start(QAConfig(model_name_or_path=str(tiny_model_dir), train_file="sample", validation_file="sample",
                        output_dir=str(run), max_steps=3, per_device_train_batch_size=4, max_eval_samples=6,
                        logging_steps=1, max_seq_length=128, doc_stride=32))
    assert jobs.wait(120)
    snapshot = jobs.snapshot()
    assert snapshot.status == "finished", snapshot.message
    assert [step for step, _ in snapshot.losses] == [1, 2, 3]
    assert (run / RECORDS_FILE).exists()
    assert [value for _, value in model_choices(tmp_path / "runs")] == ["embedded", str(run)]


def test_the_job_moves_at_every_step_and_its_history_only_at_logged_ones(tmp_path, tiny_model_dir):
    """The bar and /training_status follow every optimizer step; the plot, drawn from the losses and evaluations,
    is redrawn only when those change (history_version), not at every step."""
    seen: list[tuple[str, JobSnapshot]] = []

    def watched(config, callback, should_stop) -> TrainResult:
        return train(config, callback=lambda event: callback(event) or seen.append((event.kind, jobs.snapshot())),
                     should_stop=should_stop)

    jobs = JobManager(watched)
    jobs.start(QAConfig(model_name_or_path=str(tiny_model_dir), train_file="sample", output_dir=str(tmp_path / "run"),
                        max_steps=3, per_device_train_batch_size=4, logging_steps=2, max_seq_length=128,
                        doc_stride=32, max_train_samples=16))
    assert jobs.wait(120) and jobs.snapshot().status == "finished", jobs.snapshot().message
    stepped = [s for kind, s in seen if kind in STEP_KINDS]
    assert [s.step for s in stepped] == [1, 2, 3] and all(s.message == "training" for s in stepped)
    assert all(s.windows_per_s and s.eta_s is not None for s in stepped)
    assert [[step for step, _ in s.losses] for s in stepped] == [[], [2], [2, 3]]
    assert [s.history_version == s.version for s in stepped] == [False, True, True]  # step 1: no plot to redraw


def tiny_job(model_dir: Path, data: Path, output_dir: Path, **overrides) -> QAConfig:
    return QAConfig(model_name_or_path=str(model_dir), train_file=str(data), output_dir=str(output_dir),
                    max_seq_length=64, doc_stride=16, max_query_length=16, per_device_train_batch_size=2,
                    max_steps=20, logging_steps=1, save_steps=2, **overrides)


def messages_of(jobs: JobManager, config: QAConfig, cancel_at: int | None = None) -> list[str]:
    """Every message the job shows, after each of its training's events and at its end; cancel_at: the step at
    which the Cancel button is pressed."""
    seen: list[str] = []

    def heard(config, callback, should_stop) -> TrainResult:
        def listen(event: ProgressEvent) -> None:
            callback(event)
            seen.append(jobs.snapshot().message)
            if event.kind in STEP_KINDS and event.step == cancel_at:
                jobs.cancel()
        return train(config, callback=listen, should_stop=should_stop)

    jobs._trainer = heard
    jobs.start(config)
    assert jobs.wait(120)
    return [*seen, jobs.snapshot().message]


def test_a_job_s_messages_use_the_web_s_words_not_train_py_s_flags(tmp_path, tiny_model_dir, overflowing_model_dir):
    """The Train tab and /training_status name the form's fields and its Resume, never train.py's options: a
    cancelled job, and one that diverges (the form has no --learning_rate, and Resume takes no options)."""
    data = write_tiny_squad(tmp_path / "d.json")
    jobs = JobManager()
    cancelled = messages_of(jobs, tiny_job(tiny_model_dir, data, tmp_path / "stopped"), cancel_at=1)
    assert jobs.snapshot().status == "cancelled" and not [m for m in cancelled if "--" in m], cancelled
    diverged = messages_of(jobs, tiny_job(overflowing_model_dir, data, tmp_path / "nan", bf16=False))
    assert jobs.snapshot().status == "failed" and "diverged" in diverged[-1], diverged[-1]
    # bf16 off is offered only after a run in bf16 (tests/test_divergence.py has both)
    assert "lower learning_rate" in diverged[-1] and "bf16" not in diverged[-1]
    assert not [m for m in diverged if "--" in m], diverged


def test_evaluation_data_without_answers_is_refused_in_the_web_s_words(tmp_path, tiny_model_dir):
    """SQuAD 2.0 data evaluated as v1.1 has nothing to score: the Train form's switch is version_2_with_negative."""
    data = write_squad(tmp_path / "v2.json", [{"context": "Mara kept bees on the hill.", "qas": [
        {"id": "a", "question": "Who sold the honey?", "answers": [], "is_impossible": True}]}])
    jobs = JobManager()
    said = messages_of(jobs, tiny_job(tiny_model_dir, data, tmp_path / "run", validation_file=str(data)))
    assert jobs.snapshot().status == "failed" and "nothing to score" in said[-1], said[-1]
    assert "turn version_2_with_negative on" in said[-1] and not [m for m in said if "--" in m], said


def test_data_that_is_not_valid_unicode_fails_the_job_naming_where(tmp_path, tiny_model_dir):
    """Found by a tester: a context holding the JSON escape \\ud800 failed the job as 'TextInputSequence must be
    str', the tokenizer's words, naming neither the file nor the record."""
    data = write_squad(tmp_path / "d.json", [{"context": "Mara kept \ud800 bees.", "qas": [
        {"id": "a", "question": "Who kept bees?", "answers": [{"text": "Mara", "answer_start": 0}]}]}])
    jobs = JobManager()
    said = messages_of(jobs, tiny_job(tiny_model_dir, data, tmp_path / "run"))
    assert jobs.snapshot().status == "failed", said
    assert "d.json: data[0].paragraphs[0]: field 'context' is not valid Unicode (an unpaired surrogate at " \
           "character 10)" in said[-1], said[-1]


def big_squad(path: Path, questions: int) -> Path:
    qas = [{"id": str(i), "question": "Who?", "answers": [{"text": "Fresnel", "answer_start": 0}]}
           for i in range(questions)]
    path.write_text(json.dumps({"data": [{"paragraphs": [{"context": "Fresnel made it.", "qas": qas}]}]}))
    return path


def test_a_data_file_over_the_limit_fails_the_job_before_it_is_read(tmp_path, tiny_model_dir):
    data = big_squad(tmp_path / "big.json", 5000)
    jobs = JobManager(max_file_bytes=100_000)
    jobs.start(QAConfig(model_name_or_path=str(tiny_model_dir), train_file=str(data), output_dir=str(tmp_path / "r")))
    assert jobs.wait(60)
    snapshot = jobs.snapshot()
    assert snapshot.status == "failed" and "over this server's limit of 0.1 MB" in snapshot.message


def test_cancel_stops_a_job_while_it_loads_its_data(tmp_path, tiny_model_dir):
    data = big_squad(tmp_path / "big.json", 300_000)
    jobs = JobManager()
    removed = threading.Event()
    jobs.start(QAConfig(model_name_or_path=str(tiny_model_dir), train_file=str(data), output_dir=str(tmp_path / "r")),
               on_end=removed.set)
    jobs.cancel()
    started = time.monotonic()
    assert jobs.wait(30)
    assert time.monotonic() - started < 10 and removed.is_set()
    assert jobs.snapshot().status == "cancelled" and jobs.snapshot().message == "cancelled while loading the data"


def test_under_window_limits_a_cancel_while_the_data_loads_refuses_the_start(tmp_path, tiny_model_dir):
    """A start that waits for the data to be cut (window limits) and is cancelled meanwhile never started: start()
    raises, saying so, and the job is as before, not 'started' and then cancelled."""
    data = big_squad(tmp_path / "big.json", 300_000)
    jobs = JobManager(max_windows=10)
    outcome: list[BaseException | JobSnapshot] = []

    def start() -> None:
        try:
            outcome.append(jobs.start(QAConfig(model_name_or_path=str(tiny_model_dir), train_file=str(data),
                                               output_dir=str(tmp_path / "r"))))
        except JobRefused as err:
            outcome.append(err)
    thread = threading.Thread(target=start)
    thread.start()
    time.sleep(0.5)
    jobs.cancel()
    thread.join(30)
    assert len(outcome) == 1 and isinstance(outcome[0], JobRefused), outcome
    assert str(outcome[0]).endswith("big.json: loading cancelled"), outcome[0]
    assert jobs.snapshot().status == "idle" and jobs.wait(10)


class EvaluatingTrainer:
    """Three steps of 0.1 s; an evaluation of 0.2 s after the second. Notes the job's ETA after each step."""

    def __init__(self) -> None:
        self.jobs: JobManager | None = None
        self.etas: list[float | None] = []

    def __call__(self, config, callback, should_stop) -> TrainResult:
        for step in (1, 2, 3):
            time.sleep(0.1)
            callback(ProgressEvent("step", step, 4, step / 2, loss=1.0, windows_per_s=10.0, eta_s=0.1 * (4 - step)))
            self.etas.append(self.jobs.snapshot().eta_s)
            if step == 2:
                time.sleep(0.2)
                callback(ProgressEvent("eval", 2, 4, 1.0, metrics={"exact_match": 1.0, "f1": 2.0}))
        return TrainResult(config.output_dir, "finished", 4, {}, 1.0, 40)


def test_the_eta_counts_evaluation_time_once_there_was_one(tmp_path):
    trainer = EvaluatingTrainer()
    trainer.jobs = jobs = JobManager(trainer)
    jobs.start(config(tmp_path))
    assert jobs.wait(10)
    # Before any evaluation, the trainer's estimate (training time only); after one, the wall-clock pace since
    # the first step: 0.1 + 0.2 + 0.1 s for two steps, so about 0.2 s for the one step left (not 0.1).
    assert trainer.etas[:2] == [pytest.approx(0.3), pytest.approx(0.2)]
    assert 0.14 < trainer.etas[2] < 1.0  # generous above: a loaded machine oversleeps


def test_a_job_that_fails_before_writing_anything_leaves_no_empty_run_folder(tmp_path, tiny_model_dir):
    missing = str(tmp_path / "missing.json")  # fails as a hub name would, without the hub's network timeouts
    jobs, folder = JobManager(), new_run_dir(tmp_path, "tiny")
    jobs.start(QAConfig(model_name_or_path=str(tiny_model_dir), train_file=missing, output_dir=str(folder),
                        max_steps=1))
    assert jobs.wait(60) and jobs.snapshot().status == "failed"
    assert not folder.exists() and list(tmp_path.iterdir()) == []
    kept = tmp_path / "kept"  # a folder that holds anything (a resumed run, the quick split) is never touched
    (kept / "note.txt").parent.mkdir()
    (kept / "note.txt").write_text("x", encoding="utf-8")
    jobs.start(QAConfig(model_name_or_path=str(tiny_model_dir), train_file=missing, output_dir=str(kept), max_steps=1))
    assert jobs.wait(60) and (kept / "note.txt").is_file()


STOPPING_SERVER = """
import sys, time
from qa_core.config import QAConfig
from qa_core.jobs import JobManager
jobs = JobManager()
jobs.start(QAConfig(model_name_or_path=sys.argv[1], train_file="sample", validation_file=None,
                    output_dir=sys.argv[2], max_steps=100_000, per_device_train_batch_size=2,
                    max_seq_length=128, doc_stride=32, save_steps=100_000))
while jobs.snapshot().step < 2:
    time.sleep(0.05)
"""  # the server's main thread ends (Ctrl-C, a restart) while its training job runs


def test_a_server_that_stops_leaves_its_job_resumable(tiny_model_dir, tmp_path):
    """Nothing is lost when the server process ends mid-job: the job stops after its step with a checkpoint, and
    the process exits cleanly instead of killing the job's thread inside torch (which aborted it)."""
    import subprocess
    import sys

    from qa_core.run_files import find_checkpoint, read_run_info

    run = tmp_path / "run"
    done = subprocess.run([sys.executable, "-c", STOPPING_SERVER, str(tiny_model_dir), str(run)],
                          cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert read_run_info(run).status == "cancelled" and find_checkpoint(run) is not None


@pytest.mark.parametrize("end", ["cancelled", "finished", "failed"])
def test_a_job_that_has_ended_has_no_eta(tmp_path, end):
    """/training_status said "cancelled" with seconds left to go."""
    trainer = FakeTrainer(fail=ValueError("bad data") if end == "failed" else None)
    jobs = JobManager(trainer)
    jobs.start(config(tmp_path))
    deadline = time.monotonic() + 10
    while jobs.snapshot().eta_s is None:  # its step event's estimate
        assert time.monotonic() < deadline
        time.sleep(0.01)
    jobs.cancel() if end == "cancelled" else trainer.release.set()
    assert jobs.wait(10)
    assert jobs.snapshot().status == end and jobs.snapshot().eta_s is None


def test_a_job_whose_clean_up_fails_still_ends_and_the_next_can_start(tmp_path, caplog):
    """Found in review: an on_end that raised (an upload that could not be removed) killed the job's thread before
    its end was recorded, so the job stayed active and every later start was refused until the server restarted;
    so did a why_not_resumable that raised."""
    def unremovable() -> None:
        raise PermissionError(13, "Permission denied", "upload.json")

    def unreadable() -> str:
        raise OSError(5, "Input/output error")

    trainer = FakeTrainer()
    manager = JobManager(trainer)
    manager.start(config(tmp_path), on_end=unremovable)
    trainer.release.set()
    assert manager.wait(5)
    assert (manager.snapshot().status, manager.snapshot().active) == ("finished", False)
    assert "upload.json" in caplog.text
    trainer.release.clear()
    manager.start(config(tmp_path).replace(output_dir=str(tmp_path / "next")), on_end=unremovable,
                  why_not_resumable=unreadable)  # not refused as busy
    manager.cancel()
    assert manager.wait(5)
    assert (manager.snapshot().status, manager.snapshot().message) == ("cancelled", "cancelled")
