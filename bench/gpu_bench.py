"""GPU throughput: train a fixed number of steps, then time evaluation passes; windows/s, tokens/s and MFU as JSON.

    python -m bench.make_bundle                 # once, where the embedded model is installed (bench/bundle/)
    python -m bench.gpu_bench                   # MiniLM (bf16 copy) and a random BERT-base; bench/results/gpu.json
    python -m bench.gpu_bench --compile         # the same with torch.compile
    python -m bench.gpu_bench --dry-run         # CPU smoke run: 2 steps on a few questions
    python -m bench.gpu_bench --models bert-base --batch-size 256 --profile-steps 3 --no-eval
                                                # where a step's device time goes (kernel classes, top kernels)

A window (a feature: the question and part of a context) is the unit the model trains on. Model FLOPs follow
PaLM's MFU: per sequence of L real tokens, passes * (2 * N * L + 4 * layers * hidden * L**2), with passes 3 for
a training step (forward + backward) and 1 for evaluation, and N the parameters outside the embedding tables
(lookups do no matrix products). MFU divides them by the time and the GPU's dense bf16 peak; mfu_padded counts
the padded tokens too, which is the work the GPU actually does.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import torch
from transformers import AutoTokenizer, BertConfig, BertForQuestionAnswering, get_linear_schedule_with_warmup

from bench.gpu_profile import profile_steps
from bench.report import write_report
from qa_core.batching import length_grouped_batches, padding_multiple, sorted_batches
from qa_core.config import QAConfig
from qa_core.data import load_examples
from qa_core.features import Feature, featurize
from qa_core.inference import run_model
from qa_core.modeling import load_model, set_attention_dropout
from qa_core.runtime import configure_process
from qa_core.train_step import batch_loader, build_optimizer, forward_backward, optimizer_step

ROOT = Path(__file__).resolve().parent.parent

BUNDLE = ROOT / "bench" / "bundle"
SQUAD_DIRS = (ROOT.parent / "shared" / "squad", BUNDLE / "squad")
RESULTS = ROOT / "bench" / "results"
# Dense (not sparse) bf16 tensor-core peaks in TFLOP/s from the vendors' datasheets; the first name the
# device's name contains wins, so longer names come first.
PEAK_BF16_TFLOPS = (("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.0), ("H200", 989.0), ("B200", 2250.0),
                    ("A100", 312.0), ("L40S", 362.0), ("L40", 181.0), ("L4", 121.0))
BERT_BASE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)


@dataclass(frozen=True)
class Pass:
    """What one timed stretch did: sequences, tokens and model FLOPs over wall-clock seconds."""

    seconds: float
    windows: int
    tokens: int  # real (non-pad) tokens
    padded_tokens: int
    flops: float  # model FLOPs on the real tokens
    padded_flops: float


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="minilm,bert-base", help="comma-separated: minilm, bert-base")
    parser.add_argument("--model-dir", default=str(BUNDLE / "minilm-bf16"),
                        help="MiniLM weights (bf16 copy from make_bundle.py); its tokenizer serves both models")
    parser.add_argument("--train-file", default=None, help="default: train-v1.1-subset.json in ../shared or bundle")
    parser.add_argument("--eval-file", default=None, help="default: dev-v1.1-subset.json in ../shared or bundle")
    parser.add_argument("--steps", type=int, default=200, help="timed optimizer steps per model")
    parser.add_argument("--warmup-steps", type=int, default=20, help="untimed steps first (kernels, compile)")
    parser.add_argument("--batch-size", type=int, default=64, help="training windows per step")
    parser.add_argument("--eval-batch-size", type=int, default=256)
    parser.add_argument("--eval-repeats", type=int, default=3, help="timed passes over the evaluation windows")
    parser.add_argument("--max-seq-length", type=int, default=256)
    parser.add_argument("--multiple-of", type=int, default=None,
                        help="pad batch lengths to a multiple of this (default: as training, 8 on CUDA); larger "
                             "multiples mean fewer distinct shapes")
    parser.add_argument("--doc-stride", type=int, default=128)
    parser.add_argument("--max-train-samples", type=int, default=None, help="keep the first N questions")
    parser.add_argument("--max-eval-samples", type=int, default=None)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    parser.add_argument("--bert-base-layers", type=int, default=12, help=argparse.SUPPRESS)  # dry run: 2
    parser.add_argument("--compile", action="store_true", help="torch.compile(model, dynamic=True)")
    parser.add_argument("--profile-steps", type=int, default=0,
                        help="after the timed steps, this many more under torch.profiler: kernel time by class")
    parser.add_argument("--no-eval", dest="eval", action="store_false", help="training steps only")
    parser.add_argument("--no-cudnn-attention", dest="cudnn_attention", action="store_false",
                        help="SDPA without its cuDNN backend (which builds a plan for every new shape)")
    parser.add_argument("--no-bf16", dest="bf16", action="store_false", help="fp32 instead of bf16 autocast")
    parser.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak; default: from the table")
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--output", default=None, help="default: bench/results/gpu.json (gpu-dry-run.json)")
    parser.add_argument("--dry-run", action="store_true", help="CPU, 2 steps, a few questions: checks the script")
    return with_dry_run(parser.parse_args(argv))


def with_dry_run(args: argparse.Namespace) -> argparse.Namespace:
    """Shrink everything so a CPU finishes in seconds; the code path stays the one a GPU run takes, but in fp32
    (CPUs without bf16 units emulate it, slowly) and with a 2-layer BERT-base."""
    if args.dry_run:
        args.device, args.steps, args.warmup_steps, args.workers, args.bf16 = "cpu", 2, 1, 0, False
        args.batch_size, args.eval_batch_size, args.eval_repeats, args.bert_base_layers = 2, 8, 1, 2
        args.max_seq_length, args.doc_stride = 128, 32
        args.max_train_samples = args.max_train_samples or 24
        args.max_eval_samples = args.max_eval_samples or 4
    args.output = args.output or str(RESULTS / ("gpu-dry-run.json" if args.dry_run else "gpu.json"))
    return args


def find_squad(given: str | None, name: str) -> str:
    if given:
        return given
    for folder in SQUAD_DIRS:
        if (folder / name).exists():
            return str(folder / name)
    raise SystemExit(f"{name} is in neither {' nor '.join(map(str, SQUAD_DIRS))}: pass its path, "
                     f"or run python -m bench.make_bundle")


def peak_for_name(name: str) -> float | None:
    return next((peak for key, peak in PEAK_BF16_TFLOPS if key in name), None)


def peak_tflops(device: torch.device, given: float | None) -> float | None:
    if given or device.type != "cuda":
        return given
    return peak_for_name(torch.cuda.get_device_name(device))


def build_model(kind: str, model_dir: str, device: torch.device, bert_layers: int = 12) -> torch.nn.Module:
    """fp32 master weights either way, bf16 from autocast; the attention dropout train.py uses by default."""
    if kind == "minilm":
        return load_model(model_dir, device, QAConfig().attention_dropout).model
    if kind == "bert-base":
        vocab = len(AutoTokenizer.from_pretrained(model_dir))
        torch.manual_seed(0)
        config = BertConfig(vocab_size=vocab, max_position_embeddings=512, **{**BERT_BASE,
                                                                              "num_hidden_layers": bert_layers})
        return BertForQuestionAnswering(set_attention_dropout(config, QAConfig().attention_dropout)).to(device)
    raise SystemExit(f"unknown model {kind!r}: minilm or bert-base")


def model_facts(model: torch.nn.Module) -> dict:
    embedding = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Embedding))
    total = sum(p.numel() for p in model.parameters())
    config = model.config
    return {"parameters": total, "non_embedding_parameters": total - embedding, "layers": config.num_hidden_layers,
            "hidden": config.hidden_size, "attn_implementation": config._attn_implementation}


def sequence_flops(lengths: list[int], facts: dict, passes: int) -> float:
    """PaLM's model FLOPs: matrix products with the weights plus attention scores and mixing."""
    n, layers, hidden = facts["non_embedding_parameters"], facts["layers"], facts["hidden"]
    return float(sum(passes * (2 * n * length + 4 * layers * hidden * length * length) for length in lengths))


