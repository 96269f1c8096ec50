"""Fine-tuning end to end on the tiny BERT: overfitting, resume after a kill, cancellation, the CLI."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from qa_core import cli as qa_cli
from qa_core.config import QAConfig
from qa_core.data import load_examples
from qa_core.error_analysis import read_records
from qa_core.evaluation import run_evaluation
from qa_core.inference import answer_examples
from qa_core.modeling import load_model
from qa_core.precision import resolve_bf16
from qa_core.progress import ProgressEvent, read_history
from qa_core.run_files import HISTORY_FILE, STATE_FILE, RunRefused, find_checkpoint, read_run_info
from qa_core.runtime import stop_on_signals
from qa_core.training import no_room_error, train
from tests.conftest import write_squad
from tests.overfit_data import write_tiny_squad
from tests.tiny_runs import assert_same_weights, cli, tiny_config


def test_overfits_a_handful_of_examples(tiny_model_dir: Path, tmp_path: Path) -> None:
    events: list[ProgressEvent] = []
    result = train(tiny_config(tiny_model_dir, write_tiny_squad(tmp_path / "d.json"), tmp_path / "run"),
                   callback=events.append)
    assert result.status == "finished" and result.metrics["exact_match"] == 100.0
    run = tmp_path / "run"
    assert (run / "model" / "model.safetensors").exists() and (run / "model" / "tokenizer.json").exists()
    assert json.loads((run / "eval_predictions.json").read_text())["q3"] == "Mara"
    info = read_run_info(run)
    assert info.status == "finished" and info.metrics["f1"] == 100.0 and info.data_fingerprint["train"]
    assert len(info.history) == 15  # evaluated after each epoch
    assert info.config["bf16"] is resolve_bf16(None, torch.device("cpu"))  # what ran, not "default"
    kinds = {e.kind for e in events}
    assert {"start", "step", "eval", "checkpoint", "done"} <= kinds
    step = next(e for e in events if e.kind == "step")
    assert step.loss > 0 and step.learning_rate > 0 and step.windows_per_s > 0 and step.grad_norm > 0
    assert step.eta_s >= 0


def test_cancel_between_steps_then_resume(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = write_tiny_squad(tmp_path / "d.json")
    config = tiny_config(tiny_model_dir, data, tmp_path / "run", num_train_epochs=2, validation_file=None)
    asked: list[int] = []
    result = train(config, should_stop=lambda: asked.append(1) or len(asked) >= 3)  # before step 1, after each
    assert result.status == "cancelled" and result.step == 2
    assert read_run_info(tmp_path / "run").status == "cancelled"
    resumed = train(config.replace(resume=True))
    assert resumed.status == "finished" and resumed.step == 6


def test_every_optimizer_step_moves_the_progress_and_a_stop_lands_on_the_step_shown(tiny_model_dir: Path,
                                                                                     tmp_path: Path) -> None:
    """The progress bar and the web UI hear every optimizer step, not only the logged ones: a stop asked once step 2
    shows stops at step 2. The loss (a device sync on a GPU) and history.jsonl stay at logging_steps."""
    config = tiny_config(tiny_model_dir, write_tiny_squad(tmp_path / "d.json"), tmp_path / "run", num_train_epochs=2,
                         logging_steps=4, validation_file=None)
    events: list[ProgressEvent] = []
    assert train(config, callback=events.append).step == 6
    moved = [e for e in events if e.kind in ("advance", "step")]
    assert [e.step for e in moved] == [1, 2, 3, 4, 5, 6]
    assert all(e.windows_per_s > 0 and e.eta_s >= 0 for e in moved)
    assert [e.step for e in events if e.loss is not None] == [4, 6]
    assert [e.step for e in read_history(tmp_path / "run" / HISTORY_FILE)] == [4, 6]
    shown: list[int] = []
    stopped = train(config.replace(output_dir=str(tmp_path / "stopped")), callback=lambda e: shown.append(e.step),
                    should_stop=lambda: bool(shown) and shown[-1] >= 2)
    assert stopped.status == "cancelled" and stopped.step == 2


@pytest.mark.parametrize("kind, overrides", [("eval", dict(max_steps=5)),  # 3 steps an epoch: evaluated at 3
                                              ("checkpoint", dict(max_steps=5, save_steps=3, validation_file=None))])
def test_a_stop_asked_during_an_evaluation_or_a_checkpoint_stops_at_that_save_point(kind: str, overrides: dict,
                                                                                  tiny_model_dir: Path,
                                                                                  tmp_path: Path) -> None:
    """A stop asked while step 3 is evaluated or saved trains no further step: the run is cancelled at step 3, its
    checkpoint, and --resume continues it to the weights of an uninterrupted run."""
    config = tiny_config(tiny_model_dir, write_tiny_squad(tmp_path / "d.json"), tmp_path / "run", **overrides)
    events: list[ProgressEvent] = []
    result = train(config, callback=events.append, should_stop=lambda: any(e.kind == kind for e in events))
    assert result.status == "cancelled" and result.step == 3
    assert [e.step for e in events if e.kind == "checkpoint"] == [3]  # saved once, not again to cancel
    info = read_run_info(tmp_path / "run")
    assert info.status == "cancelled" and info.step == 3
    assert torch.load(find_checkpoint(tmp_path / "run") / STATE_FILE, weights_only=True)["state"]["step"] == 3
    assert train(config.replace(resume=True)).step == 5
    train(config.replace(output_dir=str(tmp_path / "straight")))
    assert_same_weights(tmp_path / "run", tmp_path / "straight")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_loading_stops_before_the_first_step_and_resumes_exactly(signum: int, tiny_model_dir: Path,
                                                                                tmp_path: Path) -> None:
    """Ctrl-C or SIGTERM before the first step (the model and data still loading): no step is trained, and the run
    keeps a checkpoint at step 0 that --resume continues to the same weights as an uninterrupted run."""
    data = write_tiny_squad(tmp_path / "d.json")
    config = tiny_config(tiny_model_dir, data, tmp_path / "run", num_train_epochs=1, validation_file=None)
    with stop_on_signals() as stop:
        os.kill(os.getpid(), signum)  # arrives before train() has loaded anything
        result = train(config, should_stop=stop)
    assert stop.signum == signum
    assert result.status == "cancelled" and result.step == 0
    info = read_run_info(tmp_path / "run")
    assert info.status == "cancelled" and info.step == 0 and find_checkpoint(tmp_path / "run") is not None
    assert not [e for e in read_history(tmp_path / "run" / HISTORY_FILE) if e.kind == "step"]
    with stop_on_signals() as stop:  # a resumed run stopped while loading keeps its checkpoint as it was
        os.kill(os.getpid(), signum)
        assert train(config.replace(resume=True), should_stop=stop).step == 0
    assert read_run_info(tmp_path / "run").status == "cancelled"
    assert train(config.replace(resume=True)).status == "finished"
    assert train(config.replace(output_dir=str(tmp_path / "straight"))).status == "finished"
    assert_same_weights(tmp_path / "run", tmp_path / "straight")


def test_the_time_left_after_resuming_a_checkpoint_without_its_time_goes_by_this_session_s_pace(
        tiny_model_dir: Path, tmp_path: Path) -> None:
    """A checkpoint from before train_seconds was recorded read as steps done in no time: the estimate said
    seconds for a run minutes from its end. Without it, the pace is this session's, as a fresh run's."""
    config = tiny_config(tiny_model_dir, write_tiny_squad(tmp_path / "d.json"), tmp_path / "run", num_train_epochs=2,
                         validation_file=None)
    asked: list[int] = []
    assert train(config, should_stop=lambda: asked.append(1) or len(asked) >= 4).step == 3
    state_file = find_checkpoint(tmp_path / "run") / STATE_FILE
    saved = torch.load(state_file, weights_only=True)
    older = ("step", "epoch", "batch_in_epoch", "history")  # all an older version's checkpoint held
    saved["state"] = {name: value for name, value in saved["state"].items() if name in older}
    torch.save(saved, state_file)
    events: list[ProgressEvent] = []
    assert train(config.replace(resume=True), callback=events.append).status == "finished"
    paced = [e for e in events if e.kind in ("step", "advance") and e.step < e.total_steps]
    assert paced
    for event in paced:  # eta = seconds / steps * steps left, windows_per_s = windows / seconds
        windows_a_step = event.eta_s * event.windows_per_s / (event.total_steps - event.step)
        assert 1 <= windows_a_step <= config.per_device_train_batch_size, event


def test_resuming_a_finished_run_keeps_the_time_it_trained(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Nothing left to train: run.json and the model card keep the training time and hardware, not 0 s."""
    config = tiny_config(tiny_model_dir, write_tiny_squad(tmp_path / "d.json"), tmp_path / "run", max_steps=2,
                         validation_file=None)
    train(config)
    before, card = read_run_info(tmp_path / "run"), (tmp_path / "run" / "model" / "README.md").read_text()
    assert before.train_seconds > 0
    again = train(config.replace(resume=True))
    assert again.status == "finished" and again.step == 2
    after = read_run_info(tmp_path / "run")
    assert (after.status, after.train_seconds, after.hardware) == ("finished", before.train_seconds, before.hardware)
    assert (tmp_path / "run" / "model" / "README.md").read_text() == card


