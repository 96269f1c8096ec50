"""What train and evaluate may write over in a run folder, and what a resume must keep the same."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from qa_core.config import QAConfig
from qa_core.run_files import EVALUATION, METRICS_FILE, RECORDS_FILE, RUN_FILE, check_output_dir, list_runs
from tests.overfit_data import write_tiny_squad
from tests.test_cli import fake_run
from tests.test_package import imported_after

WINDOWS = dict(max_seq_length=64, doc_stride=16, max_query_length=16)


@pytest.fixture(scope="module")
def trained_run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished two-step run of the tiny BERT, evaluated on its own data."""
    from qa_core.training import train

    folder = tmp_path_factory.mktemp("trained")
    data = write_tiny_squad(folder / "d.json")
    train(QAConfig(model_name_or_path=str(tiny_model_dir), train_file=str(data), validation_file=str(data),
                   output_dir=str(folder / "run"), max_steps=2, per_device_train_batch_size=2, **WINDOWS))
    return folder / "run"


def _snapshot(run: Path) -> dict[str, bytes]:
    """The run's own records and model, which evaluating it again must leave as they are."""
    kept = [run / "run.json", run / "history.jsonl", *(run / "checkpoint").iterdir(),
            run / "model" / "model.safetensors", run / "model" / "config.json"]
    return {str(path): path.read_bytes() for path in kept}


@pytest.mark.parametrize("model, overwrite", [("run", False), ("run/model", False), ("run", True)])
def test_evaluating_a_run_into_its_own_folder_refreshes_only_its_evaluation(
        trained_run: Path, tmp_path: Path, model: str, overwrite: bool) -> None:
    from qa_core.evaluation import run_evaluation

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    before = _snapshot(run)
    (run / "eval_metrics.json").write_text('{"exact_match": -1, "f1": -1}')  # stale scores, to be refreshed
    one_question = tmp_path / "one.json"
    data = json.loads((trained_run.parent / "d.json").read_text())
    data["data"][0]["paragraphs"] = data["data"][0]["paragraphs"][:1]
    one_question.write_text(json.dumps(data))
    run_evaluation(QAConfig(model_name_or_path=str(tmp_path / model), validation_file=str(one_question),
                            output_dir=str(run), overwrite_output_dir=overwrite, **WINDOWS))
    assert _snapshot(run) == before
    metrics = json.loads((run / "eval_metrics.json").read_text())
    assert metrics["exact_match"] >= 0 and len((run / "eval_records.jsonl").read_text().splitlines()) == 2
    assert "one.json" in (run / "model" / "README.md").read_text()  # the card states the new scores


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


def test_runs_are_listed_without_loading_torch(tmp_path: Path) -> None:
    """The lists of runs (the pickers, /list_runs) read run.json and eval_metrics.json, and need no torch."""
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / RUN_FILE).write_text(json.dumps({"status": "finished", "config": {},
                                                         "metrics": {"exact_match": 50.0, "f1": 60.0}}))
    (tmp_path / "evaluation").mkdir()
    (tmp_path / "evaluation" / RECORDS_FILE).write_text("", encoding="utf-8")
    (tmp_path / "evaluation" / METRICS_FILE).write_text(json.dumps({"exact_match": 40.0, "f1": 45.0}))
    listed = {Path(r.path).name: r for r in list_runs(tmp_path, evaluations=True)}
    assert listed["run"].status == "finished" and listed["run"].metrics == {"exact_match": 50.0, "f1": 60.0}
    assert listed["evaluation"].status == EVALUATION and listed["evaluation"].metrics["f1"] == 45.0
    listing = f"from pathlib import Path\nfrom qa_core.run_files import list_runs\nlist_runs(Path({str(tmp_path)!r}))"
    assert "torch" not in imported_after(listing)
