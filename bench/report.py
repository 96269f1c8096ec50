"""What a benchmark's JSON says about the machine it ran on, and writing that JSON."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any


# The extensions that decide which of our bf16 and int8 paths run, and how fast (AMX; 512-bit datapaths on AMD's
# Zen 5, told by avx512_vp2intersect, against Zen 4's 256-bit halves).
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "avx512_vp2intersect", "amx_bf16",
             "amx_int8")


def cpu_description() -> dict[str, Any]:
    """The CPU's model name, family and model numbers, and which of CPU_FLAGS it has (Linux; empty elsewhere)."""
    from qa_core.runtime import cpu_fields

    fields = cpu_fields()
    if not fields:
        return {}
    flags = set(fields.get("flags", "").split())
    return {"model_name": fields.get("model name", platform.processor()), "family": fields.get("cpu family"),
            "model": fields.get("model"), "flags": [f for f in CPU_FLAGS if f in flags]}


def with_machine(measure: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """measure()'s figures under "machine": CPUs and their vector extensions (which decide whether bf16 and int8
    paths run at all), torch, Python and the load average before and after."""
    import torch

    from qa_core.precision import native_bf16_cpu
    from qa_core.int8 import native_int8_cpu

    machine = {"cpus": os.cpu_count(), "cpu": cpu_description(),
               "cpu_capability": torch.backends.cpu.get_cpu_capability(),
               "native_bf16": native_bf16_cpu(), "native_int8": native_int8_cpu(), "torch": torch.__version__,
               "python": platform.python_version(), "load_average_at_start": list(os.getloadavg())}
    figures = measure()
    return {"machine": machine | {"load_average_at_end": list(os.getloadavg())}, **figures}


def write_report(report: dict[str, Any], output: str) -> None:
    """The report as indented JSON to a file, or to standard output for "-"."""
    text = json.dumps(report, indent=1)
    if output == "-":
        print(text)
    else:
        Path(output).write_text(text + "\n")
