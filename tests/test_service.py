"""The web app's operations as plain calls: a question to a run named as callers name it, within the server's caps."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path


from qa_core.checkpoints import write_run_info
from qa_core.config import QAConfig
from qa_core.evaluation import run_evaluation
from qa_core.hosting import answer_limits
from qa_core.run_files import RunInfo
from qa_core.service import QAService
from qa_core.settings import Settings
from tests.v2_data import write_v2

CONTEXT = "A beekeeper named Tomas keeps four hives behind the old mill."


def test_a_run_named_as_callers_name_it_answers_in_json(tiny_model_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "runs" / "20250101-000000-tiny"
    shutil.copytree(tiny_model_dir, run / "model")
    write_run_info(run, RunInfo("finished", QAConfig(output_dir=str(run)).to_dict()))
    service = QAService(Settings(tmp_path / "runs", str(tiny_model_dir), training_enabled=False,
                                 fast_inference=False))
    answered = asyncio.run(service.answer_json(run.name, "Who keeps the hives?", CONTEXT))
    assert answered["model"] == run.name and answered["answer"] and answered["answer"] in CONTEXT
    by_default = asyncio.run(service.answer_json("", "Who keeps the hives?", CONTEXT))
    assert by_default["model"] == str(tiny_model_dir) and by_default["answer"] in CONTEXT


def test_a_public_server_searches_spans_within_its_caps_whatever_a_run_says(tiny_model_dir: Path,
                                                                            tmp_path: Path) -> None:
    """A run put in the runs folder by hand, or trained before the caps, answers with its own span search settings:
    n_best_size 512 made every answer's search many times the work a public server allows a job. The same caps
    bound the settings of an evaluation whose rows the Errors tab plots."""
    run = tmp_path / "runs" / "20250101-000000-wide"
    shutil.copytree(tiny_model_dir, run / "model")
    config = QAConfig(output_dir=str(run), n_best_size=512, max_answer_length=512)
    write_run_info(run, RunInfo("finished", config.to_dict()))
    caps = Settings().train_limits
    for public, expected in ((False, (512, 512)), (True, (caps.n_best_size, caps.max_answer_length))):
        service = QAService(Settings(tmp_path / "runs", run.name, training_enabled=False, fast_inference=False,
                                     public=public))
        result, _, _ = asyncio.run(service.answer_in_turn(run.name, "Who keeps the hives?", CONTEXT))
        assert result.prediction.text in CONTEXT
        name = service.check_question(run.name, "q", "c")[0]
        _, used = asyncio.run(service.models.get_in_turn(name))
        assert (used.n_best_size, used.max_answer_length) == expected
        # the settings of an evaluation an Errors-tab row is plotted with (evaluation_settings) too, as they said
        _, evaluated = asyncio.run(service.models.get_in_turn(name, settings={"n_best_size": 400, "doc_stride": 8}))
        assert (evaluated.n_best_size, evaluated.max_answer_length, evaluated.doc_stride) == (
            min(400, expected[0]), expected[1], 8)
    assert answer_limits(config, Settings(public=True)).learning_rate == config.learning_rate  # the rest kept


def test_list_runs_gives_a_squad_v2_evaluation_s_official_figures(tiny_model_dir: Path, tmp_path: Path) -> None:
    """/list_runs names the figures by the keys a real SQuAD 2.0 evaluation writes (evaluate-v2.0.py's)."""
    from qa_core.run_list import FIGURES

    runs = tmp_path / "runs"
    run_evaluation(QAConfig(model_name_or_path=str(tiny_model_dir), validation_file=str(write_v2(tmp_path / "v2.json")),
                            output_dir=str(runs / "v2-eval"), version_2_with_negative=True, max_seq_length=64,
                            doc_stride=16, max_query_length=16), device="cpu")
    stored = json.loads((runs / "v2-eval" / "eval_metrics.json").read_text())
    service = QAService(Settings(runs, str(tiny_model_dir), training_enabled=False, fast_inference=False))
    (listed,) = service.runs_json()
    assert listed["metrics"] == {k: stored[k] for k in FIGURES}
    assert {"HasAns_f1", "NoAns_exact", "best_f1", "best_f1_thresh"} <= set(listed["metrics"])


def test_run_records_give_null_for_the_null_odds_of_a_context_without_a_span(tiny_model_dir: Path,
                                                                            tmp_path: Path) -> None:
    """Found by a tester: /run_records gave 1.7976931348623157e+308, the stand-in the records file stores for the
    infinite null odds of a context without any span, as if it were a score."""
    runs = tmp_path / "runs"
    data = write_v2(tmp_path / "blank.json", blank=True)
    run_evaluation(QAConfig(model_name_or_path=str(tiny_model_dir), validation_file=str(data),
                            output_dir=str(runs / "v2-blank"), version_2_with_negative=True, max_seq_length=64,
                            doc_stride=16, max_query_length=16), device="cpu")
    service = QAService(Settings(runs, str(tiny_model_dir), training_enabled=False, fast_inference=False))
    records = {r["example_id"]: r for r in service.records_json("v2-blank")}
    blank = records["blank"]
    assert blank["null_odds"] is None and not blank["alternatives"] and blank["best_span"] is None
    assert blank["prediction"] == "" and blank["score"] is not None  # abstained: its null score, a real score
    assert all(r["null_odds"] is not None and abs(r["null_odds"]) < 1e4 for k, r in records.items() if k != "blank")
    assert "e+308" not in json.dumps(records, allow_nan=False)
    stored = [json.loads(line) for line in (runs / "v2-blank" / "eval_records.jsonl").read_text().splitlines()]
    assert next(r for r in stored if r["example_id"] == "blank")["null_odds"] > 1e300  # the file keeps its stand-in
    assert service.records("v2-blank")[-1].null_odds > 1e300  # and the Errors tab reads that: abstains at any threshold


def test_a_public_server_keeps_at_most_max_runs_of_its_web_jobs_and_never_a_host_s_run(tiny_model_dir: Path,
                                                                                        tmp_path: Path,
                                                                                        caplog) -> None:
    """Each web job leaves a run folder of hundreds of MB: a public server removes the oldest of its own jobs' runs
    before a new job starts (room kept for it), never a run the host put in the runs folder."""
    runs = tmp_path / "runs"
    host = runs / "00000000-000000-host"
    shutil.copytree(tiny_model_dir, host / "model")
    write_run_info(host, RunInfo("finished", QAConfig(output_dir=str(host)).to_dict()))
    service = QAService(Settings(runs, str(tiny_model_dir), training_enabled=True, fast_inference=False,
                                 public=True, max_runs=2))
    options = {"max_steps": 1, "max_train_samples": 4, "max_eval_samples": 2, "max_seq_length": 64,
               "doc_stride": 16, "max_query_length": 16, "per_device_train_batch_size": 2}
    started = []
    with caplog.at_level("INFO", logger="qa_core"):
        for _ in range(4):
            started.append(Path(service.start(service.train_config("", "sample", "", options)).output_dir))
            assert service.jobs.wait(120) and service.jobs.snapshot().status == "finished"
    assert sorted(p.name for p in runs.iterdir()) == sorted([host.name, started[2].name, started[3].name])
    removed = [r.getMessage() for r in caplog.records if "removed" in r.getMessage()]
    assert len(removed) == 2 and started[0].name in removed[0] and started[1].name in removed[1], removed
    unbounded = QAService(Settings(runs, str(tiny_model_dir), fast_inference=False))
    assert unbounded.settings.max_runs is None


def test_run_records_of_a_missing_run_say_no_run_has_that_name(tmp_path: Path) -> None:
    """Found by a tester: /run_records("nosuchrun") advised training 'nosuchrun' with evaluation data."""
    service = QAService(Settings(tmp_path / "runs", training_enabled=False, fast_inference=False))
    try:
        service.records_json("nosuchrun")
    except ValueError as refused:
        assert str(refused) == f"no run named 'nosuchrun' in {tmp_path / 'runs'}"
    else:
        raise AssertionError("a missing run gave records")
