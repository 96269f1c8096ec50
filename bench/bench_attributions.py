"""Time of one explanation (qa_core.attributions) per method on real dev questions, as JSON.

    python -m bench.bench_attributions [MODEL] [--questions 10] [--data DEV.json]   # writes results/attributions.json

MODEL defaults to the embedded MiniLM (its QA head is untrained, which does not change the cost).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
from pathlib import Path

import torch

from qa_core import attributions
from qa_core.data import load_examples
from qa_core.modeling import load_model
from qa_core.runtime import configure_process

ROOT = Path(__file__).resolve().parent.parent

DEV = ROOT.parent / "shared" / "squad" / "dev-v1.1-subset.json"
SETTINGS = (("auto, default budget", None, attributions.DEFAULT_BUDGET_S),
            ("integrated gradients", attributions.INTEGRATED_GRADIENTS, attributions.DEFAULT_BUDGET_S),
            ("gradient x input", attributions.GRADIENT_X_INPUT, attributions.DEFAULT_BUDGET_S))


def time_setting(loaded, examples, method: str | None, budget_s: float) -> dict:
    results = [attributions.explain_answer(loaded, e.question, e.context, method=method, budget_s=budget_s)
               for e in examples]
    seconds = [r.seconds for r in results]
    return {"method": method, "budget_s": budget_s, "median_s": statistics.median(seconds), "max_s": max(seconds),
            "methods_used": sorted({r.method for r in results}), "steps": sorted({r.steps for r in results}),
            "windows": sorted({r.windows for r in results})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default="embedded")
    parser.add_argument("--questions", type=int, default=10)
    parser.add_argument("--data", default=str(DEV), help="SQuAD-format evaluation data")
    parser.add_argument("--output", default=str(ROOT / "bench" / "results" / "attributions.json"))
    args = parser.parse_args()
    configure_process()
    loaded = load_model(args.model)
    examples = load_examples(args.data, "validation").examples[:args.questions]
    attributions.explain_answer(loaded, examples[0].question, examples[0].context)  # warm-up
    report = {"model": args.model, "data": Path(args.data).name, "questions": len(examples), "threads": torch.get_num_threads(),
              "load_average_1min": os.getloadavg()[0],
              "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
              "settings": {name: time_setting(loaded, examples, method, budget)
                           for name, method, budget in SETTINGS}}
    Path(args.output).write_text(json.dumps(report, indent=1), encoding="utf-8")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
