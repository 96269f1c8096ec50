"""Training benchmark on ../shared/squad: `train.py train` (defaults) vs. transformers' Trainer with run_qa.py's recipe.

    python -m bench.bench_train --full                  # 3 alternating rounds of 30 steps each, then one full
                                                        # (2-epoch) run of each → bench/results/train-vs-trainer.json
    python -m bench.bench_train --short-steps 30 --rounds 3   # only the alternation (speed ratio)
    python -m bench.bench_train --rounds 0 --full        # only the full runs (F1, peak memory)
    python -m bench.bench_train --smoke                  # 5 steps on 200 questions, 20 dev questions; writes nothing
    python -m bench.bench_train --table                  # the README table from the JSON

Every run is its own child process (so its peak memory and warm caches are its own): the reference
(bench/run_qa_reference.py, the Trainer as shipped) and ours (train.py's parser and defaults, train(), then an
evaluation of the saved model). --with-reference-mode adds our loop in reference mode (run_qa.py's padding,
batches, precision and dropout) as a third child.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

from bench.report import cpu_description

ROOT = Path(__file__).resolve().parent.parent

DEFAULT_SQUAD = ROOT.parent / "shared" / "squad"
DEFAULT_OUTPUT = ROOT / "bench" / "results" / "train-vs-trainer.json"
KINDS = ("trainer", "ours", "ours-reference-mode")
# Our loop set up the way run_qa.py runs: windows padded to 256, random batches, the model's attention dropout,
# evaluation batch 8, fp32.
REFERENCE_MODE_ARGS = ["--pad_to_max_length", "--no-group_by_length", "--attention_dropout", "none",
                       "--per_device_eval_batch_size", "8", "--no-bf16"]
PROTOCOL_LEARNING_RATE = 1e-4  # the Trainer's too (run_qa_reference.py); our default peak is higher (README)
SMOKE = dict(steps=5, train_limit=200, eval_limit=20)
KIB_PER_GIB = 2 ** 20


def run_ours(train_file: str, dev_file: str, max_steps: int, output_dir: str, train_limit: int | None,
             eval_limit: int | None, reference_mode: bool = False) -> dict:
    """`train.py train` with its defaults (same parser, same train()), then the saved model evaluated on dev_file."""
    import torch

    from qa_core import cli
    from qa_core.data import load_examples
    from qa_core.evaluation import evaluate
    from qa_core.features import featurize
    from qa_core.precision import set_up_precision
    from qa_core.modeling import fit_config, load_model
    from qa_core.training import train

    argv = ["train", "--train_file", train_file, "--output_dir", output_dir, "--overwrite_output_dir",
            "--max_steps", str(max_steps), "--logging_steps", "1", "--learning_rate", str(PROTOCOL_LEARNING_RATE)]
    argv += ["--max_train_samples", str(train_limit)] if train_limit else []
    argv += REFERENCE_MODE_ARGS if reference_mode else []
    config = cli.config_from_args(cli.build_parser().parse_args(argv))
    step_times: list[float] = []
    started = time.perf_counter()
    result = train(config, callback=partial(record_step, step_times))
    train_seconds = time.perf_counter() - started
    train_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    loaded = load_model(output_dir)
    config = fit_config(config, loaded)  # as train.py evaluate does
    bf16 = set_up_precision(loaded.model, config.bf16, torch.device("cpu"), training=False)  # as train.py evaluate does
    started = time.perf_counter()
    examples = load_examples(dev_file, "validation", eval_limit).examples
    features = featurize(examples, loaded.tokenizer, config, training=False).features
    metrics = evaluate(loaded.model, examples, features, config, bf16, batch_format=loaded.batch_format).metrics
    eval_seconds = time.perf_counter() - started
    return {"steps": result.step, "train_features": result.windows_trained, "train_seconds": train_seconds,
            "step_times": step_times, "train_peak_rss_kib": train_peak, "eval_seconds": eval_seconds,
            "eval_features": len(features), "exact_match": metrics.exact_match, "f1": metrics.f1,
            "settings": {k: v for k, v in config.to_dict().items() if k not in ("train_file", "output_dir")}
            | {"bf16": bf16}}


def record_step(times: list[float], event) -> None:
    """Progress callback: the time of every optimizer step (train.py's logging_steps 1 reports each)."""
    if event.kind == "step":
        times.append(time.perf_counter())


def run_child(kind: str, args: argparse.Namespace) -> dict:
    """One run in the child process: the kind's figures plus the child's own peak RSS."""
    squad = Path(args.squad_dir)
    train_file, dev_file = str(squad / "train-v1.1-subset.json"), str(squad / "dev-v1.1-subset.json")
    if kind == "trainer":
        from bench.run_qa_reference import run_reference
        figures = run_reference(train_file, dev_file, args.child_steps, args.run_dir, args.train_limit, args.eval_limit)
    else:
        from qa_core.runtime import configure_process
        configure_process()  # as train.py's main() does; the Trainer child runs as shipped
        figures = run_ours(train_file, dev_file, args.child_steps, args.run_dir, args.train_limit, args.eval_limit,
                           reference_mode=kind == "ours-reference-mode")
    return figures | {"peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}


def spawn(kind: str, steps: int, args: argparse.Namespace, run_dir: Path) -> dict:
    """Run one kind in a fresh process; adds the process's wall time and the derived figures."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        command = [sys.executable, "-m", "bench.bench_train", "--child", kind, "--child-steps", str(steps),
                   "--child-output", str(out),
                   "--run-dir", str(run_dir), "--squad-dir", str(args.squad_dir)]
        command += ["--train-limit", str(args.train_limit)] if args.train_limit else []
        command += ["--eval-limit", str(args.eval_limit)] if args.eval_limit else []
        env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="true")
        load_before, started = os.getloadavg()[0], time.perf_counter()
        subprocess.run(command, check=True, env=env, cwd=ROOT)
        wall = time.perf_counter() - started
        # 1-minute load averages around the run: this process's own work counts about 2 on 2 cores
        load = {"load_1min_before": round(load_before, 2), "load_1min_after": round(os.getloadavg()[0], 2)}
        return summarize(kind, json.loads(out.read_text()), wall) | load


def summarize(kind: str, raw: dict, process_seconds: float) -> dict:
    """Rounded figures of one run; the step time is the mean after the first step (which builds kernels)."""
    times = raw.pop("step_times")
    if len(times) > 1:
        step_seconds = (times[-1] - times[0]) / (len(times) - 1)
    else:
        step_seconds = raw["train_seconds"] / max(raw["steps"], 1)
    return {"kind": kind, "process_seconds": round(process_seconds, 1), "steps": raw["steps"],
            "train_features": raw["train_features"], "train_seconds": round(raw["train_seconds"], 1),
            "step_seconds": round(step_seconds, 3), "eval_seconds": round(raw["eval_seconds"], 2),
            "eval_features": raw["eval_features"], "exact_match": round(raw["exact_match"], 2),
            "f1": round(raw["f1"], 2), "train_peak_rss_gib": round(raw["train_peak_rss_kib"] / KIB_PER_GIB, 2),
            "peak_rss_gib": round(raw["peak_rss_kib"] / KIB_PER_GIB, 2), "settings": raw["settings"]}


RATIO_FIELDS = ("process_seconds", "train_seconds", "step_seconds", "eval_seconds", "peak_rss_gib")


def ratios(ours: dict, reference: dict) -> dict:
    """ours / reference for each timed figure and memory; F1 as a difference."""
    return {name: round(ours[name] / reference[name], 3) for name in RATIO_FIELDS} | {
        "f1_difference": round(ours["f1"] - reference["f1"], 2)}


def alternate(args: argparse.Namespace, kinds: list[str], report: dict, output: Path | None) -> dict:
    """R rounds, each running every kind for N steps in turn; ratios per round and their medians.

    The report is written after every round, so an interrupted benchmark keeps the rounds it finished."""
    rounds: list[dict] = []
    for number in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            runs = {kind: spawn(kind, args.short_steps, args, Path(tmp) / kind) for kind in kinds}
        rounds.append({"round": number + 1, "runs": runs, "ours_over_trainer": ratios(runs["ours"], runs["trainer"])})
        print(json.dumps(rounds[-1]["ours_over_trainer"]), file=sys.stderr)
        median = {name: round(statistics.median(r["ours_over_trainer"][name] for r in rounds), 3)
                  for name in RATIO_FIELDS}
        report["short"] = {"steps": args.short_steps, "rounds": rounds, "median_ours_over_trainer": median}
        write_report(report, output)
    return report["short"]


def write_report(report: dict, output: Path | None) -> None:
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(report | {"load_average_now": [round(x, 2) for x in os.getloadavg()]},
                                     indent=1) + "\n")


def full_runs(args: argparse.Namespace, kinds: list[str]) -> dict:
    """One full protocol run of each kind; ours stays in runs/bench-ours (bench_ask.py's model)."""
    with tempfile.TemporaryDirectory() as tmp:
        runs = {kind: spawn(kind, -1, args, ROOT / "runs" / "bench-ours" if kind == "ours" else Path(tmp) / kind)
                for kind in kinds}
    return {"runs": runs, "ours_over_trainer": ratios(runs["ours"], runs["trainer"])}


def conditions(args: argparse.Namespace) -> dict:
    import torch
    import transformers

    cpu = cpu_description()
    return {"date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "cpu": cpu.get("model_name"),
            "cpu_details": cpu, "cpus": os.cpu_count(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()], "nice": os.nice(0),
            "torch": torch.__version__, "transformers": transformers.__version__,
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "python": platform.python_version(),
            "train_limit": args.train_limit, "eval_limit": args.eval_limit}


def benchmark(args: argparse.Namespace, output: Path | None) -> dict:
    if args.ours_full_only:  # ours after a change, beside a Trainer full run measured before (not in one run)
        report = {"conditions": conditions(args), "ours_full": spawn("ours", -1, args, ROOT / "runs" / "bench-ours")}
        write_report(report, output)
        return report
    kinds = list(KINDS if args.with_reference_mode else KINDS[:2])
    report = {"conditions": conditions(args)}
    if args.rounds > 0:
        alternate(args, kinds, report, output)
    if args.full:
        report["full"] = full_runs(args, kinds)
    report["conditions"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    write_report(report, output)
    return report


SHORT_ROWS = (("step_seconds", "per step, s"), ("train_seconds", "training wall, s"),
              ("eval_seconds", "dev evaluation, s"), ("process_seconds", "process wall, s"),
              ("peak_rss_gib", "peak RSS, GiB"))
FULL_ROWS = (("train_seconds", "training wall, s"), ("step_seconds", "per step, s"),
             ("eval_seconds", "dev evaluation, s"), ("peak_rss_gib", "peak RSS, GiB"))


def markdown_table(report: dict) -> str:
    """The README table: per figure the median over the rounds (ratio: median of the rounds' ratios), full runs."""
    lines = ["| figure | Trainer + run_qa.py | ours (`train.py train`) | ours / Trainer |", "| --- | --- | --- | --- |"]
    if "short" in report:
        short = report["short"]
        where = f"{short['steps']}-step runs, median of {len(short['rounds'])}"
        for name, label in SHORT_ROWS:
            trainer, ours = (statistics.median(r["runs"][kind][name] for r in short["rounds"])
                             for kind in ("trainer", "ours"))
            ratio = short["median_ours_over_trainer"][name]
            lines.append(f"| {label} ({where}) | {trainer:.3g} | {ours:.3g} | {ratio:.2f}× |")
    if "full" in report:
        runs, ratio = report["full"]["runs"], report["full"]["ours_over_trainer"]
        for name, label in FULL_ROWS:
            lines.append(f"| {label} (full run) | {runs['trainer'][name]} | {runs['ours'][name]} | {ratio[name]:.2f}× |")
        for name in ("exact_match", "f1"):
            lines.append(f"| dev {name} (full run) | {runs['trainer'][name]} | {runs['ours'][name]} | |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short-steps", type=int, default=30, help="optimizer steps of each alternating run")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (Trainer, then ours); 0 for none")
    parser.add_argument("--full", action="store_true", help="also one full 2-epoch run of each")
    parser.add_argument("--smoke", action="store_true", help="tiny settings to check the script end to end")
    parser.add_argument("--ours-full-only", action="store_true",
                        help="only one full run of ours (its figures, no ratios), e.g. after a change")
    parser.add_argument("--with-reference-mode", action="store_true", help="also our loop in reference mode")
    parser.add_argument("--squad-dir", default=str(DEFAULT_SQUAD), help="folder of the shared SQuAD subsets")
    parser.add_argument("--train-limit", type=int, help="only the first N training questions")
    parser.add_argument("--eval-limit", type=int, help="only the first N dev questions")
    parser.add_argument("--output", help=f"JSON report (default: {DEFAULT_OUTPUT.relative_to(ROOT)}; none for --smoke)")
    parser.add_argument("--table", action="store_true", help="print the README table of --output and exit")
    for hidden in ("--child", "--child-output", "--run-dir"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    parser.add_argument("--child-steps", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.smoke:
        args.short_steps, args.rounds = SMOKE["steps"], 1
        args.train_limit = args.train_limit or SMOKE["train_limit"]
        args.eval_limit = args.eval_limit or SMOKE["eval_limit"]
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        Path(args.child_output).write_text(json.dumps(run_child(args.child, args)))
        return
    output = Path(args.output) if args.output else (None if args.smoke else DEFAULT_OUTPUT)
    if args.table:
        print(markdown_table(json.loads((output or DEFAULT_OUTPUT).read_text())))
        return
    report = benchmark(args, output)
    print(json.dumps(report, indent=1))
    print(markdown_table(report))


if __name__ == "__main__":
    main()
