"""Times the web app's quick fine-tune (its preset on the bundled sample), whose wall time the Train tab quotes.

    python -m bench.bench_quick     # → bench/results/quick-fine-tune.json

Runs what the Train tab's "Quick fine-tune" button runs (qa_core.quick_fine_tune.quick_config on the embedded
model, in a fresh run folder) in this process, evaluation and checkpoints included, and records the process's
wall time from the config to the saved model. qa_core.quick_fine_tune.QUICK_EXPECTED_S must equal its
wall_seconds (tests/test_quick_fine_tune.py checks it), so a new preset means a new run of this script.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from qa_core import quick_fine_tune
from qa_core.config import DEFAULT_MODEL
from qa_core.distributed import describe_hardware
from qa_core.training import train

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "quick-fine-tune.json"


def time_quick_fine_tune() -> dict:
    """One quick fine-tune in a temporary run folder: wall seconds, steps, and the held-out scores."""
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        run = Path(folder) / "quick"
        run.mkdir()  # claimed first, as the app's new_run_dir does
        config = quick_fine_tune.quick_config(DEFAULT_MODEL, str(run))
        result = train(config)
        wall = time.perf_counter() - started
    return {"what": "the web app's quick fine-tune (qa_core.quick_fine_tune.QUICK_PRESET: embedded MiniLM on the "
                    "bundled sample, every 4th passage held out), wall time from the config to the saved model, "
                    "the evaluation and checkpoint after each epoch included",
            "command": "python -m bench.bench_quick",
            "steps": result.step, "wall_seconds": round(wall), "train_seconds": round(result.train_seconds, 1),
            "held_out_exact_match": round(result.metrics.get("exact_match", float("nan")), 2),
            "held_out_f1": round(result.metrics.get("f1", float("nan")), 2),
            "machine": describe_hardware(), "measured": time.strftime("%Y-%m-%d")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--note", default="", help="how the machine was while it ran (recorded as it is)")
    args = parser.parse_args()
    figures = time_quick_fine_tune() | ({"note": args.note} if args.note else {})
    args.output.write_text(json.dumps(figures, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