def test_a_resumed_run_counts_the_training_time_of_every_session(tiny_model_dir: Path, tmp_path: Path) -> None:
    """run.json and the model card say how long the model trained: a cancelled session's time, then the resumed
    one's, not the last session's alone."""
    config = tiny_config(tiny_model_dir, write_tiny_squad(tmp_path / "d.json"), tmp_path / "run", num_train_epochs=2,
                         validation_file=None)
    asked: list[int] = []
    first = train(config, should_stop=lambda: asked.append(1) or len(asked) >= 3)  # before step 1, after each
    assert first.status == "cancelled" and first.step == 2 and first.train_seconds > 0
    second = train(config.replace(resume=True))
    assert second.status == "finished" and second.train_seconds > 0
    total = read_run_info(tmp_path / "run").train_seconds
    assert total == pytest.approx(first.train_seconds + second.train_seconds) == second.total_train_seconds
    assert f"- training time: {total:.0f} s" in (tmp_path / "run" / "model" / "README.md").read_text()


def test_a_resume_asking_for_fewer_steps_than_done_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Else the run would be 'finished' at step 2 of 1, its model never evaluated, its train time 0 s."""
    data = write_tiny_squad(tmp_path / "d.json")
    config = tiny_config(tiny_model_dir, data, tmp_path / "run", num_train_epochs=2)
    asked: list[int] = []
    assert train(config, should_stop=lambda: asked.append(1) or len(asked) >= 3).step == 2
    with pytest.raises(RunRefused, match=r"the run in .*run has done 2 steps, more than the 1 asked for") as refused:
        train(config.replace(resume=True, max_steps=1))
    assert refused.value.web == ("run run has done 2 steps, more than the 1 its settings ask for (max_steps, "
                                 "num_train_epochs in its run.json); start a new run")
    assert read_run_info(tmp_path / "run").status == "cancelled"
    finished = train(config.replace(resume=True, max_steps=2))  # as many as done: evaluated, as at any last step
    assert finished.status == "finished" and finished.step == 2 and finished.metrics
    assert [h["step"] for h in read_run_info(tmp_path / "run").history] == [2]


def test_a_second_ctrl_c_stops_at_once_and_leaves_a_cancelled_run(tiny_model_dir: Path, tmp_path: Path) -> None:
    """The second signal interrupts the step; run.json says 'cancelled' (not 'failed: KeyboardInterrupt()') and the
    last checkpoint continues it."""
    data = write_tiny_squad(tmp_path / "d.json")
    config = tiny_config(tiny_model_dir, data, tmp_path / "run", num_train_epochs=2, save_steps=1,
                         logging_steps=1, validation_file=None)

    def press_twice_at_step_2(event: ProgressEvent) -> None:
        if event.kind == "step" and event.step == 2:
            os.kill(os.getpid(), signal.SIGINT)  # the first asks for a stop after this step
            os.kill(os.getpid(), signal.SIGINT)  # the second, with Python's own handler back, stops at once

    with pytest.raises(KeyboardInterrupt), stop_on_signals() as stop:
        train(config, callback=press_twice_at_step_2, should_stop=stop)
    info = read_run_info(tmp_path / "run")
    assert info.status == "cancelled" and not info.error
    checkpoint = torch.load(find_checkpoint(tmp_path / "run") / STATE_FILE, weights_only=True)["state"]
    assert info.step == checkpoint["step"] == 1  # run.json says where --resume continues, not the step interrupted
    assert train(config.replace(resume=True)).status == "finished"


def test_refuses_to_overwrite_a_run(tiny_model_dir: Path, tmp_path: Path) -> None:
    config = tiny_config(tiny_model_dir, write_tiny_squad(tmp_path / "d.json"), tmp_path / "run", max_steps=1,
                         validation_file=None)
    train(config)
    with pytest.raises(ValueError, match="already holds"):
        train(config)
    with pytest.raises(ValueError, match="nothing to resume"):
        train(config.replace(output_dir=str(tmp_path / "empty"), resume=True))


def run_cli(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, dict]:
    """train.py's command line in this process (a spawned one loads torch again): exit code and its JSON output."""
    code = qa_cli.main(list(args))
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else {}


