"""torchrun entry point for tests: the CLI's options, plus what each rank wrote and its weights."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from pathlib import Path

import torch

from qa_core import training
from qa_core.cli import build_parser, config_from_args

WRITE_EVENTS = ("open", "os.mkdir", "os.rename", "os.replace", "os.remove", "os.rmdir", "shutil.rmtree",
                "shutil.copyfile")


def watch_writes(root: Path, log: list[str]) -> None:
    """Record every file-system write under root that Python code makes in this process (audit hooks)."""
    prefix = str(root.resolve())

    def hook(event: str, args: tuple) -> None:
        if event not in WRITE_EVENTS or not args:
            return
        if event == "open" and (not isinstance(args[1], str) or not set(args[1]) & set("wax+")):
            return
        if isinstance(args[0], (str, os.PathLike)) and os.path.abspath(args[0]).startswith(prefix):
            log.append(f"{event} {args[0]}")

    sys.addaudithook(hook)


def weights_digest(model: torch.nn.Module) -> str:
    """Hash of a model's weights; equal on every rank only when the gradients were synchronised."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode() + tensor.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()


def main(argv: list[str]) -> None:
    logging.basicConfig(level=logging.WARNING)
    config = config_from_args(build_parser().parse_args(["train", *argv]))  # the CLI's own options
    output_dir = Path(config.output_dir)
    rank = int(os.environ.get("RANK", "0"))
    writes: list[str] = []
    watch_writes(output_dir, writes)
    runs = []
    real_fit = training.fit
    training.fit = lambda setup, *args: runs.append(setup) or real_fit(setup, *args)  # to hash this rank's weights
    result = training.train(config)
    report = {"rank": rank, "world_size": int(os.environ.get("WORLD_SIZE", "1")), "status": result.status,
              "step": result.step, "metrics": result.metrics, "writes": writes,
              "weights": weights_digest(runs[0].loaded.model)}
    (output_dir.parent / f"rank{rank}.json").write_text(json.dumps(report), encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1:])
