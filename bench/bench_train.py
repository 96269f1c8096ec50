"""Training benchmark on ../shared/squad: our pipeline vs. a run_qa.py-style reference mode, in one run, as JSON.

    python -m bench.bench_train                    # both modes, writes bench/results/train.json
    python -m bench.bench_train --reference-mode   # only the reference mode
    python -m bench.bench_train --max_steps 20     # a quick smoke run of the protocol
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SHARED = ROOT.parent / "shared" / "squad"
# The protocol: embedded MiniLM, 256/128, batch 16, lr 1e-4, 2 epochs, warm-up 0.1, wd 0.01, seed 42.
PROTOCOL = dict(model_name_or_path="embedded", max_seq_length=256, doc_stride=128, per_device_train_batch_size=16,
                learning_rate=1e-4, num_train_epochs=2.0, warmup_ratio=0.1, weight_decay=0.01, seed=42)
# run_qa.py as transformers ships it pads every window to max_seq_length, draws random batches, evaluates
# with batch 8, and here runs in fp32 on the CPU.
MODES = {
    "reference": dict(pad_to_max_length=True, group_by_length=False, bf16=False, per_device_eval_batch_size=8,
                      attention_dropout=None),
    "ours": dict(pad_to_max_length=False, group_by_length=True, bf16=True),
    "ours-fp32": dict(pad_to_max_length=False, group_by_length=True, bf16=False),
}
# transformers' run_qa.py under the same protocol on this kind of machine, as measured for issue #2.
RUN_QA_PUBLISHED = {"train_seconds": 2332, "train_features_per_s": 4.4, "eval_seconds": 19.9, "f1": 57.5,
                    "exact_match": 44.0, "peak_memory_gib": 2.7, "train_features": 5152, "steps": 644}


def run_mode(mode: str, max_steps: int, output_dir: str) -> dict:
    """Train and evaluate one mode in this process; returns its figures."""
    from qa_core.config import QAConfig
    from qa_core.data import load_examples
    from qa_core.evaluation import evaluate
    from qa_core.features import featurize
    from qa_core.training import train

    config = QAConfig(**PROTOCOL, **MODES[mode], train_file=str(SHARED / "train-v1.1-subset.json"),
                      output_dir=output_dir, max_steps=max_steps, logging_steps=50, overwrite_output_dir=True)
    started = time.perf_counter()
    result = train(config)
    train_wall = time.perf_counter() - started

    from qa_core.modeling import load_model
    loaded = load_model(output_dir)
    started = time.perf_counter()
    examples = load_examples(str(SHARED / "dev-v1.1-subset.json"), "validation").examples
    features = featurize(examples, loaded.tokenizer, config, training=False).features
    metrics = evaluate(loaded.model, examples, features, config, bool(config.bf16)).metrics
    eval_seconds = time.perf_counter() - started
    return {"mode": mode, "config": MODES[mode], "steps": result.step, "train_features": result.train_features,
            "train_seconds": round(result.train_seconds, 1), "train_wall_seconds": round(train_wall, 1),
            "train_features_per_s": round(result.train_features / result.train_seconds, 2),
            "eval_seconds": round(eval_seconds, 2), "eval_features": len(features),
            "exact_match": round(metrics.exact_match, 2), "f1": round(metrics.f1, 2),
            "peak_memory_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}


def run_in_child(mode: str, max_steps: int) -> dict:
    """Each mode in its own process, so peak memory and warm caches are its own; the run stays in runs/."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        run_dir = ROOT / "runs" / f"bench-{mode}"
        subprocess.run([sys.executable, "-m", "bench.bench_train", "--child", mode, "--max_steps", str(max_steps),
                        "--child-output", str(out), "--run-dir", str(run_dir)], check=True, cwd=ROOT)
        return json.loads(out.read_text())


def ratios(ours: dict, reference: dict) -> dict:
    return {"train_seconds": round(ours["train_seconds"] / reference["train_seconds"], 3),
            "eval_seconds": round(ours["eval_seconds"] / reference["eval_seconds"], 3),
            "peak_memory": round(ours["peak_memory_gib"] / reference["peak_memory_gib"], 3),
            "f1_difference": round(ours["f1"] - reference["f1"], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modes", default="reference,ours", help="comma-separated: " + ", ".join(MODES))
    parser.add_argument("--reference-mode", action="store_true", help="run only the reference mode")
    parser.add_argument("--max_steps", type=int, default=-1, help="stop after N steps (default: the 2 epochs)")
    parser.add_argument("--output", default=str(ROOT / "bench" / "results" / "train.json"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-output", help=argparse.SUPPRESS)
    parser.add_argument("--run-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        Path(args.child_output).write_text(json.dumps(run_mode(args.child, args.max_steps, args.run_dir)))
        return
    modes = ["reference"] if args.reference_mode else args.modes.split(",")
    results = {mode: run_in_child(mode, args.max_steps) for mode in modes}
    report = {"protocol": PROTOCOL, "max_steps": args.max_steps, "machine": _machine(), "results": results,
              "run_qa_published": RUN_QA_PUBLISHED}
    if "ours" in results and "reference" in results:
        report["ours_over_reference"] = ratios(results["ours"], results["reference"])
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


def _machine() -> dict:
    import os
    import platform

    import torch
    return {"cpus": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "python": platform.python_version()}


if __name__ == "__main__":
    main()
