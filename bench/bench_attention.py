"""Why attention is a large share of a CPU step: achieved GFLOP/s of attention kernels against a linear layer.

    python -m bench.bench_attention          # → bench/results/attention.json

MiniLM's shapes (12 heads of 32 dimensions, hidden 384, FFN 1536) at the evaluation batch (32 windows of 134
tokens, the dev subset's mean) and the training batch (16 windows of 157 tokens, forward and backward). Each
kernel is timed as the median of repeated calls after warm-up calls, on random inputs. The evaluation shape also
times the linear layer as an int8 × int8 → int32 product (`torch._int_mm`, what `qa_core.int8` computes with),
counting its integer operations as FLOP.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.report import with_machine, write_report

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "bench" / "results" / "attention.json"
HEADS, HEAD_DIM, FFN = 12, 32, 1536
REPEATS, WARMUP = 15, 3


@dataclass(frozen=True)
class Shape:
    batch: int
    tokens: int
    backward: bool  # forward and backward (training) or forward only (evaluation)


SHAPES = {"evaluation": Shape(32, 134, False), "training": Shape(16, 157, True)}


def median_seconds(call: Callable[[], object]) -> float:
    for _ in range(WARMUP):
        call()
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def math_attention(q, k, v):
    """Attention as two batched matrix products around a float32 softmax (transformers' eager attention)."""
    import torch

    scores = torch.matmul(q, k.transpose(-1, -2)) * HEAD_DIM ** -0.5  # (batch, heads, seq, seq)
    return torch.matmul(torch.softmax(scores.float(), dim=-1).to(q.dtype), v)


def kernels(shape: Shape, dtype) -> dict[str, tuple[Callable, float]]:
    """name → (a call running it once, its floating-point operations)."""
    import torch
    import torch.nn.functional as F

    grad = shape.backward
    q, k, v = (torch.randn(shape.batch, HEADS, shape.tokens, HEAD_DIM, dtype=dtype, requires_grad=grad)
               for _ in range(3))  # (batch, heads, seq, head_dim)
    x = torch.randn(shape.batch * shape.tokens, HEADS * HEAD_DIM, dtype=dtype, requires_grad=grad)  # (tokens, hidden)
    w = torch.randn(FFN, HEADS * HEAD_DIM, dtype=dtype, requires_grad=grad)  # (out, in)
    passes = 3 if grad else 1  # a backward costs about two forwards
    attention_flops = passes * 4 * shape.batch * HEADS * shape.tokens ** 2 * HEAD_DIM
    linear_flops = passes * 2 * shape.batch * shape.tokens * HEADS * HEAD_DIM * FFN

    def run(forward: Callable) -> Callable:
        def call():
            with torch.inference_mode(not grad):
                out = forward()
                if grad:
                    out.sum().backward()
        return call

    return {"fused attention (SDPA)": (run(lambda: F.scaled_dot_product_attention(q, k, v)), attention_flops),
            "attention as matrix products": (run(lambda: math_attention(q, k, v)), attention_flops),
            "linear layer 384 -> 1536": (run(lambda: F.linear(x, w)), linear_flops)}


def int8_linear(shape: Shape) -> tuple[Callable, float]:
    """The evaluation linear layer as qa_core.int8 multiplies: int8 activations and weights, int32 out."""
    import torch

    x = torch.randint(-127, 128, (shape.batch * shape.tokens, HEADS * HEAD_DIM), dtype=torch.int8)  # (tokens, in)
    w = torch.randint(-127, 128, (HEADS * HEAD_DIM, FFN), dtype=torch.int8)  # (in, out)
    return (lambda: torch._int_mm(x, w)), 2 * shape.batch * shape.tokens * HEADS * HEAD_DIM * FFN


def measure() -> dict:
    import torch

    results = {}
    for shape_name, shape in SHAPES.items():
        calls = {(str(dtype).removeprefix("torch."), name): kernel for dtype in (torch.float32, torch.bfloat16)
                 for name, kernel in kernels(shape, dtype).items()}
        if not shape.backward:
            calls["int8", "linear layer 384 -> 1536 (torch._int_mm)"] = int8_linear(shape)
        for (dtype, name), (call, flops) in calls.items():
            seconds = median_seconds(call)
            results[f"{shape_name}, {dtype}, {name}"] = {
                "batch": shape.batch, "tokens": shape.tokens, "backward": shape.backward,
                "median_ms": round(1000 * seconds, 2), "gflop_per_s": round(flops / seconds / 1e9, 1)}
    return {"threads": torch.get_num_threads(), "kernels": results}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default=str(DEFAULT_OUTPUT), help="JSON path, or - for standard output")
    args = parser.parse_args(argv)
    write_report(with_machine(measure), args.output)


if __name__ == "__main__":
    main()
