"""How featurization and evaluation cost grow with data size, and featurizing a full-SQuAD-sized set in chunks.

    python -m bench.bench_scaling            # → bench/results/scaling.json
    python -m bench.bench_scaling --smoke    # tiny sizes, writes nothing
    python -m bench.bench_scaling --table    # the README tables from the JSON

Scales: the dev subset repeated 1x, 4x and 16x (every copy's questions get new ids), each in its own process:
windows/s of featurization and of evaluation (forward passes of the embedded model, span search, metrics),
and peak RSS. Full size: a training set of 87,599 questions (the size of SQuAD v1.1 train) built by repeating
the train subset, featurized for training by featurize_in_chunks while only counting windows, so memory stays
bounded; the all-at-once featurize (every window kept, as training keeps them) is measured on 1x and 4x the train
subset, extrapolated to that size, and measured at that size.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

DEFAULT_SQUAD = ROOT.parent / "shared" / "squad"
DEFAULT_OUTPUT = ROOT / "bench" / "results" / "scaling.json"
SCALES = (1, 4, 16)
UNCHUNKED_SCALES = (1, 4)
FULL_SQUAD_TRAIN_QUESTIONS = 87_599
CHUNK_SIZE = 1000
SMOKE = dict(scales=(1, 2), limit=20, unchunked_scales=(1, 2), full_questions=1500, chunk_size=500, train_limit=300)
KIB_PER_GIB = 2 ** 20


def repeat_examples(examples, times: int) -> tuple:
    """`times` copies of the examples, copy k > 0 with ids suffixed '-k', so ids stay unique as in real data."""
    return tuple(e if k == 0 else dataclasses.replace(e, example_id=f"{e.example_id}-{k}")
                 for k in range(times) for e in examples)


def measure_scale(dev_file: str, times: int, limit: int | None) -> dict:
    """Featurize and evaluate `times` copies of the dev examples with the embedded model (CLI defaults)."""
    import torch

    from qa_core.config import QAConfig
    from qa_core.data import load_examples
    from qa_core.evaluation import evaluate
    from qa_core.features import featurize
    from qa_core.inference import run_model
    from qa_core.modeling import fit_config, load_model
    from qa_core.precision import set_up_precision

    loaded = load_model(QAConfig().model_name_or_path)
    config = fit_config(QAConfig(), loaded)
    examples = repeat_examples(load_examples(dev_file, "validation", limit).examples, times)
    started = time.perf_counter()
    features = featurize(examples, loaded.tokenizer, config, training=False).features
    featurize_seconds = time.perf_counter() - started
    batch = config.per_device_eval_batch_size
    bf16 = set_up_precision(loaded.model, config.bf16, torch.device("cpu"), training=False)  # as train.py evaluate does
    run_model(loaded.model, features[:batch], batch, bf16, loaded.batch_format)  # warm-up
    started = time.perf_counter()
    metrics = evaluate(loaded.model, examples, features, config, bf16, batch_format=loaded.batch_format).metrics
    eval_seconds = time.perf_counter() - started
    return {"times": times, "questions": len(examples), "windows": len(features),
            "featurize_seconds": round(featurize_seconds, 2),
            "featurize_windows_per_s": round(len(features) / featurize_seconds, 1),
            "eval_seconds": round(eval_seconds, 2), "eval_windows_per_s": round(len(features) / eval_seconds, 1),
            "f1": round(metrics.f1, 2)}


def measure_featurize(train_file: str, questions: int | None, times: int, limit: int | None,
                      chunk_size: int | None) -> dict:
    """Training featurization of a repeated train set, all at once (kept) or in chunks (counted, then dropped)."""
    from transformers import AutoTokenizer

    from qa_core.config import QAConfig
    from qa_core.data import load_examples
    from qa_core.features import featurize, featurize_in_chunks
    from qa_core.modeling import embedded_model_path

    config = QAConfig()
    tokenizer = AutoTokenizer.from_pretrained(embedded_model_path())
    base = load_examples(train_file, "train", limit).examples
    if questions:
        times = -(-questions // len(base))
    examples = repeat_examples(base, times)[:questions]
    started = time.perf_counter()
    if chunk_size:
        chunks = featurize_in_chunks(examples, tokenizer, config, training=True, chunk_size=chunk_size)
        windows = sum(len(chunk.features) for chunk in chunks)
    else:
        features = featurize(examples, tokenizer, config, training=True).features
        windows = len(features)
    seconds = time.perf_counter() - started
    return {"questions": len(examples), "chunk_size": chunk_size, "windows": windows, "seconds": round(seconds, 1),
            "windows_per_s": round(windows / seconds, 1)}


def run_child(args: argparse.Namespace) -> dict:
    from qa_core.runtime import configure_process

    configure_process()
    spec = json.loads(args.child)
    squad = Path(args.squad_dir)
    if spec["what"] == "scale":
        figures = measure_scale(str(squad / "dev-v1.1-subset.json"), spec["times"], spec["limit"])
    else:
        figures = measure_featurize(str(squad / "train-v1.1-subset.json"), spec.get("questions"), spec.get("times", 1),
                                    spec.get("limit"), spec.get("chunk_size"))
    return figures | {"peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / KIB_PER_GIB, 3)}


def spawn(spec: dict, args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        subprocess.run([sys.executable, "-m", "bench.bench_scaling", "--child", json.dumps(spec),
                        "--child-output", str(out),
                        "--squad-dir", str(args.squad_dir)], check=True, cwd=ROOT,
                       env=dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="true"))
        result = json.loads(out.read_text())
        print(json.dumps(result), file=sys.stderr)
        return result


def extrapolate(unchunked: list[dict], full: dict) -> dict:
    """Peak RSS as a line through the smallest and largest all-at-once runs; time at the smallest run's rate."""
    small, large = unchunked[0], unchunked[-1]
    gib_per_window = (large["peak_rss_gib"] - small["peak_rss_gib"]) / max(large["windows"] - small["windows"], 1)
    peak = small["peak_rss_gib"] + gib_per_window * (full["windows"] - small["windows"])
    return {"all_at_once_peak_rss_gib": round(peak, 2),
            "all_at_once_kib_per_window": round(gib_per_window * KIB_PER_GIB, 1),
            "seconds_at_1x_rate": round(full["windows"] / small["windows_per_s"], 1)}


