"""Serve answers: load each model once, and on CPUs with int8 dot products swap in a compiled int8 copy once warm."""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from qa_core.inference import AnswerResult, answer_question
from qa_core.int8 import quantize_linears
from qa_core.modeling import LoadedModel, load_model, pick_device

logger = logging.getLogger(__name__)

# (batch, tokens) shapes compiled before the swap: torch.compile specialises size-1 dimensions, so one window
# (the common question) and several windows (long contexts) each get their graph before any request waits.
WARMUP_SHAPES = ((1, 48), (1, 160), (2, 64), (3, 200))
# The copy is private and never changed after compiling, so dynamo's per-call checks of every module attribute
# (about 0.6 ms a question) guard nothing.
COMPILE_OPTIONS = {"freezing": True, "guard_filter_fn": torch.compiler.skip_guard_on_all_nn_modules_unsafe}


def native_int8_cpu() -> bool:
    """True on x86 CPUs with VNNI or AMX int8 dot products, where int8 matrix products beat fp32 and bf16."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return any(f" {flag}" in flags for flag in ("avx512_vnni", "avx_vnni", "amx_int8"))


def int8_copy(loaded: LoadedModel) -> LoadedModel:
    """A copy with int8 linear layers (qa_core.int8), for answering only; the original stays fp32."""
    return replace(loaded, model=quantize_linears(copy.deepcopy(loaded.model).eval()))


def compile_for_cpu(loaded: LoadedModel) -> LoadedModel:
    """The int8 copy compiled with weight freezing and warmed up on WARMUP_SHAPES.

    For inference only: answers match the fp32 model on nearly all questions (measured in bench/bench_ask.py).
    """
    compiled = torch.compile(int8_copy(loaded).model, dynamic=True, options=COMPILE_OPTIONS)
    with torch.inference_mode():
        for inputs in warmup_batches(loaded):
            compiled(**inputs)
    return replace(loaded, model=compiled)


def warmup_batches(loaded: LoadedModel) -> list[dict[str, torch.Tensor]]:
    """Random batches of WARMUP_SHAPES as the model takes them: within its positions, segment ids only if it
    takes them, ids past the first thousand (ordinary tokens in every vocabulary that big)."""
    vocab, limit = loaded.tokenizer.vocab_size, loaded.max_positions
    batches = []
    for batch, length in WARMUP_SHAPES:
        input_ids = torch.randint(min(1000, vocab // 2), vocab, (batch, min(length, limit or length)))  # (batch, seq)
        inputs = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}
        if loaded.batch_format.token_type_ids:
            inputs["token_type_ids"] = torch.zeros_like(input_ids)
        batches.append(inputs)
    return batches


@dataclass
class _Entry:
    exact: LoadedModel  # the model as loaded
    served: LoadedModel  # what answers: `exact`, then its fast copy once warm
    warm: threading.Event = field(default_factory=threading.Event)  # set once `served` is final


class ModelCache:
    """Loads each model once and keeps the most recent few; safe to share between request threads.

    With fast=True on a machine without CUDA whose CPU has int8 dot products, a background thread compiles an
    int8 copy; requests use the fp32 model until the copy is warm, so no request waits for the compiler. The
    fp32 model stays at hand for `exact` requests (error analysis reads the logits of the evaluated model).
    """

    def __init__(self, size: int = 3, fast: bool = True) -> None:
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._size = size
        self._fast = fast and pick_device().type == "cpu" and native_int8_cpu()  # a GPU answers faster still
        # One thread runs every question. OpenMP gives each calling thread its own team of workers, and once
        # there are more of those than cores its workers sleep between operations instead of spinning; from a
        # web server's many request threads, each answer took 1.5x as long.
        self._model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qa-model")

    def answer(self, name: str, question: str, context: str,
               exact: bool = False) -> tuple[AnswerResult, LoadedModel, float]:
        """The answer from model `name` (exact: from the model as loaded, never a fast copy), the model that gave
        it, and the seconds answering took (not loading)."""
        return self._model_thread.submit(self._answer, name, question, context, exact).result()

    def _answer(self, name: str, question: str, context: str,
                exact: bool) -> tuple[AnswerResult, LoadedModel, float]:
        loaded = self.get(name, exact)
        started = time.perf_counter()
        result = answer_question(loaded, question, context)
        return result, loaded, time.perf_counter() - started

    def get(self, name: str, exact: bool = False) -> LoadedModel:
        return self._entry(name).exact if exact else self._entry(name).served

    def wait_until_warm(self, name: str, timeout: float) -> LoadedModel:
        """What model `name` answers from once its fast copy is in place (at once without one)."""
        if not self._entry(name).warm.wait(timeout):
            raise TimeoutError(f"no fast copy of {name} after {timeout:.0f} s")
        return self.get(name)

    def _entry(self, name: str) -> _Entry:
        with self._lock:  # held while loading, so two requests for a new model load it once
            if name not in self._entries:
                loaded = load_model(name, "cpu" if self._fast else pick_device())
                self._entries[name] = entry = _Entry(loaded, loaded)
                if self._fast:
                    threading.Thread(target=self._swap_in_compiled, args=(entry, name), daemon=True).start()
                else:
                    entry.warm.set()
                if len(self._entries) > self._size:
                    self._entries.popitem(last=False)
            self._entries.move_to_end(name)
            return self._entries[name]

    def _swap_in_compiled(self, entry: _Entry, name: str) -> None:
        try:
            try:
                fast, how = compile_for_cpu(entry.exact), "a compiled int8 copy"
            except Exception as err:  # a missing C++ compiler or an unsupported op: eager int8 beats fp32 still
                logger.warning("compiling %s failed (%s); serving an uncompiled int8 copy", name, err)
                fast, how = int8_copy(entry.exact), "an uncompiled int8 copy"
            with self._lock:
                entry.served = fast
            logger.info("serving %s from %s", name, how)
        finally:  # never leave a waiter hanging, even if the int8 copy itself failed
            entry.warm.set()
