"""Process-wide tuning, made once by the entry points (CLI, app, benches), never at import time."""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import functools
import logging
import os
import signal
import sys
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

logger = logging.getLogger(__name__)

# oneDNN (PyTorch's CPU matmul backend) keeps a compiled kernel with its buffers for every matrix shape it sees,
# 1024 of each by default. Dynamically padded batches make nearly every batch a new shape, so the caches only grow
# resident memory over a CPU run without making steps faster; 32 leaves room for the shapes of one step.
ONEDNN_CACHE_CAPACITY = "32"


def configure_process(serving: bool = False) -> None:
    """Cap oneDNN's per-shape caches; for a process serving answers (serving=True: the app), tokenize without the
    tokenizer's thread pool. The user's own environment settings win. Call before torch runs an op."""
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", ONEDNN_CACHE_CAPACITY)
    os.environ.setdefault("LRU_CACHE_CAPACITY", ONEDNN_CACHE_CAPACITY)
    if serving:
        # One question is one pair to tokenize, which the pool hands to a worker thread of its own; its workers
        # then spin on the cores the model's threads need. Answers came faster without it, the forward pass
        # included (bench/README.md, "On an AMD Zen 5 CPU"); a training job's data is tokenized on one core.
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


M_MMAP_THRESHOLD = -3  # glibc's mallopt() parameter for the size from which blocks get their own mapping
M_TRIM_THRESHOLD = -1  # glibc's mallopt() parameter for the free memory atop the heap it keeps, not returned
STEP_MMAP_THRESHOLD = 4 << 20  # during a training step
HEAP_MMAP_THRESHOLD = 32 << 20  # otherwise: the ceiling glibc's own moving threshold rises to (64-bit)
# Setting the mapping threshold stops glibc from moving its trim threshold along (to twice the mapping threshold),
# which left glibc's default of 128 KiB outside the steps too: the heap was handed back and faulted in again at
# every forward pass, and an evaluation after training ran clearly slower than in a fresh process
# (bench/README.md, "On an AMD Zen 5 CPU").
# So outside the steps it is twice the mapping threshold, as glibc keeps it; within them the default, which
# keeps their peak lower at the same speed.
STEP_TRIM_THRESHOLD = 128 << 10
HEAP_TRIM_THRESHOLD = 2 * HEAP_MMAP_THRESHOLD


@functools.cache  # the CPU does not change
def cpu_fields() -> dict[str, str]:
    """The first CPU's fields in /proc/cpuinfo ("model name", "cpu family", "flags", ...); empty off Linux."""
    try:
        lines = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return {}
    first_cpu = lines[:lines.index("")] if "" in lines else lines  # every CPU repeats the same block
    return {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in first_cpu if ":" in line)}



@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc and the user has not set MALLOC_MMAP_THRESHOLD_ (their setting wins)."""
    if not sys.platform.startswith("linux") or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "mallopt") else None
    except OSError:  # musl and other C libraries
        return None


@contextlib.contextmanager
def large_blocks_mapped() -> Iterator[bool]:
    """Within: glibc gives every block of STEP_MMAP_THRESHOLD bytes or more a mapping of its own, returned to the
    system when freed; yields whether it could.

    glibc otherwise serves blocks from its heap up to a threshold that it raises to the largest block freed. A
    training step's tensors change size with every batch length, so over a run they fragment the heap and resident
    memory creeps up, by about the size of a step's attention probabilities. Outside the steps the threshold stays
    at glibc's own ceiling: evaluation, with its larger batches and no backward, ran slower with every large block
    mapped afresh.
    """
    libc = _glibc()
    if libc is None:
        yield False
        return
    set_thresholds(libc, STEP_MMAP_THRESHOLD, STEP_TRIM_THRESHOLD)
    try:
        yield True
    finally:
        set_thresholds(libc, HEAP_MMAP_THRESHOLD, HEAP_TRIM_THRESHOLD)


def set_thresholds(libc: ctypes.CDLL, mmap: int, trim: int) -> None:
    """Map blocks of `mmap` bytes or more on their own; hand back free memory atop the heap beyond `trim` bytes
    (unless the user set MALLOC_TRIM_THRESHOLD_)."""
    libc.mallopt(M_MMAP_THRESHOLD, mmap)
    if "MALLOC_TRIM_THRESHOLD_" not in os.environ:
        libc.mallopt(M_TRIM_THRESHOLD, trim)


class StopRequest:
    """A should_stop for qa_core.training.train: true once a signal asked training to stop; signum says which."""

    def __init__(self) -> None:
        self._requested = threading.Event()
        self.signum: int | None = None

    def __call__(self) -> bool:
        return self._requested.is_set()

    def request(self, signum: int) -> None:
        self.signum = signum
        self._requested.set()


@contextlib.contextmanager
def stop_on_signals(signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)) -> Iterator[StopRequest]:
    """Yield a should_stop that turns true at the first of `signals` (Ctrl-C, a scheduler's SIGTERM): training
    then stops at the step's end (or, asked while loading, before the first step) with a checkpoint to --resume
    from, as a cancel from the web app does. The handlers go back to what they were at once, so a second signal
    stops at once."""
    stop, pid = StopRequest(), os.getpid()
    previous: dict[int, Any] = {}

    def request_stop(signum: int, frame: Any) -> None:
        if os.getpid() != pid:  # a data loader worker forked with this handler: the training process decides
            return
        logger.warning("%s: stopping at the end of this step (before the first, if still loading), with a "
                       "checkpoint (again to stop at once)", signal.Signals(signum).name)
        stop.request(signum)
        _restore(previous)

    if threading.current_thread() is threading.main_thread():  # only the main thread may set handlers
        previous = {signum: signal.signal(signum, request_stop) for signum in signals}
    try:
        yield stop
    finally:
        _restore(previous)


class Terminated(KeyboardInterrupt):
    """SIGTERM, taken as Ctrl-C (interrupt_on_sigterm), so that what says it can name it."""


def interrupt_on_sigterm() -> None:
    """Take SIGTERM (a service manager's or a container's stop, `kill`) as Ctrl-C, in the main thread: the web
    server stops and the interpreter exits through close_at_exit, so a training job stops after its step with a
    checkpoint and says cancelled; train.py, still loading, says what is left to do. Python's default ends the
    process at once, mid-step, its run.json saying running. A second signal while the job stops ends the wait."""
    signal.signal(signal.SIGTERM, _raise_terminated)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """interrupt_on_sigterm within the block, then SIGTERM's handler before it (in the main thread; elsewhere
    handlers cannot be set, and stay as they are)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated()


def _restore(handlers: dict[int, Any]) -> None:
    for signum, handler in handlers.items():
        signal.signal(signum, handler)


class Closeable(Protocol):
    def close(self) -> Any: ...


_AT_EXIT: weakref.WeakSet[Closeable] = weakref.WeakSet()


def close_at_exit(worker: Closeable) -> None:
    """Call worker.close() when the interpreter exits, while its daemon threads still run: one stopped inside
    torch aborts the process ('terminate called without an active exception'), and a training job's steps since
    its last checkpoint would be lost. Held weakly: a worker gone before then needs nothing."""
    _AT_EXIT.add(worker)


@atexit.register
def _close_all() -> None:
    for worker in list(_AT_EXIT):
        worker.close()
