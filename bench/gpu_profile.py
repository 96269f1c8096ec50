"""Where a few training steps' device time goes: torch.profiler's kernels, by class and the longest ones."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable

import torch
from torch.autograd import DeviceType
from torch.autograd.profiler_util import FunctionEvent
from torch.profiler import ProfilerActivity, profile

# First match wins: cuBLAS names its Hopper GEMMs nvjet_* or sm90_xmma_*; layer norm before the optimizer's norms.
KERNEL_CLASSES = (("gemm", ("gemm", "nvjet", "xmma", "cutlass", "cublas")),
                  ("attention", ("fmha", "flash", "attention", "efficient")),
                  ("layer_norm", ("layer_norm", "layernorm", "gammabeta")),
                  ("optimizer", ("adam", "multi_tensor", "foreach", "norm")),
                  ("dropout", ("dropout", "bernoulli", "philox")),
                  ("copy", ("copy", "memcpy", "memset", "cat_", "fill")),
                  ("softmax_loss", ("softmax", "nll", "cross_entropy")),
                  ("embedding", ("embedding", "index", "scatter", "sort", "radix")))


def kernel_class(name: str) -> str:
    lowered = name.lower()
    return next((label for label, keys in KERNEL_CLASSES if any(k in lowered for k in keys)), "elementwise_other")


def device_kernels(events: Iterable[FunctionEvent]) -> list[tuple[str, float]]:
    """(name, microseconds) of every kernel and copy the device ran. The profiler also puts each record_function
    range (Optimizer.step#AdamW.step, ...) on the device's timeline, spanning kernels already counted; such a range
    bears the name of a CPU event, which no kernel does."""
    events = list(events)
    cpu_names = {e.name for e in events if e.device_type == DeviceType.CPU}
    return [(e.name, e.time_range.elapsed_us()) for e in events
            if e.device_type != DeviceType.CPU and e.name not in cpu_names]


def summarize(kernels: list[tuple[str, float]], steps: int, wall_s: float, top: int = 12) -> dict:
    """Per step: wall and summed kernel milliseconds, by class, and the kernels that took longest overall."""
    by_class: dict[str, float] = defaultdict(float)
    by_name: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    for name, us in kernels:
        by_class[kernel_class(name)] += us
        by_name[name][0] += us
        by_name[name][1] += 1
    per_step = lambda us: round(us / 1000 / steps, 3)  # noqa: E731
    longest = sorted(by_name.items(), key=lambda item: -item[1][0])[:top]
    return {"steps": steps, "wall_ms_per_step": round(wall_s * 1000 / steps, 3),
            "kernel_ms_per_step": per_step(sum(us for _, us in kernels)),
            "kernels_per_step": round(len(kernels) / steps, 1),
            "by_class_ms_per_step": {k: per_step(v) for k, v in sorted(by_class.items(), key=lambda kv: -kv[1])},
            "top_kernels": [{"name": name[:120], "class": kernel_class(name), "ms_per_step": per_step(us),
                             "calls_per_step": round(calls / steps, 1)} for name, (us, calls) in longest]}


def profile_steps(run_step: Callable[[], object], steps: int, synchronize: Callable[[], None]) -> dict:
    """Run `steps` steps under the profiler (CPU and CUDA activities) and summarize them."""
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    synchronize()
    with profile(activities=activities) as prof:
        start = time.perf_counter()
        for _ in range(steps):
            run_step()
        synchronize()
        wall = time.perf_counter() - start
    return summarize(device_kernels(prof.events()), steps, wall)
