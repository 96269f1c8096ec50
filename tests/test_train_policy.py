"""A public server's caps on training options (train_policy.check_limits), each refused naming the option."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from qa_core.config import QAConfig
from qa_core.progress import read_history
from qa_core.run_files import HISTORY_FILE, has_model, read_run_info
from qa_core.service import QAService
from qa_core.settings import Settings, TrainLimits
from qa_core.train_policy import check_limits, window_cost
from tests.conftest import write_squad

PUBLIC = Settings(public=True)


def test_dataloader_workers_are_capped_on_a_public_server():
    assert check_limits(QAConfig(dataloader_num_workers=2), PUBLIC).dataloader_num_workers == 2
    with pytest.raises(ValueError, match=r"dataloader_num_workers 64 is over this server's limit of 2 "
                                         r"\(QA_MAX_DATALOADER_WORKERS\)"):
        check_limits(QAConfig(dataloader_num_workers=64), PUBLIC)
    assert check_limits(QAConfig(dataloader_num_workers=64), Settings()).dataloader_num_workers == 64  # local


def test_a_stride_that_multiplies_windows_is_refused_on_a_public_server():
    default = QAConfig()
    assert window_cost(default) < TrainLimits().window_cost  # the defaults train anywhere
    check_limits(QAConfig(max_seq_length=128, doc_stride=32), PUBLIC)
    # 384 - 64 - 4 special tokens leave 316 tokens of context a window; a stride of 315 advances each window by one
    # token, so every context token is computed in 384 windows' worth of tokens
    creeping = QAConfig(max_seq_length=384, doc_stride=315, max_query_length=64)
    assert window_cost(creeping) == 384
    with pytest.raises(ValueError, match=r"doc_stride 315 .* advances each window by 1 token.* 384 tokens computed "
                                         r"per context token; this server allows up to 8 tokens per context token "
                                         r"\(QA_MAX_WINDOW_COST\): lower doc_stride"):
        check_limits(creeping, PUBLIC)
    assert check_limits(creeping, Settings()) == creeping  # a local user trains what they ask for


def test_a_window_with_no_room_left_for_context_is_refused():
    tight = QAConfig(max_seq_length=70, doc_stride=1, max_query_length=64)  # 2 context tokens after 4 specials
    with pytest.raises(ValueError, match="doc_stride 1 .* 70 tokens computed per context token"):
        check_limits(tight, PUBLIC)
    no_room = QAConfig(max_seq_length=384, doc_stride=316, max_query_length=64)  # room for BERT's 3, not RoBERTa's 4
    with pytest.raises(ValueError, match="doc_stride 316 .* leaves a window no context to advance by"):
        check_limits(no_room, PUBLIC)


def test_the_new_limits_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("QA_MAX_DATALOADER_WORKERS", "0")
    monkeypatch.setenv("QA_MAX_WINDOW_COST", "2.5")
    limits = TrainLimits.from_env()
    assert (limits.dataloader_workers, limits.window_cost) == (0, 2.5)


def test_checkpoints_a_job_writes_by_save_steps_are_capped_on_a_public_server():
    """A checkpoint is the model and its optimizer's state: save_steps=1 would write one at every step."""
    with pytest.raises(ValueError, match=r"save_steps 1 writes a checkpoint up to 2,000 times in a job of "
                                         r"2,000 steps; this server allows it at most 20 times a job "
                                         r"\(QA_MAX_CHECKPOINTS\): raise save_steps to 96 or more"):
        check_limits(QAConfig(save_steps=1), PUBLIC)
    with pytest.raises(ValueError, match=r"save_steps 4 writes a checkpoint up to 25 times in a job of 100 steps"):
        check_limits(QAConfig(max_steps=100, save_steps=4), PUBLIC)
    assert check_limits(QAConfig(max_steps=100, save_steps=5), PUBLIC).save_steps == 5
    assert check_limits(QAConfig(max_steps=20, save_steps=1), PUBLIC).save_steps == 1  # a short job may save often
    assert check_limits(QAConfig(), PUBLIC) == QAConfig()  # the defaults train anywhere
    assert check_limits(QAConfig(save_steps=1), Settings()).save_steps == 1  # a local user saves what they ask


