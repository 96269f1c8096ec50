"""The runs under a runs folder, newest first, with the figures their records hold: what pickers and /list_runs show."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qa_core.run_files import (RECORDS_FILE, RUN_FILE, RunInfo, is_evaluation_folder, read_eval_metrics,
                               read_run_info)
from qa_core.run_lock import run_status


@dataclass(frozen=True)
class RunSummary:
    path: str
    status: str  # run_lock.run_status: run.json's, or interrupted; EVALUATION for an evaluation-only folder
    metrics: dict[str, float]  # FIGURES: EM/F1, and a SQuAD 2.0 evaluation's SQUAD_V2_FIGURES
    has_records: bool
    evaluated_again: bool = False  # its records come from `train.py evaluate` into it, not from its training
    step: int = 0  # run.json's: its last checkpoint's step


# The status of an evaluation-only folder (`train.py evaluate --output_dir`): records and metrics, no run.json,
# no model of its own. Only readers of records list it (list_runs(evaluations=True)).
EVALUATION = "evaluation"
# What a SQuAD 2.0 evaluation adds to EM/F1, by evaluate-v2.0.py's names (its exact, f1 and total repeat
# exact_match, f1 and the two totals): the answerable and unanswerable questions' figures and the best threshold.
SQUAD_V2_FIGURES = ("HasAns_exact", "HasAns_f1", "HasAns_total", "NoAns_exact", "NoAns_f1", "NoAns_total",
                    "best_exact", "best_exact_thresh", "best_f1", "best_f1_thresh")
FIGURES = ("exact_match", "f1", *SQUAD_V2_FIGURES)


def list_runs(root: Path, evaluations: bool = False) -> list[RunSummary]:
    """Run folders under root, newest first; evaluations: evaluation-only folders too, with status EVALUATION."""
    if not root.is_dir():
        return []
    runs = []
    for folder in sorted(root.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True):
        if (folder / RUN_FILE).exists():
            try:
                info = read_run_info(folder)
            except ValueError:
                continue
            stored = evaluation_metrics(folder)
            again = metrics_differ(info.metrics, stored)
            # evaluated again: none of its training's figures belongs to the records (SQuAD 2.0 ones included)
            metrics = {**info.metrics, **stored} if again else {**latest_figures(info), **stored}
            runs.append(RunSummary(str(folder), run_status(folder, info), metrics, (folder / RECORDS_FILE).exists(),
                                   again, info.step))
        elif evaluations and is_evaluation_folder(folder):
            runs.append(RunSummary(str(folder), EVALUATION, evaluation_metrics(folder), True))
    return runs


def evaluated_again(folder: Path, info: RunInfo) -> bool:
    """Whether `train.py evaluate --output_dir` evaluated the run again (perhaps on other data): that refreshes its
    records and eval_metrics.json but not run.json, so their EM/F1 no longer match the run's last evaluation."""
    return metrics_differ(info.metrics, evaluation_metrics(folder))


def metrics_differ(run_metrics: dict[str, float], stored: dict[str, float]) -> bool:
    """Whether the stored EM/F1 are not run.json's (which holds no other figure to compare)."""
    return any(run_metrics.get(k) is None or abs(float(run_metrics[k]) - v) > 1e-9
               for k, v in stored.items() if k in ("exact_match", "f1"))


def latest_figures(info: RunInfo) -> dict[str, float]:
    """The FIGURES of the run's latest evaluation: run.json's EM/F1, and the rest from its history's last entry,
    for a run whose eval_metrics.json is missing or unreadable."""
    return {**info.metrics, **(figures(info.history[-1]) if info.history else {})}


def figures(values: Mapping[str, Any]) -> dict[str, float]:
    """The FIGURES among values, the question counts (*_total) as whole numbers."""
    return {k: int(v) if k.endswith("_total") else float(v) for k, v in values.items()
            if k in FIGURES and isinstance(v, (int, float)) and not isinstance(v, bool)}


def evaluation_metrics(folder: Path) -> dict[str, float]:
    """The FIGURES of an evaluation's eval_metrics.json; none when it is missing or unreadable (the records
    still are what the Errors tab reads)."""
    return figures(read_eval_metrics(folder) or {})
