"""Shared fixtures: a real WordPiece tokenizer and a 2-layer BERT built in memory (no downloads)."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertForQuestionAnswering

from qa_core.modeling import LoadedModel, embedded_model_path
from qa_core.runtime import configure_process

if TYPE_CHECKING:  # imported where used: most test files need neither Gradio nor training
    from qa_core.settings import Settings
    from tests.ui_handlers import UI


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "gpu: needs CUDA; skipped without it")
    config.addinivalue_line("markers", "browser: drives headless Chromium against a live server")
    # Tiny models run fastest on one thread, and two cores shared with a server and a browser thrash with more;
    # subprocesses (torchrun, train.py, the app) inherit the setting.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    # The app's compiled int8 copies cost a minute of compiling per model; tests/test_serving.py covers them once.
    os.environ.setdefault("QA_FAST_INFERENCE", "0")
    configure_process()  # as the CLI and the app do, before any test runs an op


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A failed browser test leaves the page as it was (screenshot and HTML) under test-artifacts/failed/: a CI
    run's timeout then shows what covered or held up the element it waited for."""
    report = yield
    driver = getattr(item, "funcargs", {}).get("browser")
    if report.when == "call" and report.failed and driver is not None:
        folder = Path(__file__).resolve().parent.parent / "test-artifacts" / "failed"
        folder.mkdir(parents=True, exist_ok=True)
        try:
            driver.save_screenshot(str(folder / f"{item.name}.png"))
            (folder / f"{item.name}.html").write_text(driver.page_source)
        except Exception as err:  # a dead browser: the test's own failure says enough
            report.sections.append(("page not saved", repr(err)))
    return report


@pytest.fixture(scope="session")
def tokenizer():
    """The embedded model's real uncased WordPiece tokenizer (shipped in a pip package, offline); on a machine
    without that package (a GPU box), QA_TEST_TOKENIZER names a folder with the same tokenizer (bench/bundle)."""
    return AutoTokenizer.from_pretrained(os.environ.get("QA_TEST_TOKENIZER") or embedded_model_path())


def tiny_bert(vocab_size: int, seed: int = 0) -> BertForQuestionAnswering:
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512)
    return BertForQuestionAnswering(config)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, tokenizer) -> Path:
    """A folder holding the tiny BERT and the tokenizer, loadable like any model folder."""
    folder = tmp_path_factory.mktemp("tiny-bert")
    tiny_bert(len(tokenizer)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


# A word of one question of the tiny SQuAD data (tests/overfit_data.py: "What did the mill grind?"), which seed 42,
# QAConfig's default, trains on in the third batch of five windows in twos: after a checkpoint at save_steps 2.
OVERFLOW_WORD = "grind"


@pytest.fixture(scope="session")
def overflowing_model_dir(tmp_path_factory: pytest.TempPathFactory, tokenizer) -> Path:
    """The tiny BERT with OVERFLOW_WORD's embedding set to 1e20 (finite): the embedding LayerNorm's variance
    overflows on it, so a window holding the word gives a NaN loss and NaN gradients at any learning rate. Other
    windows train as usual, and send no gradient to that row: the weights stay finite for every checkpoint."""
    folder = tmp_path_factory.mktemp("overflowing-bert")
    model = tiny_bert(len(tokenizer))
    with torch.no_grad():
        model.bert.embeddings.word_embeddings.weight[tokenizer.convert_tokens_to_ids(OVERFLOW_WORD)] = 1e20
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture()
def tiny_loaded(tokenizer) -> LoadedModel:
    return LoadedModel(tiny_bert(len(tokenizer)), tokenizer, "tiny", True)


def free_port() -> int:
    """A port free on localhost now, for a server a test starts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_squad(path: Path, paragraphs: list[dict], title: str = "t") -> Path:
    """Write a SQuAD v1.1 file from [{'context': ..., 'qas': [...]}, ...]."""
    path.write_text(json.dumps({"version": "1.1", "data": [{"title": title, "paragraphs": paragraphs}]}),
                    encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """A finished run of the tiny model with evaluation records on the first sample questions; trained once for the
    tests of the app and its tabs, which share its runs folder."""
    from qa_core.config import QAConfig
    from qa_core.training import train

    run = tmp_path_factory.mktemp("runs") / "20250101-000000-tiny"
    train(QAConfig(model_name_or_path=str(tiny_model_dir), train_file="sample", validation_file="sample",
                   output_dir=str(run), max_steps=2, per_device_train_batch_size=4, max_eval_samples=12,
                   max_seq_length=128, doc_stride=32))
    return run


@pytest.fixture()
def settings(tiny_model_dir: Path, tiny_run: Path) -> Settings:
    """A local server with training on, over tiny_run's runs folder, answering with the tiny model."""
    from qa_core.settings import Settings

    return Settings(tiny_run.parent, str(tiny_model_dir), training_enabled=True, fast_inference=False)


@pytest.fixture()
def ui(settings: Settings) -> UI:
    """Every tab's handlers over one service with those settings."""
    from tests.ui_handlers import handlers

    return handlers(settings)
