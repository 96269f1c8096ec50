"""Comparing two runs: the data check, outcomes, the paired bootstrap, slices, tables, the figure and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qa_core import charts, compare
from qa_core.checkpoints import write_run_info
from qa_core.error_analysis import QuestionRecord, write_records
from qa_core.run_files import RECORDS_FILE, RunInfo

CONTEXT = "The lens was designed by Augustin Fresnel in 1822."


def record(n: int, prediction: str, exact: float, f1: float, question: str = "Who designed the lens?",
           context: str = CONTEXT, golds: tuple[str, ...] = ("Augustin Fresnel",)) -> QuestionRecord:
    start = context.find(prediction)
    span = (start, start + len(prediction)) if prediction and start >= 0 else None
    gold_spans = tuple((context.find(g), context.find(g) + len(g)) for g in golds)
    return QuestionRecord(f"q{n}", question, context, golds, gold_spans, prediction, span, 1.0, exact, f1,
                          ((prediction, 0.8),))


def write_run(folder: Path, records: list[QuestionRecord], fingerprint: str | None = "abc") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if fingerprint is not None:
        write_run_info(folder, RunInfo("finished", {}, data_fingerprint={"train": "t", "validation": fingerprint}))
    write_records(folder / RECORDS_FILE, records)
    return folder


def two_runs(tmp_path: Path, fingerprint_b: str | None = "abc", fingerprint_a: str | None = "abc") -> tuple[Path, Path]:
    when = "When was it designed?"
    a = [record(0, "Augustin Fresnel", 100, 100), record(1, "Fresnel", 0, 66.7),
         record(2, "1822", 100, 100, when, golds=("1822",)), record(3, "lens", 0, 0)]
    b = [record(0, "Fresnel", 0, 66.7), record(1, "Augustin Fresnel", 100, 100),
         record(2, "1822", 100, 100, when, golds=("1822",)), record(3, "designed", 0, 0)]
    return write_run(tmp_path / "a", a, fingerprint_a), write_run(tmp_path / "b", b, fingerprint_b)


def test_outcomes_metrics_and_slices_of_two_runs(tmp_path):
    run_a, run_b = two_runs(tmp_path)
    result = compare.compare_runs(run_a, run_b)
    assert result.check.method == "fingerprint" and result.check.same
    assert result.outcomes == {"fixed": 1, "broken": 1, "both right": 1, "both wrong": 1}
    em, f1 = result.metrics
    assert (em.name, em.a, em.b, em.difference) == ("exact_match", 50.0, 50.0, 0.0)
    assert em.low <= 0.0 <= em.high and f1.difference == pytest.approx(0.0)
    rows = {(s.slice, s.group): s for s in result.slices}
    assert rows[("question word", "who")].questions == 3 and rows[("question word", "when")].f1_b == 100.0
    assert rows[("answerability", "HasAns")].questions == 4
    assert {s.slice for s in result.slices} == set(compare.SLICES)


def test_paired_bootstrap_is_seeded_and_as_wide_as_the_normal_interval():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 2, 500) * 100.0
    b = np.where(rng.random(500) < 0.2, 100.0 - a, a)  # B flips a fifth of A's outcomes
    low, high = compare.paired_bootstrap(a, b, resamples=2000, seed=3)
    assert (low, high) == compare.paired_bootstrap(a, b, resamples=2000, seed=3)
    difference = b - a
    half_width = 1.96 * difference.std() / np.sqrt(len(a))
    assert low < difference.mean() < high
    assert (high - low) / 2 == pytest.approx(half_width, rel=0.15)
    assert compare.paired_bootstrap(a, a) == (0.0, 0.0)
    with pytest.raises(ValueError, match="equally long"):
        compare.paired_bootstrap(a, b[:10])


def test_runs_on_different_data_are_refused(tmp_path):
    run_a, run_b = two_runs(tmp_path, fingerprint_b="other")
    with pytest.raises(ValueError, match="not evaluated on the same data.*fingerprint"):
        compare.compare_runs(run_a, run_b)


def test_runs_without_fingerprint_are_checked_by_ids_and_text(tmp_path):
    run_a, run_b = two_runs(tmp_path, fingerprint_b=None)
    assert compare.compare_runs(run_a, run_b).check.method == "question ids + text hash"
    changed = [record(n, "Fresnel", 0, 50, context=CONTEXT + " Later.") for n in range(4)]
    write_run(tmp_path / "c", changed, fingerprint=None)
    with pytest.raises(ValueError, match="question ids \\+ text hash"):
        compare.compare_runs(run_a, tmp_path / "c")


def test_the_fingerprint_of_the_records_own_evaluation_decides(tmp_path):
    """Found by following the README: a run evaluated again into its own folder on other data (its run.json keeps
    the training's fingerprint) was refused a comparison with a run of that data; eval_settings.json says what the
    records were evaluated on, folders of `train.py evaluate` included."""
    from qa_core.eval_settings import Evaluated, write_evaluated

    run_a, run_b = two_runs(tmp_path, fingerprint_b="trained-on-other")
    for run in (run_a, run_b):
        write_evaluated(run, Evaluated("dev.json", "same-dev", None, {}))
    check = compare.compare_runs(run_a, run_b).check
    assert (check.method, check.same) == ("fingerprint", True) and "same-dev" in check.detail
    write_evaluated(run_b, Evaluated("other.json", "other-dev", None, {}))
    with pytest.raises(ValueError, match="fingerprints same-dev and other-dev"):
        compare.compare_runs(run_a, run_b)


def test_the_slices_figure_lays_the_bars_flat(tmp_path):
    result = compare.compare_runs(*two_runs(tmp_path))
    figure = charts.compare_slices_figure(result.slices)
    assert [t.name for t in figure.data] == ["F1 run A", "F1 run B"]
    assert len(figure.data[0].x) == len(result.slices) and figure.data[0].orientation == "h"


def test_cli_prints_the_summary_as_json_and_refuses_mismatched_runs(tmp_path):
    run_a, run_b = two_runs(tmp_path)
    done = subprocess.run([sys.executable, "-m", "qa_core.compare", str(run_a), str(run_b), "--resamples", "200"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["outcomes"]["fixed"] == 1 and summary["resamples"] == 200
    assert summary["check"]["method"] == "fingerprint" and "pairs" not in summary
    assert [m["name"] for m in summary["metrics"]] == ["exact_match", "f1"]
    write_run(tmp_path / "c", [record(0, "x", 0, 0)], fingerprint="zzz")
    assert compare.main([str(run_a), str(tmp_path / "c")]) == 2