def test_killed_cli_run_resumes_and_matches_an_uninterrupted_run(tiny_model_dir: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture) -> None:
    """Only the killed run needs a process of its own; resuming it and the straight run go through the CLI here."""
    data = write_tiny_squad(tmp_path / "d.json")
    common = ["--model_name_or_path", str(tiny_model_dir), "--train_file", str(data), "--validation_file", str(data),
              "--max_seq_length", "64", "--doc_stride", "16", "--max_query_length", "16", "--learning_rate", "1e-2",
              "--per_device_train_batch_size", "1", "--num_train_epochs", "8", "--save_steps", "3", "--seed", "3"]
    killed = subprocess.Popen(cli("train", *common, "--output_dir", str(tmp_path / "killed")),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while find_checkpoint(tmp_path / "killed") is None and time.time() < deadline:
        time.sleep(0.05)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    assert read_run_info(tmp_path / "killed").status == "running"  # died without a word
    code, resumed_out = run_cli(capsys, "train", *common, "--output_dir", str(tmp_path / "killed"), "--resume")
    assert code == 0
    code, straight_out = run_cli(capsys, "train", *common, "--output_dir", str(tmp_path / "straight"))
    assert code == 0
    assert resumed_out["status"] == "finished" and resumed_out["step"] == straight_out["step"] == 40
    assert resumed_out["f1"] == pytest.approx(straight_out["f1"])
    assert resumed_out["train_seconds"] == pytest.approx(read_run_info(tmp_path / "killed").train_seconds, abs=0.05)
    assert (tmp_path / "killed" / "eval_predictions.json").read_text() == \
        (tmp_path / "straight" / "eval_predictions.json").read_text()
    assert_same_weights(tmp_path / "killed", tmp_path / "straight")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_stops_the_cli_with_a_checkpoint_to_resume(signum: int, tiny_model_dir: Path,
                                                                     tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture) -> None:
    """A stop asked by a signal is a cancel: checkpoint at the step's end, run.json says so, --resume continues."""
    data, run = write_tiny_squad(tmp_path / "d.json"), tmp_path / "run"
    common = ["--model_name_or_path", str(tiny_model_dir), "--train_file", str(data), "--validation_file", str(data),
              "--max_seq_length", "64", "--doc_stride", "16", "--max_query_length", "16",
              "--per_device_train_batch_size", "1", "--save_steps", "1000", "--logging_steps", "1",
              "--output_dir", str(run)]
    stopped = subprocess.Popen(cli("train", *common, "--max_steps", "400"), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not read_history(run / HISTORY_FILE) and time.time() < deadline:
        time.sleep(0.05)
    stopped.send_signal(signum)
    stdout, stderr = stopped.communicate(timeout=60)
    assert stopped.returncode == 128 + signum and "Traceback" not in stderr and "--resume" in stderr
    info = read_run_info(run)
    assert info.status == "cancelled" and 0 < info.step < 400 and find_checkpoint(run) is not None
    assert json.loads(stdout)["status"] == "cancelled"
    assert json.loads(stdout)["stopped_by"] == signal.Signals(signum).name
    code, resumed = run_cli(capsys, "train", *common, "--max_steps", str(info.step + 2), "--resume")
    assert code == 0 and resumed["step"] == info.step + 2


class SignalAtEvaluation(logging.Handler):
    """Sends this process `signum` when training logs its evaluation of `step`: a signal that lands mid-evaluation."""

    def __init__(self, signum: int, step: int) -> None:
        super().__init__()
        self.signum, self.step = signum, step

    def emit(self, record: logging.LogRecord) -> None:
        if "exact_match" in record.getMessage() and record.args and record.args[0] == self.step:
            os.kill(os.getpid(), self.signum)


@pytest.mark.parametrize("max_steps, code, status, step", [(4, 143, "cancelled", 3), (3, 0, "finished", 3)])
def test_a_sigterm_during_an_evaluation_stops_the_cli_there_unless_no_step_is_left(
        max_steps: int, code: int, status: str, step: int, tiny_model_dir: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture) -> None:
    """SIGTERM while step 3 (an epoch's end) is evaluated: no step 4, exit 143, --resume continues. At the last step
    the run finishes as it would have, and its output names no signal that stopped nothing."""
    data, run = write_tiny_squad(tmp_path / "d.json"), tmp_path / "run"
    common = ["--model_name_or_path", str(tiny_model_dir), "--train_file", str(data), "--validation_file", str(data),
              "--max_seq_length", "64", "--doc_stride", "16", "--max_query_length", "16",
              "--per_device_train_batch_size", "2", "--output_dir", str(run)]
    caplog.set_level(logging.INFO, logger="qa_core.training")
    sender = SignalAtEvaluation(signal.SIGTERM, 3)
    logging.getLogger("qa_core.training").addHandler(sender)
    try:
        got, out = run_cli(capsys, "train", *common, "--max_steps", str(max_steps))
    finally:
        logging.getLogger("qa_core.training").removeHandler(sender)
    assert (got, out["status"], out["step"]) == (code, status, step)
    assert read_run_info(run).status == status
    assert ("stopped_by" in out) is (status == "cancelled")
    if status == "cancelled":
        assert run_cli(capsys, "train", *common, "--max_steps", str(max_steps), "--resume")[1]["step"] == max_steps


def test_the_cli_says_each_evaluation_once(tiny_model_dir: Path, tmp_path: Path,
                                           capfd: pytest.CaptureFixture,
                                           caplog: pytest.LogCaptureFixture) -> None:
    """Training logs each evaluation's EM/F1; the progress bar wrote the same line again."""
    data = write_tiny_squad(tmp_path / "d.json")  # 5 questions, 2 a batch: 3 steps an epoch
    caplog.set_level(logging.INFO)  # pytest's handler holds the root logger, so basicConfig's level is not set
    assert qa_cli.main(["train", "--model_name_or_path", str(tiny_model_dir), "--train_file", str(data),
                        "--validation_file", str(data), "--output_dir", str(tmp_path / "run"), "--max_steps", "4",
                        "--max_seq_length", "64", "--doc_stride", "16", "--max_query_length", "16",
                        "--per_device_train_batch_size", "2"]) == 0
    stderr = capfd.readouterr().err
    assert re.findall(r"step (\d+): exact_match", stderr) == ["3", "4"], stderr


def test_a_runs_own_scores_are_what_evaluate_and_predict_give_on_its_model(tiny_model_dir: Path,
                                                                           tmp_path: Path) -> None:
    """Training evaluates a bf16 copy made as `train.py evaluate` and `predict` make theirs, so the three agree to
    the last bit (a v2 threshold found on a run's null odds must hold when its model answers)."""
    data = write_tiny_squad(tmp_path / "d.json")
    windows = dict(max_seq_length=64, doc_stride=16, max_query_length=16, bf16=True)
    train(tiny_config(tiny_model_dir, data, tmp_path / "run", max_steps=6, **windows))
    model = tmp_path / "run" / "model"
    run_evaluation(QAConfig(model_name_or_path=str(model), validation_file=str(data),
                            output_dir=str(tmp_path / "eval"), **windows))
    scores = [[(r.example_id, r.score, r.alternatives) for r in read_records(folder / "eval_records.jsonl")]
              for folder in (tmp_path / "run", tmp_path / "eval")]
    assert scores[0] == scores[1]
    predicted = json.loads((tmp_path / "run" / "eval_predictions.json").read_text())
    examples = load_examples(str(data), "validation").examples
    assert answer_examples(load_model(str(model)), examples, QAConfig(**windows)) == predicted


def test_a_run_whose_windows_were_cut_to_its_model_resumes_with_the_same_command(tiny_model_dir: Path,
                                                                                 tmp_path: Path) -> None:
    """run.json keeps the windows as cut to the model's 512 positions; repeating the command asks for 600 again,
    which the same model cuts the same way, while a window the model could take but the run did not use is refused."""
    data = write_tiny_squad(tmp_path / "d.json")
    config = tiny_config(tiny_model_dir, data, tmp_path / "run", max_seq_length=600, max_steps=2, save_steps=1)
    train(config)
    assert read_run_info(tmp_path / "run").config["max_seq_length"] == 512
    assert train(config.replace(max_steps=3, resume=True)).step == 3
    with pytest.raises(ValueError, match=r"--max_seq_length 256 \(run: 512\)"):
        train(config.replace(max_steps=4, resume=True, max_seq_length=256))
    with pytest.raises(RunRefused, match=r"windows differ .*: --doc_stride 32 \(run: 16\)") as refused:
        train(config.replace(max_steps=4, resume=True, doc_stride=32))  # more than the run used: known once loaded
    assert refused.value.web == ("run run: its windows differ from its run.json, as its model takes them: doc_stride "
                                 "32 (run: 16); start a new run")  # the web app's Resume takes no options


def test_a_full_disk_says_how_to_continue_in_train_py_s_words_and_the_web_app_s(tmp_path: Path) -> None:
    err = no_room_error(tmp_path / "run", "No space left on device")
    assert "no room to write" in str(err) and str(err).endswith("continue with --resume")
    assert "no room to write" in err.web and "press Resume" in err.web and "--" not in err.web
    first = no_room_error(tmp_path / "run", "No space left on device", resumable=False)  # before any checkpoint
    assert "--resume" not in str(first) and "Resume" not in first.web and first.web.endswith("start a new run (no checkpoint was kept)")


def test_validation_data_without_answers_is_refused_before_training(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Without --version_2_with_negative nothing in it could be scored: found after an epoch, the epoch is lost."""
    context = "The lighthouse keeper rowed to the island every morning."
    unanswerable = write_squad(tmp_path / "v2-only.json", [{"context": context, "qas": [
        {"id": f"u{n}", "question": q, "answers": [], "is_impossible": True}
        for n, q in enumerate(("Who painted the lighthouse?", "When was it built?"))]}])
    config = tiny_config(tiny_model_dir, write_tiny_squad(tmp_path / "d.json"), tmp_path / "run",
                         validation_file=str(unanswerable), max_steps=2)
    events: list[ProgressEvent] = []
    with pytest.raises(ValueError, match=r"v2-only.json: none of its 2 questions has an answer.*version_2_with_neg"):
        train(config, events.append)
    assert not any(e.kind == "step" for e in events)
    train(config.replace(version_2_with_negative=True))  # the same data scores as SQuAD 2.0


def test_a_window_longer_than_the_model_positions_is_cut_to_fit_for_training(tiny_model_dir: Path,
                                                                            tmp_path: Path) -> None:
    config = tiny_config(tiny_model_dir, write_tiny_squad(tmp_path / "d.json"), tmp_path / "run",
                         max_seq_length=1024, doc_stride=128, max_steps=1)
    assert train(config).status == "finished"
    assert read_run_info(tmp_path / "run").config["max_seq_length"] == 512  # run.json records what was trained


def test_training_into_a_model_folder_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    before = (model / "model.safetensors").read_bytes()
    config = tiny_config(model, write_tiny_squad(tmp_path / "d.json"), model, max_steps=1)
    for overwrite in (False, True):  # --overwrite_output_dir would delete the model it starts from
        with pytest.raises(ValueError, match=f"{model} holds the model being trained from"):
            train(config.replace(overwrite_output_dir=overwrite))
    assert (model / "model.safetensors").read_bytes() == before


def test_overwriting_a_run_clears_its_old_records_first(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = write_tiny_squad(tmp_path / "d.json")
    config = tiny_config(tiny_model_dir, data, tmp_path / "run", max_steps=2, save_steps=1, logging_steps=1)
    train(config)
    assert (tmp_path / "run" / "eval_records.jsonl").exists()
    train(config.replace(validation_file=None, max_steps=1, overwrite_output_dir=True))
    assert not list((tmp_path / "run").glob("eval_*"))  # the old run's evaluation is gone, not left beside
    assert [e.step for e in read_history(tmp_path / "run" / HISTORY_FILE)] == [1]
    assert read_run_info(tmp_path / "run").history == []


@pytest.mark.parametrize("scheduler, decays", [("constant_with_warmup", False), ("cosine", True)])
def test_lr_scheduler_type_shapes_the_learning_rate(tiny_model_dir: Path, tmp_path: Path, scheduler: str,
                                                     decays: bool) -> None:
    events: list[ProgressEvent] = []
    config = tiny_config(tiny_model_dir, write_tiny_squad(tmp_path / "d.json"), tmp_path / "run", num_train_epochs=2,
                         validation_file=None, logging_steps=1, lr_scheduler_type=scheduler)
    train(config, callback=events.append)
    rates = [e.learning_rate for e in events if e.kind == "step"]
    assert rates[0] == pytest.approx(config.learning_rate, rel=0.3)
    assert (rates[-1] < rates[0] / 2) is decays


def test_a_finished_run_s_model_folder_is_hub_ready(tiny_model_dir: Path, tmp_path: Path) -> None:
    """model/ holds config, weights, tokenizer and card, loads with from_pretrained, keeps the base model's
    attention dropout; the run folder's path still names the model everywhere a run is loaded."""
    from huggingface_hub import ModelCard
    from transformers import AutoConfig, AutoModelForQuestionAnswering

    from qa_core.checkpoints import write_run_info
    from qa_core.run_settings import config_for_model
    from qa_core.modeling import load_model
    from qa_core.run_settings import run_config

    run = tmp_path / "run"
    train(tiny_config(tiny_model_dir, write_tiny_squad(tmp_path / "d.json"), run, max_steps=2, attention_dropout=0.0))
    model = run / "model"
    assert sorted(p.name for p in model.iterdir() if not p.name.startswith("tokenizer")) == [
        "README.md", "config.json", "model.safetensors"]
    assert AutoModelForQuestionAnswering.from_pretrained(model) is not None
    base = AutoConfig.from_pretrained(tiny_model_dir).attention_probs_dropout_prob
    assert AutoConfig.from_pretrained(model).attention_probs_dropout_prob == base != 0.0
    info = read_run_info(run)
    assert info.config["attention_dropout"] == 0.0 and info.base_model == str(tiny_model_dir)
    assert info.train_seconds is not None and info.hardware
    card = ModelCard.load(model / "README.md")
    data = card.data.to_dict()
    assert data["pipeline_tag"] == "question-answering" and data["library_name"] == "transformers"
    assert data["license"] and data["model-index"][0]["name"] == "run"
    for expected in ("data fingerprint (train)", "| 5 |", "optimizer steps: 2", "hardware: ", "| learning_rate |"):
        assert expected in card.text, expected
    loaded = load_model(str(run))
    assert loaded.source == str(model) and run_config(loaded.source).max_seq_length == 64
    assert config_for_model(loaded.source) == QAConfig()  # a v1.1 run: no null threshold
    other = shutil.copyfile(tmp_path / "d.json", tmp_path / "other.json")
    evaluation = QAConfig(model_name_or_path=str(tiny_model_dir), validation_file=str(other), output_dir=str(run),
                          max_seq_length=64, doc_stride=16, max_query_length=16, overwrite_output_dir=True)
    card_text = (model / "README.md").read_text()
    run_evaluation(evaluation)  # another model's scores: not this model's card
    assert (model / "README.md").read_text() == card_text
    write_run_info(run, info)
    run_evaluation(evaluation.replace(model_name_or_path=str(run)))
    assert f"| {Path(other).name} |" in (model / "README.md").read_text()  # evaluated again: the card states the new scores


def test_an_epoch_s_last_step_under_accumulation_takes_the_mean_of_its_micro_batches(tiny_model_dir: Path,
                                                                                    tmp_path: Path):
    """Found by an ML audit: every micro-batch's loss was divided by gradient_accumulation_steps, so an epoch's last
    step, ended early with fewer micro-batches, took a fraction of its gradient (here a third); and it was logged at
    epoch 0.667, not 1. One window four times: each micro-batch's gradient is about the same."""
    context = "The ferry leaves the harbour at seven every morning."
    data = write_squad(tmp_path / "same.json", [{"context": context, "qas": [
        {"id": f"q{n}", "question": "When does the ferry leave?", "answers": [{"text": "seven", "answer_start": 31}]}
        for n in range(4)]}])
    config = tiny_config(tiny_model_dir, data, tmp_path / "run", per_device_train_batch_size=1,
                         gradient_accumulation_steps=3, num_train_epochs=1, learning_rate=1e-9, logging_steps=1)
    assert train(config).step == 2  # three micro-batches, then the epoch's fourth alone
    steps = [e for e in read_history(tmp_path / "run") if e.kind == "step"]
    assert [e.epoch for e in steps] == [0.75, 1.0]
    assert 0.6 < steps[1].grad_norm / steps[0].grad_norm < 1.6, [e.grad_norm for e in steps]
