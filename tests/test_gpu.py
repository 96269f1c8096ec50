"""The CUDA path (bf16 autocast, TF32, fused AdamW, pinned memory, padding to multiples of 8); skipped without CUDA."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from qa_core.evaluation import run_evaluation
from tests.overfit_data import write_tiny_squad
from tests.test_training import tiny_config

pytestmark = pytest.mark.gpu


def test_training_and_evaluation_on_cuda_match_a_cpu_evaluation(tiny_model_dir: Path, tmp_path: Path) -> None:
    from qa_core.training import train

    data = write_tiny_squad(tmp_path / "d.json")
    config = tiny_config(tiny_model_dir, data, tmp_path / "run", num_train_epochs=3, torch_compile=False)
    result = train(config, device="cuda")
    assert result.status == "finished" and torch.cuda.max_memory_allocated() > 0
    on_cpu = run_evaluation(config.replace(model_name_or_path=str(tmp_path / "run"), output_dir=str(tmp_path / "e"),
                                           bf16=False), device="cpu")
    assert on_cpu.metrics.f1 == pytest.approx(result.metrics["f1"], abs=25)  # bf16 vs fp32: close, not equal


def test_torch_compile_trains_on_cuda(tiny_model_dir: Path, tmp_path: Path) -> None:
    from qa_core.training import train

    data = write_tiny_squad(tmp_path / "d.json")
    result = train(tiny_config(tiny_model_dir, data, tmp_path / "run", max_steps=4, torch_compile=True), device="cuda")
    assert result.status == "finished" and result.step == 4


def test_the_app_answers_on_the_gpu_not_from_a_cpu_int8_copy(tiny_model_dir: Path) -> None:
    from qa_core.serving import ModelCache

    cache = ModelCache(fast=True)
    result, loaded, _ = cache.answer(str(tiny_model_dir), "When does the ferry leave?", "The ferry leaves at ten.")
    assert next(loaded.model.parameters()).device.type == "cuda" and result.prediction.text
