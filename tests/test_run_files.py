"""A run folder's files: what train and evaluate may write over, the list of runs, the way from an older run to its
model, and the lock that keeps a second trainer out."""

from __future__ import annotations

import re
import shutil
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import pytest

from qa_core.config import QAConfig
from qa_core.run_files import check_output_dir, model_slug, new_run_dir
from qa_core.training import train
from tests.overfit_data import write_tiny_squad
from tests.tiny_runs import fake_run, tiny_config


def test_an_output_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "out").write_text("x")
    for overwrite in (False, True):
        with pytest.raises(ValueError, match=f"output_dir {tmp_path / 'out'} is a file, not a folder"):
            check_output_dir(tmp_path / "out", overwrite)


def test_a_killed_run_suggests_resume_before_overwrite(tmp_path: Path) -> None:
    run = fake_run(tmp_path / "run", status="running")
    with pytest.raises(ValueError, match="--resume to continue it, or --overwrite_output_dir"):
        check_output_dir(run, False)
    finished = fake_run(tmp_path / "done", status="finished")
    with pytest.raises(ValueError) as refused:
        check_output_dir(finished, False)
    assert "--resume" not in str(refused.value) and "--overwrite_output_dir" in str(refused.value)
    with pytest.raises(ValueError) as refused:
        check_output_dir(run, False, can_resume=False)  # evaluate cannot resume anything
    assert "--resume" not in str(refused.value)


def test_a_run_s_calibration_counts_among_its_records() -> None:
    from qa_core.calibration import CALIBRATION_FILE
    from qa_core.run_files import RUN_OUTPUTS

    assert CALIBRATION_FILE in RUN_OUTPUTS  # else a new model would inherit the old one's temperature


def test_a_run_from_before_the_model_folder_still_loads(tiny_model_dir: Path, tmp_path: Path) -> None:
    from qa_core.checkpoints import write_run_info
    from qa_core.run_files import RunInfo
    from qa_core.modeling import load_model
    from qa_core.run_settings import run_config

    run = tmp_path / "old-run"
    shutil.copytree(tiny_model_dir, run)
    write_run_info(run, RunInfo("finished", {**QAConfig().to_dict(), "doc_stride": 64}))
    loaded = load_model(str(run))
    assert loaded.source == str(run) and run_config(loaded.source).doc_stride == 64


def test_a_run_being_trained_refuses_a_second_trainer(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Two processes writing checkpoints into one folder would lose one's work: the second (another CLI, the app's
    Resume) is refused while the first holds the run; a killed trainer's lock goes with it (the OS drops it)."""
    from qa_core.run_lock import being_trained, training_lock

    data, run = write_tiny_squad(tmp_path / "d.json"), tmp_path / "run"
    config = tiny_config(tiny_model_dir, data, run, max_steps=4, save_steps=2, validation_file=None)
    assert train(config, should_stop=lambda: True).status == "cancelled"
    assert not being_trained(run)
    with training_lock(run):  # as another process training it would hold it
        assert being_trained(run)
        with pytest.raises(ValueError, match="in use by another process"):
            train(config.replace(resume=True))
    assert train(config.replace(resume=True)).status == "finished"


