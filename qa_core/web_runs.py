"""The run folders a server's web jobs made: marked when a job starts, the oldest removed beyond QA_MAX_RUNS."""
# A public server that trains would otherwise fill its disk with every visitor's runs (each holds a model and a
# checkpoint with its optimizer's state). Only runs with the mark are ever removed: a run the host put in the runs
# folder (the QA_DEFAULT_MODEL run, say) has none.

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from qa_core.run_files import WEB_JOB_MARK
from qa_core.run_lock import being_trained

logger = logging.getLogger(__name__)


def mark_web_run(folder: Path) -> None:
    """Say that a web job made this run; the mark's time orders the runs for removal."""
    (folder / WEB_JOB_MARK).touch()


def web_runs(root: Path) -> list[Path]:
    """The marked runs under root, oldest mark first."""
    marked = []
    for mark in root.glob(f"*/{WEB_JOB_MARK}"):
        try:
            marked.append((mark.stat().st_mtime_ns, mark.parent.name, mark.parent))
        except OSError:  # removed meanwhile
            continue
    return [folder for *_, folder in sorted(marked)]


def prune_web_runs(root: Path, limit: int | None, keep: Path) -> list[Path]:
    """Remove the oldest web runs so that at most `limit` remain with `keep` (the run a job is about to train,
    counted whether marked or not); never `keep` nor a run being trained. The runs removed."""
    if limit is None:
        return []
    others = [run for run in web_runs(root) if run.resolve() != keep.resolve()]
    removed = []
    for run in others[:max(len(others) - (limit - 1), 0)]:
        if being_trained(run):
            continue
        shutil.rmtree(run, ignore_errors=True)
        logger.info("removed run %s: this server keeps the latest %d runs of its web jobs (QA_MAX_RUNS)",
                    run.name, limit)
        removed.append(run)
    return removed
