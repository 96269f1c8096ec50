"""The runs under a runs folder, with their figures (qa_core.run_list)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from qa_core import errors_views
from qa_core.config import QAConfig
from qa_core.evaluation import run_evaluation
from qa_core.run_files import METRICS_FILE, RECORDS_FILE, RUN_FILE
from qa_core.run_list import EVALUATION, list_runs
from qa_core.service import QAService
from tests.conftest import write_squad
from tests.test_package import imported_after
from tests.ui_handlers import LATE, copy_run


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
    listing = f"from pathlib import Path\nfrom qa_core.run_list import list_runs\nlist_runs(Path({str(tmp_path)!r}))"
    assert "torch" not in imported_after(listing)


# eval_metrics.json of a SQuAD 2.0 evaluation: evaluate-v2.0.py's keys, exact_match/f1 repeating exact/f1
V2_METRICS = {"exact_match": 61.0, "f1": 64.5, "exact": 61.0, "total": 200,
              "HasAns_exact": 52.0, "HasAns_f1": 59.0, "HasAns_total": 100, "NoAns_exact": 70.0, "NoAns_f1": 70.0,
              "NoAns_total": 100, "best_exact": 63.0, "best_exact_thresh": -1.25, "best_f1": 66.0,
              "best_f1_thresh": -0.75}
V2_FIGURES = {k: v for k, v in V2_METRICS.items() if k not in ("exact", "total")}


def write_run(folder: Path, history: list[dict], metrics_file: dict | None) -> Path:
    """A run folder as training publishes it: run.json's metrics are the last evaluation's EM/F1, its history
    every evaluation's figures, eval_metrics.json the last evaluation's."""
    folder.mkdir(parents=True)
    last = {k: history[-1][k] for k in ("exact_match", "f1")}
    (folder / RUN_FILE).write_text(json.dumps({"status": "finished", "config": {}, "metrics": last,
                                               "history": history}))
    if metrics_file is not None:
        (folder / METRICS_FILE).write_text(json.dumps(metrics_file))
    return folder


def test_a_squad_v2_run_lists_its_answerable_unanswerable_and_best_threshold_figures(tmp_path: Path) -> None:
    """Found by a tester: /list_runs gave a SQuAD 2.0 run's EM/F1 only, though its evaluation stored HasAns and
    NoAns figures and the best-F1 threshold (which predict and the app answer with)."""
    write_run(tmp_path / "v2", [{"step": 4, "epoch": 1.0, **V2_METRICS}], V2_METRICS)
    write_run(tmp_path / "v2-before-eval-files", [{"step": 4, "epoch": 1.0, **V2_METRICS}], None)
    v1 = {"exact_match": 50.0, "f1": 60.0}
    write_run(tmp_path / "v1", [{"step": 4, "epoch": 1.0, **v1}], v1)
    listed = {Path(r.path).name: r for r in list_runs(tmp_path)}
    assert listed["v2"].metrics == V2_FIGURES and not listed["v2"].evaluated_again
    assert listed["v2-before-eval-files"].metrics == V2_FIGURES  # run.json's latest evaluation holds them too
    assert listed["v1"].metrics == v1  # a SQuAD v1.1 run: EM and F1, as before
    assert all(isinstance(listed["v2"].metrics[k], int) for k in ("HasAns_total", "NoAns_total"))  # counts


def test_a_squad_v2_run_evaluated_again_lists_the_new_evaluation_s_figures(tmp_path: Path) -> None:
    """`train.py evaluate --output_dir RUN` refreshed eval_metrics.json, not run.json: every figure listed is the
    new evaluation's, none left over from the training's."""
    again = {**V2_METRICS, "exact_match": 40.0, "exact": 40.0, "HasAns_exact": 30.0, "best_f1_thresh": 2.5}
    write_run(tmp_path / "v2", [{"step": 4, "epoch": 1.0, **V2_METRICS}], again)
    v1_again = {"exact_match": 10.0, "f1": 20.0}  # evaluated again as SQuAD v1.1: no SQuAD 2.0 figure is its
    write_run(tmp_path / "v2-as-v1", [{"step": 4, "epoch": 1.0, **V2_METRICS}], v1_again)
    listed = {Path(r.path).name: r for r in list_runs(tmp_path)}
    assert listed["v2"].evaluated_again and listed["v2"].metrics == {k: again[k] for k in V2_FIGURES}
    assert listed["v2-as-v1"].evaluated_again and listed["v2-as-v1"].metrics == v1_again


def test_a_run_evaluated_again_into_its_folder_lists_the_figures_of_its_records(settings, tiny_run, tmp_path):
    """`train.py evaluate --output_dir RUN` on other data refreshes the run's records and eval_metrics.json but
    not run.json: the lists (/list_runs, the pickers) and the Errors summary must give the records' figures and not
    call them 'on its training data'."""
    from qa_core.run_list import list_runs
    from qa_core.run_picker import run_label

    root = tmp_path / "runs"
    run = copy_run(tiny_run, root / tiny_run.name)
    before = list_runs(root)[0].metrics
    data = write_squad(tmp_path / "other.json", [{"context": LATE, "qas": [
        {"id": "q1", "question": "Who was the last keeper?",
         "answers": [{"text": "Abbie Burgess", "answer_start": LATE.find("Abbie Burgess")}]}]}])
    run_evaluation(QAConfig(model_name_or_path=str(run), validation_file=str(data), output_dir=str(run),
                            max_seq_length=128, doc_stride=32), device="cpu")
    stored = json.loads((run / "eval_metrics.json").read_text())
    summary = list_runs(root)[0]
    assert (summary.metrics["exact_match"], summary.metrics["f1"]) == (stored["exact_match"], stored["f1"]) != (
        before["exact_match"], before["f1"])
    label = run_label(summary)
    assert f"F1 {stored['f1']:.1f}" in label and "training data" not in label and "evaluated again" in label
    assert errors_views.evaluation_caveat(str(run)) == ""
    service = QAService(replace(settings, runs_root=root))
    assert service.runs_json()[0]["metrics"]["f1"] == stored["f1"]
