"""Serve answers: load each model once, and on CPUs with native bf16 swap in a compiled bf16 copy once it is warm."""

from __future__ import annotations

import copy
import logging
import threading
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path

import torch

from qa_core.modeling import LoadedModel, load_model, pick_device

logger = logging.getLogger(__name__)

# (batch, tokens) shapes compiled before the swap: torch.compile specialises size-1 dimensions, so one window
# (the common question) and several windows (long contexts) each get their graph before any request waits.
WARMUP_SHAPES = ((1, 48), (1, 160), (2, 64), (3, 200))


def native_bf16_cpu() -> bool:
    """True on x86 CPUs with AVX512-BF16 or AMX, where bf16 matrix products run at about twice the fp32 rate."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def compile_for_cpu(loaded: LoadedModel) -> LoadedModel:
    """A bf16 copy of the model compiled with weight freezing and warmed up on WARMUP_SHAPES.

    For inference only: answers match the fp32 model on nearly all questions (measured in bench/bench_ask.py).
    """
    model = copy.deepcopy(loaded.model).to(torch.bfloat16).eval()
    compiled = torch.compile(model, dynamic=True, options={"freezing": True})
    vocab = loaded.tokenizer.vocab_size
    with torch.inference_mode():
        for batch, length in WARMUP_SHAPES:
            input_ids = torch.randint(1000, vocab, (batch, length))  # (batch, seq)
            compiled(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                     token_type_ids=torch.zeros_like(input_ids))
    return replace(loaded, model=compiled)


class ModelCache:
    """Loads each model once and keeps the most recent few; safe to share between request threads.

    With fast=True on a CPU with native bf16, a background thread compiles a bf16 copy; requests use the fp32
    model until the copy is warm, so no request waits for the compiler.
    """

    def __init__(self, size: int = 3, fast: bool = True) -> None:
        self._models: OrderedDict[str, LoadedModel] = OrderedDict()
        self._lock = threading.Lock()
        self._size = size
        self._fast = fast and native_bf16_cpu()

    def get(self, name: str) -> LoadedModel:
        with self._lock:  # held while loading, so two requests for a new model load it once
            if name not in self._models:
                self._models[name] = load_model(name, "cpu" if self._fast else pick_device())
                if self._fast:
                    threading.Thread(target=self._swap_in_compiled, args=(name,), daemon=True).start()
                if len(self._models) > self._size:
                    self._models.popitem(last=False)
            self._models.move_to_end(name)
            return self._models[name]

    def _swap_in_compiled(self, name: str) -> None:
        with self._lock:
            loaded = self._models.get(name)
        if loaded is None:
            return
        try:
            fast = compile_for_cpu(loaded)
        except Exception as err:  # a missing C++ compiler or an unsupported op: keep serving the fp32 model
            logger.warning("serving %s uncompiled: %s", name, err)
            return
        with self._lock:
            if self._models.get(name) is loaded:
                self._models[name] = fast
                logger.info("serving %s from a compiled bf16 copy", name)
