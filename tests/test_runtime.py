"""Process-wide tuning: the heap setting training steps run under."""

from __future__ import annotations

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


def test_the_users_own_malloc_setting_wins(monkeypatch) -> None:
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "1048576")
    with runtime.large_blocks_mapped() as mapped:
        assert mapped is False
