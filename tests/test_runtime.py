"""Process-wide tuning: the heap setting training steps run under."""

from __future__ import annotations

import ctypes
import os
import sys

import pytest
import torch

from qa_core import runtime


@pytest.fixture(autouse=True)
def fresh_lookup():
    runtime._glibc.cache_clear()
    yield
    runtime._glibc.cache_clear()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_training_steps_map_large_blocks_and_tensors_still_work() -> None:
    with runtime.large_blocks_mapped() as mapped:
        big = torch.ones(3 << 20)  # 12 MiB: its own mapping inside the step
        assert float(big.sum()) == 3 << 20
    del big
    assert mapped == (runtime._glibc() is not None)
    assert float(torch.ones(3 << 20).sum()) == 3 << 20  # and from the heap again outside


class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                     "fsmblks", "uordblks", "fordblks", "keepcost")]


def heap_bytes(libc: ctypes.CDLL) -> int:
    libc.mallinfo2.restype = MallInfo2
    return libc.mallinfo2().arena


@pytest.mark.skipif(not sys.platform.startswith("linux") or runtime._glibc() is None
                    or not hasattr(runtime._glibc(), "mallinfo2") or "MALLOC_TRIM_THRESHOLD_" in os.environ,
                    reason="glibc 2.33 or later, trim threshold not set by the user")
def test_after_the_steps_a_freed_block_stays_on_the_heap_for_the_next_forward_pass() -> None:
    """Setting the mapping threshold left glibc's trim threshold at 128 KiB, so every block freed after training
    (an evaluation's activations) was handed back to the system and faulted in again at the next forward pass:
    an evaluation after training ran clearly slower than in a fresh process (bench/README.md)."""
    libc = runtime._glibc()
    with runtime.large_blocks_mapped():
        pass
    libc.malloc.restype, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
    block = libc.malloc(8 << 20)  # below the mapping threshold outside the steps: from the heap
    held = heap_bytes(libc)
    libc.free(block)
    assert heap_bytes(libc) > held - (4 << 20)  # not trimmed back


def test_the_users_own_malloc_setting_wins(monkeypatch) -> None:
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "1048576")
    with runtime.large_blocks_mapped() as mapped:
        assert mapped is False


def test_a_serving_process_tokenizes_without_the_thread_pool_unless_the_user_says(monkeypatch) -> None:
    monkeypatch.delenv("TOKENIZERS_PARALLELISM", raising=False)
    runtime.configure_process()
    assert "TOKENIZERS_PARALLELISM" not in os.environ  # train.py: large data tokenized on every core
    runtime.configure_process(serving=True)
    assert os.environ["TOKENIZERS_PARALLELISM"] == "false"
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "true")
    runtime.configure_process(serving=True)
    assert os.environ["TOKENIZERS_PARALLELISM"] == "true"
