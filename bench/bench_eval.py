"""Evaluation's precision on a CPU: wall time and dev EM/F1 of fp32, bf16 and int8 variants, in one run.

    python -m bench.bench_eval runs/bench-ours        # → bench/results/eval-precision.json

*bf16 autocast* is how training evaluated its own fp32 model before (attention in fp32); *bf16 weights* is how
`train.py evaluate`, `predict` and training's evaluations run a model on a CPU with native bf16
(qa_core.precision.set_up_precision with training=False, on a copy in training). The int8 variants are candidates that were not adopted: *int8, per token* is the app's
answering copy (qa_core.int8) run eagerly; *int8, per tensor* is PyTorch's dynamic quantization (fbgemm) of every
linear layer but the QA head. Each variant is a fresh copy of the same model; the rounds alternate the variants,
so the machine's drift hits all of them. Timed: the forward passes, span search and metrics over every dev window.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time
from pathlib import Path

from bench.report import with_machine, write_report

ROOT = Path(__file__).resolve().parent.parent
DEV = ROOT.parent / "shared" / "squad" / "dev-v1.1-subset.json"
DEFAULT_OUTPUT = ROOT / "bench" / "results" / "eval-precision.json"
VARIANTS = ("fp32", "bf16 autocast", "bf16 weights", "int8, per token", "int8, per tensor")


def variant_model(model, name: str):
    """A copy of the model set up as the variant runs it, and the bf16 flag evaluate() gets."""
    import torch

    from qa_core.precision import set_up_precision
    from qa_core.int8 import quantize_linears

    copied = copy.deepcopy(model).eval()
    if name == "fp32":
        return copied, False
    if name == "int8, per token":
        return quantize_linears(copied), False
    if name == "int8, per tensor":
        from torch.ao.quantization import default_dynamic_qconfig, quantize_dynamic

        linears = {n: default_dynamic_qconfig for n, m in copied.named_modules()
                   if isinstance(m, torch.nn.Linear) and "qa_outputs" not in n}
        return quantize_dynamic(copied, linears, dtype=torch.qint8), False
    return copied, set_up_precision(copied, True, torch.device("cpu"), training=name == "bf16 autocast")


def measure(run_dir: str, dev_file: str, rounds: int) -> dict:
    import torch

    from qa_core.config import QAConfig
    from qa_core.data import load_examples
    from qa_core.evaluation import evaluate
    from qa_core.features import featurize
    from qa_core.modeling import fit_config, load_model

    torch.set_num_threads(os.cpu_count() or 1)
    loaded = load_model(run_dir)
    config = fit_config(QAConfig(), loaded)
    examples = load_examples(dev_file, "validation").examples
    features = featurize(examples, loaded.tokenizer, config, training=False).features
    models = {name: variant_model(loaded.model, name) for name in VARIANTS}
    seconds: dict[str, list[float]] = {name: [] for name in VARIANTS}
    results = {}
    for _ in range(rounds + 1):  # the first round warms each variant's kernels up and is not timed
        for name, (model, bf16) in models.items():
            started = time.perf_counter()
            results[name] = evaluate(model, examples, features, config, bf16, batch_format=loaded.batch_format)
            seconds[name].append(time.perf_counter() - started)
    answers = {k: p.text for k, p in results["fp32"].predictions.items()}
    return {name: {"median_seconds": statistics.median(seconds[name][1:]), "seconds": seconds[name][1:],
                   "exact_match": results[name].metrics.exact_match, "f1": results[name].metrics.f1,
                   "same_answer_as_fp32": statistics.fmean(p.text == answers[k]
                                                           for k, p in results[name].predictions.items())}
            for name in VARIANTS} | {"windows": len(features), "questions": len(examples)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", help="a fine-tuned model: a run folder or a model folder")
    parser.add_argument("--dev-file", default=str(DEV))
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds (each runs every variant once)")
    parser.add_argument("--output", default=str(DEFAULT_OUTPUT), help="JSON path, or - for standard output")
    args = parser.parse_args(argv)
    from qa_core.runtime import configure_process

    configure_process()
    report = with_machine(lambda: {"model": args.run_dir,
                                   "variants": measure(args.run_dir, args.dev_file, args.rounds)})
    write_report(report, args.output)


if __name__ == "__main__":
    main()
