"""The app's model cache: one load per model off the answering thread, each run's settings, the int8 copy."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertForQuestionAnswering

from qa_core.attention import BF16_PRODUCTS_ATTENTION
from qa_core.batching import padding_multiple
from qa_core.checkpoints import write_run_info
from qa_core.config import QAConfig
from qa_core.inference import answer_question, question_windows
from qa_core.int8 import MAX_LOGIT_ERROR, Int8Linear
from qa_core.modeling import LoadedModel, ModelNotFoundError
from qa_core.precision import amx_cpu, native_bf16_cpu
from qa_core.run_files import RunInfo
from qa_core.run_settings import run_config
from qa_core.serving import ModelCache, ModelLoadingError, int8_copy, int8_logit_error

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


def test_the_cache_swaps_in_a_warm_compiled_copy_that_answers_alike(tiny_model_dir: Path) -> None:
    cache = ModelCache(fast=True, native_int8_only=False)  # emulated int8 without VNNI: slow, but this path
    eager = cache.get(str(tiny_model_dir))
    fast = cache.wait_until_warm(str(tiny_model_dir), timeout=300)
    assert cache.get(str(tiny_model_dir)) is fast
    assert fast is not eager and any(isinstance(m, Int8Linear) for m in fast.model.modules())
    assert not any(isinstance(m, Int8Linear) for m in eager.model.modules())  # a copy was quantized, not the original
    assert fast.model.config._attn_implementation == (BF16_PRODUCTS_ATTENTION if native_bf16_cpu() else "eager")
    cpu = torch.device("cpu")  # fewer window lengths for bf16 products, as for AMX
    assert padding_multiple(cpu, fast.model) == (16 if native_bf16_cpu() or amx_cpu() else 1)
    assert padding_multiple(cpu, eager.model) == (16 if amx_cpu() else 1)
    assert eager.model.config._attn_implementation == "sdpa"  # the original and the model it saves unchanged
    assert cache.get(str(tiny_model_dir), exact=True) is eager  # error analysis still reads the fp32 model
    assert cache.answer(str(tiny_model_dir), "When does the ferry leave?", CONTEXT, exact=True)[1] is eager
    expected = answer_question(eager, "When does the ferry leave?", CONTEXT)
    started = time.perf_counter()
    got = answer_question(fast, "When does the ferry leave?", CONTEXT + " " + CONTEXT * 30)  # several windows
    assert time.perf_counter() - started < 5, "warm: no compiling while answering"
    assert got.windows > 1
    again = answer_question(fast, "When does the ferry leave?", CONTEXT)
    assert again.prediction.alternatives[0].text in {s.text for s in expected.prediction.alternatives}


def bert_with_outlier_channel(vocab_size: int, factor: float) -> BertForQuestionAnswering:
    """A small BERT whose attention layers matter to its logits (weights drawn wider than BERT's 0.02), with value
    channel 7 of every layer `factor` times larger and the attention output's weights scaled down to match: the
    same function in fp32, but per-token int8 inputs to the attention output now spend their range on one channel.
    """
    torch.manual_seed(0)
    config = BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, initializer_range=0.2)
    model = BertForQuestionAnswering(config).eval()
    with torch.no_grad():
        for layer in model.bert.encoder.layer:
            value, output = layer.attention.self.value, layer.attention.output.dense
            value.weight[7] *= factor
            value.bias[7] *= factor
            output.weight[:, 7] /= factor
    return model


def test_the_int8_check_tells_a_faithful_copy_from_a_straying_one(tokenizer) -> None:
    plain, outlier = (LoadedModel(bert_with_outlier_channel(len(tokenizer), f), tokenizer, "tiny", True)
                      for f in (1.0, 1000.0))
    input_ids = torch.randint(1000, 5000, (1, 30))  # (batch, seq)
    with torch.inference_mode():  # the outlier leaves the float model's function as it was
        torch.testing.assert_close(outlier.model(input_ids=input_ids).start_logits,
                                   plain.model(input_ids=input_ids).start_logits, rtol=1e-3, atol=1e-3)
    assert int8_logit_error(plain, int8_copy(plain)) < MAX_LOGIT_ERROR / 4
    assert int8_logit_error(outlier, int8_copy(outlier)) > MAX_LOGIT_ERROR * 2


def test_an_int8_copy_that_strays_from_its_model_is_never_served(tokenizer, tmp_path: Path, caplog) -> None:
    folder = tmp_path / "outlier-bert"
    bert_with_outlier_channel(len(tokenizer), 1000.0).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    cache = ModelCache(fast=True, native_int8_only=False)
    with caplog.at_level(logging.WARNING, logger="qa_core.serving"):
        served = cache.wait_until_warm(str(folder), timeout=120)
    assert served is cache.get(str(folder), exact=True)  # the float model, as loaded
    assert not any(isinstance(m, Int8Linear) for m in served.model.modules())
    assert "keeps answering in full precision" in caplog.text and "logit error" in caplog.text
    assert cache.answer(str(folder), "When does the ferry leave?", CONTEXT)[0].prediction.text


def test_the_blocking_calls_work_inside_a_running_event_loop_too(tiny_model_dir: Path) -> None:
    """A notebook runs an event loop in the thread its cells run in: answer() and get() must not need a free one."""
    cache = ModelCache(fast=False)

    async def cell() -> tuple[str, LoadedModel]:
        return cache.answer(str(tiny_model_dir), "When does the ferry leave?", CONTEXT)[0].prediction.text, \
            cache.get(str(tiny_model_dir))

    text, loaded = asyncio.run(cell())
    assert text in CONTEXT and loaded is cache.get(str(tiny_model_dir))


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


class GatedCache(ModelCache):
    """A real cache whose model loads wait for a gate: a load that takes as long as the test wants."""

    def __init__(self, gated: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.gated, self.gate = gated, threading.Event()

    def _load(self, entry, name):
        if name == self.gated:
            self.gate.wait(60)
        return super()._load(entry, name)


def test_a_loading_model_never_holds_up_questions_for_loaded_ones(tiny_model_dir: Path, tmp_path: Path) -> None:
    slow = tmp_path / "slow"
    ModelCache(fast=False).get(str(tiny_model_dir)).model.save_pretrained(slow)
    ModelCache(fast=False).get(str(tiny_model_dir)).tokenizer.save_pretrained(slow)
    cache = GatedCache(str(slow), fast=False, load_wait_s=1.0)
    cache.get(str(tiny_model_dir))
    started = time.perf_counter()
    with pytest.raises(ModelLoadingError, match="still loading"):
        cache.answer(str(slow), "When does the ferry leave?", CONTEXT)  # waits load_wait_s, then says so
    assert time.perf_counter() - started < 5
    loading = cache.preload(str(slow))
    answers = [cache.answer(str(tiny_model_dir), "When does the ferry leave?", CONTEXT) for _ in range(5)]
    assert all(result.prediction.alternatives for result, *_ in answers)
    assert not loading.done()  # still loading, while the loaded model answered five questions
    cache.gate.set()
    assert loading.result(30).source == str(slow)
    assert cache.answer(str(slow), "When does the ferry leave?", CONTEXT)[1].source == str(slow)


def test_a_failed_load_is_reported_and_tried_again(tmp_path: Path) -> None:
    cache = ModelCache(fast=False)
    (tmp_path / "model").mkdir()
    for _ in range(2):
        with pytest.raises(ValueError, match="no config.json"):
            cache.get(str(tmp_path / "model"))


def test_a_hub_id_fails_fast_and_once_when_offline(monkeypatch, caplog) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = ModelCache(fast=False)
    started = time.perf_counter()
    with caplog.at_level(logging.INFO), pytest.raises(ModelNotFoundError, match="not reachable from this machine"):
        cache.answer("some-org/some-model", "Who?", CONTEXT)
    assert time.perf_counter() - started < 3
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) <= 1


def test_a_run_answers_with_its_own_config_and_null_threshold(tiny_model_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_run_info(run, RunInfo("finished", {**QAConfig().to_dict(), "doc_stride": 64, "max_answer_length": 12,
                                             "version_2_with_negative": True, "output_dir": str(run)}))
    (run / "eval_metrics.json").write_text(json.dumps({"exact": 50.0, "best_f1_thresh": -1.25}), encoding="utf-8")
    config = run_config(str(run))
    assert (config.doc_stride, config.max_answer_length, config.version_2_with_negative) == (64, 12, True)
    assert config.null_score_diff_threshold == -1.25
    assert run_config(str(tiny_model_dir)) == QAConfig()  # not a run: the defaults
    write_run_info(run, RunInfo("finished", {"doc_stride": 10_000}))  # unusable: the defaults, with a warning
    assert run_config(str(run)).doc_stride == QAConfig().doc_stride


def test_windows_are_counted_before_the_model_runs(tiny_model_dir: Path) -> None:
    cache = ModelCache(fast=False)
    loaded = cache.get(str(tiny_model_dir))
    long = CONTEXT + " " + CONTEXT * 30
    windows = len(question_windows(loaded, "When does the ferry leave?", long, QAConfig())[2])  # tokenizer only
    assert windows == answer_question(loaded, "When does the ferry leave?", long).windows > 1
    with pytest.raises(ValueError, match=f"needs {windows} windows of 256 tokens; this server answers up to 1"):
        cache.answer(str(tiny_model_dir), "When does the ferry leave?", long, max_windows=1)


def test_a_synchronous_answer_never_writes_out_the_model(tiny_model_dir: Path, monkeypatch) -> None:
    """Found profiling the Ask path from a script: asyncio.run in the main thread installs a Ctrl-C handler that
    holds its task, and Python 3.11's signal.getsignal writes out the handler it finds, so the task's result (the
    answer with its model) was written out as text, the whole model, on every call of answer()."""
    cache = ModelCache(fast=False)
    cache.get(str(tiny_model_dir))
    written = []
    write_out = torch.nn.Module.__repr__
    monkeypatch.setattr(torch.nn.Module, "__repr__", lambda module: written.append(module) or write_out(module))
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a script (a test runner may differ)
    try:
        assert threading.current_thread() is threading.main_thread()
        assert cache.answer(str(tiny_model_dir), "When does the ferry leave?", CONTEXT)[0].prediction.text
    finally:
        signal.signal(signal.SIGINT, previous)
    assert not written
