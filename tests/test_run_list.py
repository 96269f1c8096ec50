"""The runs under a runs folder, with their figures (qa_core.run_list)."""

from __future__ import annotations

import json
from pathlib import Path

from qa_core.run_files import METRICS_FILE, RECORDS_FILE, RUN_FILE
from qa_core.run_list import EVALUATION, list_runs
from tests.test_package import imported_after


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