def test_a_folder_that_cannot_be_locked_still_trains(tiny_model_dir: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Some network file systems refuse flock (ENOLCK): training goes on unlocked rather than failing."""
    import errno
    import fcntl

    def refuse(handle, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", refuse)
    config = tiny_config(tiny_model_dir, write_tiny_squad(tmp_path / "d.json"), tmp_path / "run", max_steps=1,
                         validation_file=None)
    assert train(config).status == "finished"


def test_run_folder_names(tmp_path):
    now = datetime(2025, 3, 1, 12, 30, 5)
    assert new_run_dir(tmp_path, "embedded", now) == tmp_path / "20250301-123005-embedded"
    assert (tmp_path / "20250301-123005-embedded").is_dir()  # claimed
    assert new_run_dir(tmp_path, "embedded", now).name == "20250301-123005-embedded-2"
    assert model_slug("distilbert/distilbert-base-cased-distilled-squad") == "distilbert-base-cased-distilled-squad"
    assert model_slug("runs/20250301-x/") == "20250301-x"
    assert model_slug("a b<c>") == "a-b-c"


def claim(root: str) -> str:
    return str(new_run_dir(Path(root), "embedded", datetime(2025, 3, 1, 12, 30, 5)))


def test_two_servers_starting_in_the_same_second_never_share_a_run_folder(tmp_path):
    with ProcessPoolExecutor(2) as processes, ThreadPoolExecutor(8) as threads:
        claimed = list(processes.map(claim, [str(tmp_path)] * 8)) + list(threads.map(claim, [str(tmp_path)] * 8))
    assert len(set(claimed)) == 16 and all(Path(c).is_dir() for c in claimed)


def test_evaluation_into_a_runs_model_folder_is_refused_and_into_a_plain_model_folder_is_not(tmp_path: Path) -> None:
    from qa_core.run_files import check_eval_output_dir

    run = fake_run(tmp_path / "run", status="finished")
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text("{}")
    check_eval_output_dir(other, str(other), overwrite=False)  # a plain model folder: only its eval files replaced
    check_eval_output_dir(run, str(run / "model"), overwrite=False)  # a run into its own folder, likewise
    for model, advice in ((run / "model", f"evaluate into the run folder {run}"),
                          (other, "choose another output folder")):
        for overwrite in (False, True):
            with pytest.raises(ValueError, match=re.escape(f"output_dir {run / 'model'} is the model folder of run "
                                                           f"{run}")) as caught:
                check_eval_output_dir(run / "model", str(model), overwrite)
            assert advice in str(caught.value)


def test_a_reader_looking_at_the_lock_does_not_turn_a_trainer_away(tmp_path: Path) -> None:
    """Listing runs looks at each stopped run's lock (run_status) by taking it for an instant: a trainer starting
    in that instant waits for it rather than being told another process trains the run."""
    import fcntl
    import threading

    from qa_core.run_files import TRAINING_LOCK
    from qa_core.run_lock import being_trained, training_lock

    run = fake_run(tmp_path / "run")
    (run / TRAINING_LOCK).touch()
    looking, released = threading.Event(), threading.Event()

    def look() -> None:  # a reader's instant, stretched out
        with open(run / TRAINING_LOCK, encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            looking.set()
            released.wait(0.05)

    reader = threading.Thread(target=look)
    reader.start()
    looking.wait(5)
    with training_lock(run):
        assert being_trained(run)
    reader.join()


def test_a_refused_trainer_leaves_the_lock_of_the_one_still_loading(tmp_path: Path) -> None:
    """Found in review: a second trainer refused while the first was still loading (nothing written yet) removed
    the first's lock file on its way out, so the run read as interrupted and a third trainer got in beside it."""
    from qa_core.run_files import TRAINING_LOCK, RunRefused
    from qa_core.run_lock import being_trained, training_lock

    run = tmp_path / "run"
    with training_lock(run):  # the first trainer, loading its model and data
        with pytest.raises(RunRefused, match="in use by another process"):
            with training_lock(run):
                pass
        assert (run / TRAINING_LOCK).exists() and being_trained(run)
        with pytest.raises(RunRefused, match="in use by another process"):
            with training_lock(run):
                pass
    assert not run.exists()  # the first, refused by nothing, wrote nothing: it leaves nothing


def test_an_evaluation_into_a_run_being_trained_is_refused(tmp_path: Path) -> None:
    """Found by trying the CLI: `train.py evaluate --output_dir RUN` while RUN trained wrote its files there, and the
    training's next evaluation replaced them without a word; its model was also said to be from a stopped run."""
    from qa_core.modeling import ModelNotFoundError, resolve_model
    from qa_core.run_files import check_eval_output_dir
    from qa_core.run_lock import training_lock

    run = fake_run(tmp_path / "run")
    shutil.rmtree(run / "model")  # a first session's run: no final model yet
    with training_lock(run):
        with pytest.raises(ValueError, match=r"run .* is in use by another process right now"):
            check_eval_output_dir(run, "embedded", overwrite=True)
        with pytest.raises(ModelNotFoundError, match="a run being trained right now, without a final model yet"):
            resolve_model(str(run))
    check_eval_output_dir(run, "embedded", overwrite=True)  # once it stopped
    with pytest.raises(ModelNotFoundError, match="continue a stopped run"):
        resolve_model(str(run))


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", "\udcff"])
def test_an_unreadable_eval_metrics_file_is_read_as_none_by_every_reader(tmp_path: Path, text: str, caplog) -> None:
    """Found in review: three readers of eval_metrics.json (the run list, the model card, answering) each handled a
    broken one their own way; the one reader says it in the log and goes on without it."""
    from qa_core.run_files import METRICS_FILE, read_eval_metrics

    (tmp_path / METRICS_FILE).write_text(text, encoding="utf-8", errors="surrogateescape")
    assert read_eval_metrics(tmp_path) is None and METRICS_FILE in caplog.text
    assert read_eval_metrics(tmp_path / "missing") is None
