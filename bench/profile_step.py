"""Where a training step's time goes: data, forward, backward, optimizer, per variant, each in its own process.

    python -m bench.profile_step                 # the variants below, 40 timed steps each → bench/results/profile-step.json
    python -m bench.profile_step --steps 5 --train-limit 300 --output -   # quick check, prints the JSON

Variants differ in precision (fp32 or bf16 autocast); in attention (PyTorch's fused kernel in bf16 or in fp32,
or qa_core.attention's bf16 matrix products); in how batch lengths are rounded (1: every batch its own shape;
32: at most max_seq_length / 32 shapes) and in oneDNN's per-shape cache (32 or 1024 entries), which is the
"primitive creation for new shapes" cost: with a small cache and many shapes, kernels are rebuilt; in nn.Dropout
against qa_core.dropout's masks; and eager against torch.compile.
The last steps run again under torch.profiler, for the operators with the most CPU time.
Same protocol as bench/bench_train.py (embedded MiniLM, 256/128 windows, batch 16, length-grouped batches).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

from bench.report import with_machine, write_report

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TRAIN = ROOT.parent / "shared" / "squad" / "train-v1.1-subset.json"
DEFAULT_OUTPUT = ROOT / "bench" / "results" / "profile-step.json"


@dataclass(frozen=True)
class Variant:
    bf16: bool
    # under bf16: "cpu_bf16" (qa_core.attention, what train() uses), "sdpa_fp32" or "sdpa" (PyTorch's fused kernel
    # with inputs cast to fp32, or as autocast leaves them, in bf16); "matmul": qa_core.attention's matrix products
    # in whatever dtype the model computes (fp32 without autocast)
    attention: str = "cpu_bf16"
    multiple_of: int = 1  # batch lengths rounded up to a multiple of this
    onednn_cache: int = 32  # oneDNN's per-shape kernel cache (entries)
    masked_dropout: bool = False  # qa_core.dropout's masks instead of nn.Dropout's
    compile: bool = False  # torch.compile(dynamic=True), compiled during the untimed steps


VARIANTS = {
    "fp32": Variant(False, "sdpa"),
    "bf16, fused bf16 attention": Variant(True, "sdpa"),
    "bf16, fused fp32 attention": Variant(True, "sdpa_fp32"),
    "bf16, fused fp32 attention, lengths to 32": Variant(True, "sdpa_fp32", multiple_of=32),
    "bf16, fused fp32 attention, lengths to 32, cache 1024": Variant(True, "sdpa_fp32", multiple_of=32,
                                                                     onednn_cache=1024),
    "bf16, fused fp32 attention, torch.compile": Variant(True, "sdpa_fp32", compile=True),
    "bf16, fused fp32 attention, masked dropout": Variant(True, "sdpa_fp32", masked_dropout=True),
    "bf16, bf16 matrix-product attention, masked dropout (the default)": Variant(True, masked_dropout=True),
    "bf16, bf16 matrix-product attention, masked dropout, lengths to 16": Variant(True, masked_dropout=True,
                                                                                 multiple_of=16),
    "bf16, bf16 matrix-product attention, masked dropout, lengths to 64": Variant(True, masked_dropout=True,
                                                                                 multiple_of=64),
    "bf16, bf16 matrix-product attention, masked dropout, cache 1024": Variant(True, masked_dropout=True,
                                                                              onednn_cache=1024),
    "bf16, bf16 matrix-product attention, masked dropout, lengths to 16, cache 1024": Variant(
        True, masked_dropout=True, multiple_of=16, onednn_cache=1024),
    "bf16, bf16 matrix-product attention, masked dropout, torch.compile": Variant(True, masked_dropout=True,
                                                                                 compile=True),
    "fp32, masked dropout (the default without native bf16)": Variant(False, "sdpa", masked_dropout=True),
    "fp32, fp32 matrix-product attention, masked dropout": Variant(False, "matmul", masked_dropout=True),
}
PARTS = ("data", "forward", "backward", "optimizer")
PROFILED_STEPS = 5  # the last timed steps, run again under torch.profiler for the operator shares
TOP_OPERATORS = 10


def profile(train_file: str, steps: int, warmup: int, train_limit: int | None, variant: Variant) -> dict:
    """Time each part of `steps` optimizer steps after `warmup` untimed ones; one batch per step."""
    import torch

    from qa_core.config import QAConfig
    from qa_core.data import load_examples
    from qa_core.batching import training_batches
    from qa_core.features import featurize
    from qa_core.modeling import load_model
    from qa_core.train_step import build_optimizer
    from transformers import get_scheduler, set_seed

    config = QAConfig(train_file=train_file, learning_rate=1e-4, seed=42)
    set_seed(config.seed)
    device = torch.device("cpu")
    loaded = load_model(config.model_name_or_path, device, config.attention_dropout)
    examples = load_examples(train_file, "train", train_limit).examples
    features = featurize(examples, loaded.tokenizer, config, training=True).features
    batches = training_batches(features, config, 0)[:warmup + steps]
    optimizer = build_optimizer(loaded.model, config, device)
    scheduler = get_scheduler("linear", optimizer, 0, len(batches))
    model = prepare_model(loaded.model, variant, device)
    step = partial(run_step, model, optimizer, scheduler, config.max_grad_norm, variant)
    collate_rows = partial(collate_timed, features, loaded.batch_format, variant.multiple_of)
    times: dict[str, list[float]] = {part: [] for part in PARTS}
    lengths, started, warmup_s = [], time.perf_counter(), 0.0
    for index, rows in enumerate(batches):
        batch, data_s = collate_rows(rows)
        parts = (data_s, *step(batch))
        if index == warmup - 1:
            warmup_s = time.perf_counter() - started  # compiling, for the torch.compile variant
        if index >= warmup:
            lengths.append(batch["input_ids"].shape[1])
            for part, seconds in zip(PARTS, parts):
                times[part].append(seconds)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
        for rows in batches[-PROFILED_STEPS:]:
            step(collate_rows(rows)[0])
    totals = [sum(parts) for parts in zip(*times.values())]
    return {"steps": steps, "warmup_steps": warmup, "warmup_s": warmup_s,
            "mean_step_s": statistics.fmean(totals), "median_step_s": statistics.median(totals),
            "parts_mean_s": {part: statistics.fmean(values) for part, values in times.items()},
            "top_operators_self_cpu_share": operator_shares(profiler),
            "distinct_lengths": len(set(lengths)), "mean_length": statistics.fmean(lengths),
            "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20}


def prepare_model(model, variant: Variant, device):
    """The model in training mode, set up as the variant trains it (train() applies its attention and masked
    dropout on a CPU with bf16 through set_up_precision and wrap_model; here each can be switched on its own)."""
    import torch

    from qa_core.attention import (CPU_BF16_ATTENTION, attention_for_bf16, cpu_bf16_attention, sdpa_in_fp32,
                                   switch_attention)
    from qa_core.dropout import use_masked_dropout

    if variant.bf16 and variant.attention == "cpu_bf16":
        attention_for_bf16(model, device, variant.bf16)
    elif variant.attention == "matmul":  # qa_core.attention's matrix products, in the model's own dtype
        switch_attention(model, CPU_BF16_ATTENTION, cpu_bf16_attention)
    elif variant.bf16 and variant.attention == "sdpa_fp32":
        switch_attention(model, "sdpa_fp32", sdpa_in_fp32)
    if variant.masked_dropout:
        use_masked_dropout(model)
    model.train()
    return torch.compile(model, dynamic=True) if variant.compile else model


def collate_timed(features, batch_format, multiple_of: int, rows: list[int]) -> tuple[dict, float]:
    """The padded batch of these rows, and the seconds collating took (the step's data part)."""
    from qa_core.batching import collate

    started = time.perf_counter()
    batch = collate([features[i] for i in rows], batch_format, multiple_of=multiple_of)
    return batch, time.perf_counter() - started


def run_step(model, optimizer, scheduler, max_grad_norm: float, variant: Variant,
             batch: dict) -> tuple[float, float, float]:
    """One optimizer step on a collated batch: seconds of forward, backward and the optimizer."""
    import torch

    from qa_core.precision import autocast
    from qa_core.runtime import large_blocks_mapped
    from qa_core.train_step import optimizer_step

    marks = [time.perf_counter()]
    with large_blocks_mapped():  # as forward_backward does on a CPU
        with autocast(torch.device("cpu"), variant.bf16):
            loss = model(**batch).loss
        marks.append(time.perf_counter())
        loss.backward()
        marks.append(time.perf_counter())
    optimizer_step(model, optimizer, scheduler, max_grad_norm)
    marks.append(time.perf_counter())
    return tuple(end - begin for begin, end in zip(marks, marks[1:]))


def operator_shares(profiler) -> dict[str, float]:
    """The operators with the most self CPU time, as shares of all of it (a step's operators run one at a time)."""
    events = profiler.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    ranked = sorted(events, key=lambda e: -e.self_cpu_time_total)[:TOP_OPERATORS]
    return {e.key: round(e.self_cpu_time_total / total, 3) for e in ranked}


def run_variant(name: str, args: argparse.Namespace) -> dict:
    """One variant in a fresh process: oneDNN reads its cache size once, at start-up."""
    variant = VARIANTS[name]
    cache = str(variant.onednn_cache)
    env = dict(os.environ, ONEDNN_PRIMITIVE_CACHE_CAPACITY=cache, LRU_CACHE_CAPACITY=cache)
    command = [sys.executable, "-m", "bench.profile_step", "--child", name, "--steps", str(args.steps),
               "--warmup", str(args.warmup), "--train-file", args.train_file]
    command += ["--train-limit", str(args.train_limit)] if args.train_limit else []
    done = subprocess.run(command, env=env, cwd=ROOT, check=True, stdout=subprocess.PIPE, text=True)
    return {**asdict(variant), **json.loads(done.stdout)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-file", default=str(DEFAULT_TRAIN))
    parser.add_argument("--steps", type=int, default=40, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--train-limit", type=int, default=None, help="training questions read (default: all)")
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--output", default=str(DEFAULT_OUTPUT), help="JSON path, or - for standard output")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        json.dump(profile(args.train_file, args.steps, args.warmup, args.train_limit, VARIANTS[args.child]),
                  sys.stdout)
        return
    report = with_machine(lambda: {
        "protocol": "embedded MiniLM, max_seq_length 256, doc_stride 128, batch 16, length-grouped batches",
        "variants": {name: run_variant(name, args) for name in args.variants}})
    write_report(report, args.output)


if __name__ == "__main__":
    main()