def test_torch_compile_is_refused_on_a_public_server():
    with pytest.raises(ValueError, match=r"torch_compile is off on this server: compiling takes minutes of the "
                                         r"shared CPU \(QA_ALLOW_TORCH_COMPILE\)"):
        check_limits(QAConfig(torch_compile=True), PUBLIC)
    allowed = Settings(public=True, train_limits=TrainLimits(torch_compile=True))
    assert check_limits(QAConfig(torch_compile=True), allowed).torch_compile
    assert check_limits(QAConfig(torch_compile=True), Settings()).torch_compile


def test_the_span_search_is_capped_on_a_public_server():
    """n_best_size x n_best_size candidates per window, kept when shorter than max_answer_length: both large make
    every evaluation (and every answer of the run) search many times the spans."""
    with pytest.raises(ValueError, match=r"n_best_size 512 is over this server's limit of 50 \(QA_MAX_N_BEST_SIZE\)"):
        check_limits(QAConfig(n_best_size=512), PUBLIC)
    with pytest.raises(ValueError, match=r"max_answer_length 512 is over this server's limit of 100 "
                                         r"\(QA_MAX_ANSWER_LENGTH\)"):
        check_limits(QAConfig(max_answer_length=512), PUBLIC)
    assert check_limits(QAConfig(n_best_size=50, max_answer_length=100), PUBLIC).n_best_size == 50
    assert check_limits(QAConfig(n_best_size=512, max_answer_length=512), Settings()).n_best_size == 512


def test_loss_reports_a_job_makes_by_logging_steps_are_capped_on_a_public_server():
    """Every report redraws each watching visitor's loss plot from the run's whole history."""
    with pytest.raises(ValueError, match=r"logging_steps 1 reports the loss up to 2,000 times in a job of 2,000 "
                                         r"steps; this server allows it at most 500 times a job "
                                         r"\(QA_MAX_LOSS_REPORTS\): raise logging_steps to 4 or more"):
        check_limits(QAConfig(logging_steps=1), PUBLIC)
    assert check_limits(QAConfig(max_steps=100, logging_steps=1), PUBLIC).logging_steps == 1


def test_the_newer_limits_come_from_the_environment(monkeypatch):
    for variable, value in (("QA_MAX_CHECKPOINTS", "3"), ("QA_ALLOW_TORCH_COMPILE", "1"),
                            ("QA_MAX_N_BEST_SIZE", "10"), ("QA_MAX_ANSWER_LENGTH", "40"),
                            ("QA_MAX_LOSS_REPORTS", "7"), ("QA_MAX_TRAIN_WINDOWS", "900"),
                            ("QA_MAX_EVAL_WINDOWS", "90")):
        monkeypatch.setenv(variable, value)
    limits = TrainLimits.from_env()
    assert (limits.checkpoints, limits.torch_compile, limits.n_best_size, limits.max_answer_length,
            limits.loss_reports, limits.windows, limits.eval_windows) == (3, True, 10, 40, 7, 900, 90)


def test_a_public_job_by_epochs_counts_to_the_step_cap_it_stops_at(tmp_path, tiny_model_dir):
    """Found by a tester (QA_MAX_TRAIN_STEPS=5, max_steps null): the job's total_steps said 8, the steps its epochs
    make, and its bar and ETA counted to 8, but it stopped at 5. Its total is the steps it does, from its first
    event to run.json, and the job finishes there (its learning rate decays over them)."""
    service = QAService(Settings(tmp_path / "runs", str(tiny_model_dir), training_enabled=True, fast_inference=False,
                                 public=True, train_limits=TrainLimits(max_steps=5)))
    started = service.start_json("", "sample", "", {"num_train_epochs": 2, "max_train_samples": 8,
                                                    "per_device_train_batch_size": 2, "max_eval_samples": 2,
                                                    "max_seq_length": 128, "doc_stride": 32, "logging_steps": 1})
    assert started["total_steps"] == 5  # a public start returns at the job's first event
    assert service.jobs.wait(120)
    job = service.job_json()
    assert (job["status"], job["step"], job["total_steps"]) == ("finished", 5, 5), job["message"]
    assert job["message"] == "finished at this server's limit of 5 steps"
    run = tmp_path / "runs" / job["run"]
    info = read_run_info(run)
    assert (info.status, info.step, info.total_steps) == ("finished", 5, 5) and has_model(run)
    history = read_history(run / HISTORY_FILE)
    assert [(e.step, e.epoch < 2) for e in history if e.metrics] == [(5, True)]  # evaluated at its end, before 2 epochs
    assert [e.learning_rate for e in history if e.step == 5 and e.loss is not None] == [0.0]  # the schedule's end


