"""Serve answers: each model loaded once off the answering thread, its run's settings, a compiled int8 copy on CPUs."""

from __future__ import annotations

import asyncio
import copy
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import numpy as np
import torch

from qa_core.attention import attend_in_matrix_products
from qa_core.config import QAConfig
from qa_core.data import load_examples
from qa_core.fairness import LOCAL, Caller, CallerBound, FairWorker
from qa_core.features import featurize
from qa_core.inference import AnswerResult, answer_question, run_model
from qa_core.int8 import MAX_LOGIT_ERROR, logit_error, native_int8_cpu, quantize_linears
from qa_core.modeling import LoadedModel, fit_config, load_model, pick_device
from qa_core.precision import native_bf16_cpu
from qa_core.run_settings import run_config
from qa_core.settings import MODEL_WAIT_S

logger = logging.getLogger(__name__)

# (batch, tokens) shapes compiled before the swap: torch.compile specialises size-1 dimensions, so one window
# (the common question) and several windows (long contexts) each get their graph before any request waits.
WARMUP_SHAPES = ((1, 48), (1, 160), (2, 64), (3, 200))
# The copy is private and never changed after compiling, so dynamo's per-call checks of every module attribute
# guard nothing (bench/README.md, "Answering (Ask tab)", says what skipping them saves). Below the opcount
# threshold the compiler recomputes an elementwise result in each kernel that reads it: the GELU between the
# two int8 products of each layer's feed-forward part, read once for its rows' int8 scales and once to quantize,
# and the attention mask, rebuilt in every layer's softmax; stored once instead, they cost less.
COMPILE_OPTIONS = {"freezing": True, "guard_filter_fn": torch.compiler.skip_guard_on_all_nn_modules_unsafe,
                   "realize_cpu_opcount_threshold": 5}
T = TypeVar("T")
CHECK_QUESTIONS = 16  # sample questions an int8 copy answers, beside its float model, before it is served


def int8_copy(loaded: LoadedModel) -> LoadedModel:
    """A copy with int8 linear layers (qa_core.int8) and attention that compiles well (attend_in_matrix_products),
    for answering only; the original stays as it was."""
    model = quantize_linears(copy.deepcopy(loaded.model).eval())
    attend_in_matrix_products(model, bf16=native_bf16_cpu())
    return replace(loaded, model=model)


def int8_logit_error(loaded: LoadedModel, int8: LoadedModel) -> float:
    """The median logit_error of the int8 copy against its float model over the windows of the first
    CHECK_QUESTIONS sample questions (the package's own sample file, so no data leaves or enters the server)."""
    config = fit_config(QAConfig(), loaded)
    examples = load_examples("sample", "validation", CHECK_QUESTIONS).examples
    features = featurize(examples, loaded.tokenizer, config, training=False).features
    with torch.inference_mode():
        expected, got = (run_model(model, features, config.per_device_eval_batch_size,
                                   batch_format=loaded.batch_format) for model in (loaded.model, int8.model))
    errors = [logit_error(a, b) for logits in zip(expected, got) for a, b in zip(*logits)]  # start and end rows
    return float(np.median(errors))


def compile_for_cpu(int8: LoadedModel) -> LoadedModel:
    """An int8 copy (int8_copy) compiled with weight freezing and warmed up on WARMUP_SHAPES.

    For inference only: bench/bench_ask.py measures how often its answers match the fp32 model's.
    """
    compiled = torch.compile(int8.model, dynamic=True, options=COMPILE_OPTIONS)
    with torch.inference_mode():
        for inputs in warmup_batches(int8):
            compiled(**inputs)
    return replace(int8, model=compiled)


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


def run_to_end(coroutine: Coroutine[Any, Any, T]) -> T:
    """The coroutine's result, for synchronous callers: in an event loop of its own, on a helper thread where this
    thread already runs one (a notebook's), since a loop cannot wait inside itself."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return run_in_new_loop(coroutine)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="qa-sync") as helper:
        return helper.submit(run_in_new_loop, coroutine).result()


def run_in_new_loop(coroutine: Coroutine[Any, Any, T]) -> T:
    """asyncio.run without its Ctrl-C handler: in the main thread that handler holds the task, and Python 3.11's
    signal.getsignal writes out the handler it finds (for an error message it then drops), so the task's result,
    a whole model, twice a call."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


class ModelLoadingError(RuntimeError):
    """Raised when a question's model is still loading after the wait allowed to one question."""


