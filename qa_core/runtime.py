"""Process-wide tuning, made once by the entry points (CLI, app, benches), never at import time."""

from __future__ import annotations

import os

# oneDNN (PyTorch's CPU matmul backend) keeps a compiled kernel with its buffers for every matrix shape it sees,
# 1024 of each by default. Dynamically padded batches make nearly every batch a new shape, so the caches only grow
# resident memory over a CPU run without making steps faster; 32 leaves room for the shapes of one step.
ONEDNN_CACHE_CAPACITY = "32"


def configure_process() -> None:
    """Cap oneDNN's per-shape caches; the user's own environment settings win. Call before torch runs an op."""
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", ONEDNN_CACHE_CAPACITY)
    os.environ.setdefault("LRU_CACHE_CAPACITY", ONEDNN_CACHE_CAPACITY)
