"""Extractive question answering on SQuAD-format data: load, featurize, fine-tune, evaluate, answer."""

import os

__version__ = "0.1.0"

# oneDNN (PyTorch's CPU matmul backend) caches a compiled kernel with its buffers per matrix shape, 1024 of each
# by default. With dynamically padded batches nearly every batch is a new shape, so the caches only grow: +1.5 GiB
# of resident memory over a CPU training run, with no speed gained (measured over 60 steps: capped at 8, steps were
# as fast). 32 leaves room for the dozen or so shapes of one step. Read when oneDNN first runs; the user's wins.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "32")
os.environ.setdefault("LRU_CACHE_CAPACITY", "32")
