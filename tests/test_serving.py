"""The app's model cache: one load per model, and the compiled int8 copy that answers on CPUs with VNNI or AMX."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from qa_core.inference import answer_question
from qa_core.int8 import Int8Linear
from qa_core.serving import ModelCache, native_int8_cpu

CONTEXT = "The night ferry leaves the north pier at ten and reaches the island before dawn."


def test_each_model_is_loaded_once_and_the_oldest_is_dropped(tiny_model_dir: Path, tmp_path: Path) -> None:
    cache = ModelCache(size=1, fast=False)
    first = cache.get(str(tiny_model_dir))
    assert cache.get(str(tiny_model_dir)) is first
    copy_dir = tmp_path / "copy"
    first.model.save_pretrained(copy_dir)
    first.tokenizer.save_pretrained(copy_dir)
    cache.get(str(copy_dir))
    assert cache.get(str(tiny_model_dir)) is not first  # evicted, then loaded again


@pytest.mark.skipif(not native_int8_cpu(), reason="the compiled int8 path is for x86 CPUs with VNNI or AMX")
def test_the_cache_swaps_in_a_warm_compiled_copy_that_answers_alike(tiny_model_dir: Path) -> None:
    cache = ModelCache(fast=True)
    eager = cache.get(str(tiny_model_dir))
    fast = cache.wait_until_warm(str(tiny_model_dir), timeout=300)
    assert cache.get(str(tiny_model_dir)) is fast
    assert fast is not eager and any(isinstance(m, Int8Linear) for m in fast.model.modules())
    assert not any(isinstance(m, Int8Linear) for m in eager.model.modules())  # a copy was quantized, not the original
    assert cache.get(str(tiny_model_dir), exact=True) is eager  # error analysis still reads the fp32 model
    assert cache.answer(str(tiny_model_dir), "When does the ferry leave?", CONTEXT, exact=True)[1] is eager
    expected = answer_question(eager, "When does the ferry leave?", CONTEXT)
    started = time.perf_counter()
    got = answer_question(fast, "When does the ferry leave?", CONTEXT + " " + CONTEXT * 30)  # several windows
    assert time.perf_counter() - started < 5, "warm: no compiling while answering"
    assert got.windows > 1
    again = answer_question(fast, "When does the ferry leave?", CONTEXT)
    assert again.prediction.alternatives[0].text in {s.text for s in expected.prediction.alternatives}


def test_answers_from_many_request_threads_come_from_the_one_model_thread(tiny_model_dir: Path) -> None:
    cache = ModelCache(fast=False)
    loaded = cache.get(str(tiny_model_dir))
    expected = answer_question(loaded, "When does the ferry leave?", CONTEXT)
    threads: set[int] = set()
    loaded.model.register_forward_hook(lambda *_: threads.add(threading.get_ident()))
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: cache.answer(str(tiny_model_dir), "When does the ferry leave?", CONTEXT),
                                range(16)))
    for result, used, seconds in results:
        assert result.prediction == expected.prediction and used is cache.get(str(tiny_model_dir)) and seconds > 0
    assert len(threads) == 1 and threading.get_ident() not in threads
    with pytest.raises(ValueError, match="question is empty"):  # errors reach the caller, the thread keeps serving
        cache.answer(str(tiny_model_dir), " ", CONTEXT)
    assert cache.answer(str(tiny_model_dir), "When does the ferry leave?", CONTEXT)[0].prediction == expected.prediction