@dataclass
class _Entry:
    loading: Future  # resolves to the LoadedModel as loaded, or raises why it could not be loaded
    config: QAConfig = field(default_factory=QAConfig)  # what answers use: the run's own settings
    served: LoadedModel | None = None  # what answers: the model as loaded, then its fast copy once warm
    warm: threading.Event = field(default_factory=threading.Event)  # set once `served` is final


class ModelCache:
    """Loads each model once, on its own loader thread, and keeps the most recent few; safe to share between
    request threads.

    Loading never happens on the answering thread: a question for a model being loaded waits (at most
    `load_wait_s`) in its own request thread or coroutine while questions for loaded models keep being answered.
    The answering thread takes turns between callers (fairness.FairWorker); a caller may have at most
    `max_caller_questions` in flight (None: any number). `limit_config`, when given, bounds the settings a run
    answers with (hosting.answer_limits: a public server's caps on the span search).
    With fast=True on a machine without CUDA whose CPU has int8 dot products, a background thread compiles an
    int8 copy; requests use the fp32 model until the copy is warm, so no request waits for the compiler. The
    fp32 model stays at hand for `exact` requests (error analysis reads the logits of the evaluated model).
    native_int8_only=False makes the copy on any CPU without CUDA, so that the path is tested on machines whose
    int8 products are emulated (and far slower than fp32: bench/results/attention-avx2.json).
    """

    def __init__(self, size: int = 3, fast: bool = True, load_wait_s: float = MODEL_WAIT_S,
                 max_caller_questions: int | None = None,
                 limit_config: Callable[[QAConfig], QAConfig] | None = None, native_int8_only: bool = True) -> None:
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._limit_config = limit_config
        self._lock = threading.Lock()
        self._size = size
        self._load_wait_s = load_wait_s
        # CPUs only (a GPU answers faster still), and only those with int8 dot products unless told otherwise
        self._fast = fast and pick_device().type == "cpu" and (native_int8_cpu() or not native_int8_only)
        # One thread loads models (one at a time, so memory holds one load), another runs every question.
        # OpenMP gives each calling thread its own team of workers, and once there are more of those than cores
        # its workers sleep between operations instead of spinning, which slows answers from a web server's many
        # request threads (README, "The API", says by how much). First come, first served, one caller's many long
        # questions would hold up every other caller's, so the model thread serves callers in turn.
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qa-load")
        self._model_thread = FairWorker("qa-model", max_caller_questions, "questions")

    def preload(self, name: str) -> Future:
        """Start loading model `name` in the background (the app's default model, at start)."""
        return self._entry(name).loading

    async def answer_in_turn(self, name: str, question: str, context: str, exact: bool = False,
                             max_windows: int | None = None, caller: Caller = LOCAL,
                             settings: Mapping[str, Any] | None = None) -> tuple[AnswerResult, LoadedModel, float]:
        """The answer from model `name` (exact: from the model as loaded, never a fast copy), the model that gave
        it, and the seconds answering took (not loading or waiting for its turn). A context needing more than
        max_windows windows is refused with a ValueError before any model runs; a caller over its questions in
        flight, with fairness.TooManyRequests before anything else. settings: as get_in_turn takes them.

        Waits for the model and its turn holding no thread, so that however many requests of a web server wait,
        none waits for a free thread first come, first served. A cancelled task's question leaves the line
        unanswered."""
        with self._model_thread.admitted(caller):
            loaded, config = await self.get_in_turn(name, exact, settings)
            return await asyncio.wrap_future(self._model_thread.submit(
                caller, self._answer, loaded, config, question, context, max_windows))

    async def run_in_turn(self, caller: Caller, bound: CallerBound, call: Callable[..., Any], *args: Any) -> Any:
        """call(*args), other work than an answer, on the model thread in the caller's turn with the answers,
        counted against `bound` rather than the caller's questions; waiting holds no thread."""
        return await self._model_thread.run_in_turn(caller, call, *args, bound=bound)

    def answer(self, name: str, question: str, context: str, exact: bool = False, max_windows: int | None = None,
               caller: Caller = LOCAL) -> tuple[AnswerResult, LoadedModel, float]:
        """answer_in_turn() for synchronous callers: scripts, notebooks, benchmarks, tests."""
        return run_to_end(self.answer_in_turn(name, question, context, exact, max_windows, caller))

    @staticmethod
    def _answer(loaded: LoadedModel, config: QAConfig, question: str, context: str,
                max_windows: int | None) -> tuple[AnswerResult, LoadedModel, float]:
        started = time.perf_counter()  # the window check is part of answering: one tokenizer pass, not two
        result = answer_question(loaded, question, context, config, max_windows=max_windows)
        return result, loaded, time.perf_counter() - started

    async def get_in_turn(self, name: str, exact: bool = False,
                          settings: Mapping[str, Any] | None = None) -> tuple[LoadedModel, QAConfig]:
        """Model `name` (exact: as loaded, never a fast copy) and the settings answers from it use: its run's, with
        `settings` instead where given (the windows an evaluation cut: QAConfig names), within limit_config. Loads
        it in the background if needed and waits at most load_wait_s, holding no thread; raises why it could not
        be loaded, or ModelLoadingError while it is still loading."""
        entry = self._entry(name)
        with self._load_errors(name, entry):  # shielded: a caller who stops waiting never cancels the load
            if entry.loading.done():  # the common case, without the event loop's rounds that waiting takes
                exact_model = entry.loading.result()
            else:
                exact_model = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(entry.loading)),
                                                     self._load_wait_s)
        with self._lock:
            loaded, config = exact_model if exact else entry.served or exact_model, entry.config
        return loaded, self._limited(config.replace(**settings)) if settings else config

    def _limited(self, config: QAConfig) -> QAConfig:
        return self._limit_config(config) if self._limit_config else config

    def get(self, name: str, exact: bool = False) -> LoadedModel:
        """get_in_turn()'s model, for synchronous callers."""
        return run_to_end(self.get_in_turn(name, exact))[0]

    @contextmanager
    def _load_errors(self, name: str, entry: _Entry) -> Iterator[None]:
        """A load still going after load_wait_s as ModelLoadingError; a failed load forgotten, so that a later
        question tries again (the hub may be back)."""
        try:
            yield
        except TimeoutError:  # concurrent.futures' and asyncio's alike, since Python 3.11
            raise ModelLoadingError(f"model {name!r} is still loading; ask again in a minute") from None
        except Exception:
            with self._lock:
                if self._entries.get(name) is entry:
                    del self._entries[name]
            raise

    def wait_until_warm(self, name: str, timeout: float) -> LoadedModel:
        """What model `name` answers from once its fast copy is in place (at once without one)."""
        self.get(name)
        if not self._entry(name).warm.wait(timeout):
            raise TimeoutError(f"no fast copy of {name} after {timeout:.0f} s")
        return self.get(name)

    def _entry(self, name: str) -> _Entry:
        with self._lock:  # never held while loading: other models answer meanwhile
            entry = self._entries.get(name)
            if entry is None:
                entry = self._entries[name] = _Entry(Future())
                entry.loading = self._loader.submit(self._load, entry, name)
                self._evict()
            self._entries.move_to_end(name)
            return entry

    def _evict(self) -> None:
        loaded = [n for n, e in self._entries.items() if e.loading.done()]  # oldest first; loading ones stay
        for name in loaded[:max(0, len(self._entries) - self._size)]:
            del self._entries[name]

    def _load(self, entry: _Entry, name: str) -> LoadedModel:
        try:
            loaded = load_model(name, "cpu" if self._fast else pick_device())
        except Exception as err:  # the caller gets the error; the log gets one line per attempt, no traceback
            logger.warning("model %r not loaded: %s", name, err)
            raise
        config = run_config(loaded.source)
        entry.config, entry.served = self._limited(config), loaded
        if self._fast:
            threading.Thread(target=self._swap_in_compiled, args=(entry, name, loaded), daemon=True).start()
        else:
            entry.warm.set()
        return loaded

    def _swap_in_compiled(self, entry: _Entry, name: str, loaded: LoadedModel) -> None:
        try:  # loaded is passed, not read from entry.loading: a load may return before _entry has assigned it
            int8 = int8_copy(loaded)
            error = int8_logit_error(loaded, int8)  # the uncompiled copy: the same arithmetic, no compile to waste
            if error > MAX_LOGIT_ERROR:
                logger.warning("%s keeps answering in full precision: its int8 copy strays from it (logit error "
                               "%.2f on the sample questions, limit %.2f)", name, error, MAX_LOGIT_ERROR)
                return
            try:
                fast, how = compile_for_cpu(int8), "a compiled int8 copy"
            except Exception as err:  # a missing C++ compiler or an unsupported op: eager int8 beats fp32 still
                logger.warning("compiling %s failed (%s); serving an uncompiled int8 copy", name, err)
                fast, how = int8, "an uncompiled int8 copy"
            with self._lock:
                entry.served = fast
            logger.info("serving %s from %s (logit error %.3f against it on the sample questions)", name, how, error)
        finally:  # never leave a waiter hanging, even if the int8 copy itself failed
            entry.warm.set()