def measure(batches: list[list[int]], features: tuple[Feature, ...], facts: dict, passes: int, multiple_of: int,
            seconds: float) -> Pass:
    """Count what the given batches held; padded lengths as collate pads them."""
    real = [len(features[i].input_ids) for batch in batches for i in batch]
    padded = [math.ceil(max(len(features[i].input_ids) for i in batch) / multiple_of) * multiple_of
              for batch in batches for _ in batch]
    return Pass(seconds, len(real), sum(real), sum(padded), sequence_flops(real, facts, passes),
                sequence_flops(padded, facts, passes))


def rates(done: Pass, peak: float | None) -> dict:
    per_s = 1 / max(done.seconds, 1e-9)
    mfu = (lambda flops: round(flops * per_s / (peak * 1e12), 4) if peak else None)
    return {**asdict(done), "windows_per_s": round(done.windows * per_s, 1),
            "tokens_per_s": round(done.tokens * per_s), "padded_tokens_per_s": round(done.padded_tokens * per_s),
            "padding_fraction": round(1 - done.tokens / max(done.padded_tokens, 1), 4),
            "model_tflops_per_s": round(done.flops * per_s / 1e12, 3), "mfu": mfu(done.flops),
            "mfu_padded": mfu(done.padded_flops)}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_batches(features: tuple[Feature, ...], batch_size: int, count: int) -> list[list[int]]:
    """Length-grouped batches as training draws them, epoch after epoch until there are enough."""
    if not features:
        raise SystemExit("no training window holds an answer")
    batches: list[list[int]] = []
    epoch = 0
    while len(batches) < count:
        batches += length_grouped_batches([len(f.input_ids) for f in features], batch_size, 42 + epoch)
        epoch += 1
    return batches[:count]