def test_a_public_job_by_steps_finishes_at_the_epoch_cap(tmp_path, tiny_model_dir):
    """max_steps overrides num_train_epochs: two training questions under 40 steps would make 40 epochs, each
    ending in an evaluation and a checkpoint, past QA_MAX_EPOCHS however few num_train_epochs says."""
    service = QAService(Settings(tmp_path / "runs", str(tiny_model_dir), training_enabled=True, fast_inference=False,
                                 public=True, train_limits=TrainLimits(epochs=3)))
    service.start_json("", "sample", "", {"max_steps": 40, "max_train_samples": 2, "per_device_train_batch_size": 64,
                                          "max_eval_samples": 2, "max_seq_length": 384, "doc_stride": 32,
                                          "num_train_epochs": 1})
    assert service.jobs.wait(120)
    job = service.job_json()
    assert job["status"] == "finished" and job["epoch"] == 3.0 and job["total_steps"] == 3, job["message"]
    assert job["message"] == "finished at this server's limit of 3 epochs"
    history = read_history(tmp_path / "runs" / job["run"] / HISTORY_FILE)
    assert len([event for event in history if event.metrics]) == 3
    with pytest.raises(ValueError, match=rf"run {job['run']} has finished; nothing to resume"):
        service.resume_config(job["run"])


@pytest.mark.parametrize("limits, what, variable", [(TrainLimits(windows=200), "training", "QA_MAX_TRAIN_WINDOWS"),
                                                     (TrainLimits(eval_windows=200), "evaluation",
                                                      "QA_MAX_EVAL_WINDOWS")])
def test_a_public_start_over_its_window_limits_is_refused_before_it_is_announced(tmp_path, tiny_model_dir, limits,
                                                                                 what, variable):
    """Contexts under QA_MAX_CONTEXT_CHARS shared by many questions pass every check of the config, yet each
    question makes all its context's windows: the start waits for the job to cut them (refused while cutting, not
    after holding them all) and is refused, naming the count and the limit; the job never was, and the upload stays
    for another try with fewer questions. Evaluation data has a limit of its own: a job evaluates every epoch."""
    context = " ".join(f"w{i}" for i in range(1500))
    questions = [{"id": f"q{i}", "question": f"Which is w{i}?",
                  "answers": [{"text": f"w{i}", "answer_start": context.index(f" w{i} ") + 1}]} for i in range(1, 41)]
    data = write_squad(tmp_path / "shared.json", [{"context": context, "qas": questions}])
    service = QAService(Settings(tmp_path / "runs", str(tiny_model_dir), training_enabled=True, fast_inference=False,
                                 public=True, train_limits=limits))
    # a public server evaluates an upload on itself: the other source's windows pass, this one's do not
    config = service.train_config("", str(data), "", {"max_steps": 2}, upload=True)
    with pytest.raises(ValueError, match=rf"{what} data: 40 questions make ([\d,]+) windows; this server cuts at "
                                         rf"most 200 windows from each {what} data source \({variable}\)") as refused:
        service.start(config, str(data))
    assert int(re.search(r"make ([\d,]+) windows", str(refused.value))[1].replace(",", "")) > 200  # the count
    assert service.job_json()["status"] == "idle" and list((tmp_path / "runs").iterdir()) == []
    assert data.is_file()


def test_a_resumed_run_keeps_the_folder_as_it_was_named(tmp_path, monkeypatch) -> None:
    """Found by trying the app: a new job's status read "Run folder: runs/<run>", the same run resumed read the
    server's absolute path (the folder as the run picker resolved it)."""
    from qa_core.train_policy import resume_config
    from tests.tiny_runs import fake_run

    monkeypatch.chdir(tmp_path)
    folder = fake_run(tmp_path / "runs" / "20250101-000000-x", output_dir="runs/20250101-000000-x")
    settings = Settings(Path("runs"), "embedded", training_enabled=True, fast_inference=False)
    assert resume_config(folder, settings).output_dir == "runs/20250101-000000-x"
    moved = fake_run(tmp_path / "runs" / "20250101-000000-y", output_dir="elsewhere/y")  # copied in: its own path
    assert resume_config(moved, settings).output_dir == str(moved)
