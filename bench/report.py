"""What a benchmark's JSON says about the machine it ran on, and writing that JSON."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any


def with_machine(measure: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """measure()'s figures under "machine": CPUs, torch, Python and the load average before and after."""
    import torch

    machine = {"cpus": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version(),
               "load_average_at_start": list(os.getloadavg())}
    figures = measure()
    return {"machine": machine | {"load_average_at_end": list(os.getloadavg())}, **figures}


def write_report(report: dict[str, Any], output: str) -> None:
    """The report as indented JSON to a file, or to standard output for "-"."""
    text = json.dumps(report, indent=1)
    if output == "-":
        print(text)
    else:
        Path(output).write_text(text + "\n")