def one_step(model: torch.nn.Module, loader: Iterator[dict[str, torch.Tensor]], optimizer: torch.optim.Optimizer,
             scheduler: torch.optim.lr_scheduler.LRScheduler, max_grad_norm: float, bf16: bool) -> torch.Tensor:
    loss = forward_backward(model, next(loader), bf16)
    optimizer_step(model, optimizer, scheduler, max_grad_norm)
    return loss


def train_pass(model: torch.nn.Module, features: tuple[Feature, ...], args: argparse.Namespace,
               device: torch.device, facts: dict) -> tuple[Pass, dict]:
    """qa_core.training's own step (forward_backward + optimizer_step) and loader, timed after warm-up steps;
    then --profile-steps more under the profiler."""
    config = QAConfig(learning_rate=1e-4, per_device_train_batch_size=args.batch_size)
    optimizer = build_optimizer(model, config, device)
    total = args.warmup_steps + args.steps + args.profile_steps
    scheduler = get_linear_schedule_with_warmup(optimizer, math.ceil(0.1 * total), total)
    batches = train_batches(features, args.batch_size, total)
    multiple_of = args.multiple_of or padding_multiple(device)
    loader = iter(batch_loader(features, batches, device, num_workers=args.workers, multiple_of=multiple_of))
    model.train()
    run_step = partial(one_step, model, loader, optimizer, scheduler, config.max_grad_norm, args.bf16)
    loss, start = torch.zeros(()), time.perf_counter()
    for _ in range(args.warmup_steps):
        loss = run_step()
    synchronize(device)
    warmup_seconds, start = time.perf_counter() - start, time.perf_counter()
    for _ in range(args.steps):
        loss = run_step()
    synchronize(device)
    seconds = time.perf_counter() - start
    profiled = profile_steps(run_step, args.profile_steps, partial(synchronize, device)) if args.profile_steps else None
    timed = batches[args.warmup_steps:args.warmup_steps + args.steps]
    extra = {"warmup_seconds": round(warmup_seconds, 2), "last_loss": round(float(loss), 4), "profile": profiled}
    return measure(timed, features, facts, 3, multiple_of, seconds), extra


def eval_pass(model: torch.nn.Module, features: tuple[Feature, ...], args: argparse.Namespace,
              device: torch.device, facts: dict) -> Pass:
    """qa_core's evaluation forward (run_model: sorted batches, logits back on the CPU), after one warm-up pass."""
    run_model(model, features, args.eval_batch_size, args.bf16)
    synchronize(device)
    start = time.perf_counter()
    for _ in range(args.eval_repeats):
        run_model(model, features, args.eval_batch_size, args.bf16)
    synchronize(device)
    seconds = time.perf_counter() - start
    batches = sorted_batches([len(f.input_ids) for f in features], args.eval_batch_size) * args.eval_repeats
    return measure(batches, features, facts, 1, 1, seconds)


def bench_model(kind: str, data: dict[str, tuple[Feature, ...]], args: argparse.Namespace,
                device: torch.device, peak: float | None) -> dict:
    model = build_model(kind, args.model_dir, device, args.bert_base_layers)
    facts = model_facts(model)
    if args.compile:
        model = torch.compile(model, dynamic=True)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    trained, extra = train_pass(model, data["train"], args, device, facts)
    evaluated = eval_pass(model, data["eval"], args, device, facts) if args.eval else None
    memory = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return {"model": facts, "train": {**rates(trained, peak), "steps": args.steps, **extra},
            "eval": {**rates(evaluated, peak), "passes": args.eval_repeats} if evaluated else None,
            "peak_memory_gib": round(memory, 2) if memory else None}


def load_features(args: argparse.Namespace) -> dict[str, tuple[Feature, ...]]:
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    config = QAConfig(max_seq_length=args.max_seq_length, doc_stride=args.doc_stride)
    train = load_examples(args.train_file, "train", args.max_train_samples)
    dev = load_examples(args.eval_file, "validation", args.max_eval_samples)
    return {"train": featurize(train.examples, tokenizer, config, training=True).features,
            "eval": featurize(dev.examples, tokenizer, config, training=False).features}


def machine(device: torch.device, peak: float | None) -> dict:
    import transformers

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    return {"device": name, "peak_bf16_tflops": peak, "torch": torch.__version__,
            "transformers": transformers.__version__, "cuda": torch.version.cuda, "python": platform.python_version()}


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    configure_process()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda":  # as qa_core.training does
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cuda.enable_cudnn_sdp(args.cudnn_attention)
    peak = peak_tflops(device, args.peak_tflops)
    args.train_file = find_squad(args.train_file, "train-v1.1-subset.json")
    args.eval_file = find_squad(args.eval_file, "dev-v1.1-subset.json")
    data = load_features(args)
    settings = {k: v for k, v in vars(args).items() if k not in ("output",)}
    report = {"machine": machine(device, peak), "settings": settings,
              "windows": {"train": len(data["train"]), "eval": len(data["eval"])},
              "results": {kind: bench_model(kind, data, args, device, peak) for kind in args.models.split(",")}}
    if args.output != "-":
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        print(json.dumps(report, indent=1))  # in the device call's log too, should the file not come back
    write_report(report, args.output)
    return report


if __name__ == "__main__":
    main()