def benchmark(args: argparse.Namespace) -> dict:
    smoke = SMOKE if args.smoke else {}
    scales = [spawn({"what": "scale", "times": t, "limit": smoke.get("limit")}, args)
              for t in smoke.get("scales", args.scales)]
    unchunked = [spawn({"what": "featurize", "times": t, "limit": smoke.get("train_limit")}, args)
                 for t in smoke.get("unchunked_scales", UNCHUNKED_SCALES)]
    full_questions = smoke.get("full_questions", FULL_SQUAD_TRAIN_QUESTIONS)
    full = spawn({"what": "featurize", "questions": full_questions, "limit": smoke.get("train_limit"),
                  "chunk_size": smoke.get("chunk_size", CHUNK_SIZE)}, args)
    whole = spawn({"what": "featurize", "questions": full_questions, "limit": smoke.get("train_limit")}, args)
    return {"conditions": {"date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "cpus": os.cpu_count(),
                           "load_average_at_start": [round(x, 2) for x in os.getloadavg()], "nice": os.nice(0)},
            "scales": scales, "linearity": linearity(scales), "featurize_all_at_once": unchunked,
            "full_size_in_chunks": full, "full_size_extrapolated": extrapolate(unchunked, full),
            "full_size_all_at_once": whole}


def linearity(scales: list[dict]) -> dict:
    """Throughput at the largest scale over throughput at the smallest: 1.0 is exactly linear cost."""
    first, last = scales[0], scales[-1]
    return {name: round(last[name] / first[name], 3) for name in ("featurize_windows_per_s", "eval_windows_per_s")}


def markdown_tables(report: dict) -> str:
    lines = ["| dev subset × | questions | windows | featurize windows/s | evaluate windows/s | peak RSS (GiB) |",
             "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {s['times']}× | {s['questions']:,} | {s['windows']:,} | {s['featurize_windows_per_s']:,} | "
              f"{s['eval_windows_per_s']:,} | {s['peak_rss_gib']} |" for s in report["scales"]]
    full, guess = report["full_size_in_chunks"], report["full_size_extrapolated"]
    lines += ["", "| training featurization | questions | windows | seconds | windows/s | peak RSS (GiB) |",
              "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| all at once | {u['questions']:,} | {u['windows']:,} | {u['seconds']} | {u['windows_per_s']:,} | "
              f"{u['peak_rss_gib']} |" for u in report["featurize_all_at_once"]]
    lines.append(f"| in chunks of {full['chunk_size']:,} | {full['questions']:,} | {full['windows']:,} | "
                 f"{full['seconds']} | {full['windows_per_s']:,} | {full['peak_rss_gib']} |")
    lines.append(f"| all at once, extrapolated | {full['questions']:,} | {full['windows']:,} | "
                 f"{guess['seconds_at_1x_rate']} | | {guess['all_at_once_peak_rss_gib']} |")
    if whole := report.get("full_size_all_at_once"):
        lines.append(f"| all at once, measured | {whole['questions']:,} | {whole['windows']:,} | {whole['seconds']} | "
                     f"{whole['windows_per_s']:,} | {whole['peak_rss_gib']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes to check the script end to end")
    parser.add_argument("--squad-dir", default=str(DEFAULT_SQUAD), help="folder of the shared SQuAD subsets")
    parser.add_argument("--scales", type=lambda text: tuple(int(t) for t in text.split(",")), default=SCALES,
                        help="comma-separated multiples of the dev subset (default: 1,4,16)")
    parser.add_argument("--output", help=f"JSON report (default: {DEFAULT_OUTPUT.relative_to(ROOT)}; none for --smoke)")
    parser.add_argument("--table", action="store_true", help="print the README tables of --output and exit")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-output", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        Path(args.child_output).write_text(json.dumps(run_child(args)))
        return
    output = Path(args.output) if args.output else (None if args.smoke else DEFAULT_OUTPUT)
    if args.table:
        print(markdown_tables(json.loads((output or DEFAULT_OUTPUT).read_text())))
        return
    report = benchmark(args)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))
    print(markdown_tables(report))


if __name__ == "__main__":
    main()
