"""The GPU benchmark's CPU dry run: it runs, reports the promised figures, and never imports `datasets`."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qa_core.modeling import embedded_model_path
from tests.conftest import write_squad

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ("seconds", "windows", "tokens", "padded_tokens", "flops", "windows_per_s", "tokens_per_s",
           "padded_tokens_per_s", "padding_fraction", "model_tflops_per_s", "mfu", "mfu_padded")

# Runs the script as `python -m bench.gpu_bench ...` would, then lists any `datasets` module it pulled in.
RUNNER = """
import json, runpy, sys
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
print("DATASETS=" + json.dumps(sorted(m for m in sys.modules if m.split(".")[0] == "datasets")))
"""

GARDEN = ("The community garden on Elm Street opened in 2009 with thirty raised beds. Volunteers water the beds "
          "every evening, and a beekeeper named Tomas keeps four hives at the far end of the plot.")


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def garden_squad(path: Path) -> Path:
    qas = [("When did the garden open?", "2009"), ("How many raised beds did it have?", "thirty"),
           ("Who keeps the hives?", "Tomas"), ("How many hives are there?", "four")]
    return write_squad(path, [{"context": GARDEN, "qas": [
        {"id": f"g{n}", "question": q, "answers": [{"text": a, "answer_start": GARDEN.index(a)}]}
        for n, (q, a) in enumerate(qas)]}])


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, list[str], Path]:
    root = tmp_path_factory.mktemp("gpu-bench")
    bundle = load_script("make_bundle")
    model_dir = bundle.write_bf16_copy(Path(embedded_model_path()), root / "minilm-bf16")
    data = garden_squad(root / "garden.json")
    command = [sys.executable, "-c", RUNNER, str(ROOT / "bench" / "gpu_bench.py"), "--dry-run",
               "--model-dir", str(model_dir), "--train-file", str(data), "--eval-file", str(data),
               "--peak-tflops", "100", "--profile-steps", "1", "--output", str(root / "gpu.json")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    done = subprocess.run(command, env=env, cwd=root, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    imported = json.loads(done.stdout.rsplit("DATASETS=", 1)[1])
    return json.loads((root / "gpu.json").read_text()), imported, model_dir


def test_the_bf16_copy_is_half_the_size_and_loads_as_fp32(dry_run):
    import torch
    from transformers import AutoModelForQuestionAnswering

    model_dir = dry_run[2]
    source = Path(embedded_model_path()) / "model.safetensors"
    assert (model_dir / "model.safetensors").stat().st_size < 0.51 * source.stat().st_size
    assert (model_dir / "tokenizer.json").exists()
    model = AutoModelForQuestionAnswering.from_pretrained(model_dir, dtype=torch.float32)
    assert model.dtype == torch.float32


def test_dry_run_reports_throughput_and_mfu_for_both_models(dry_run):
    report = dry_run[0]
    assert report["machine"]["peak_bf16_tflops"] == 100
    assert report["settings"]["dry_run"] is True
    assert set(report["results"]) == {"minilm", "bert-base"}
    for result in report["results"].values():
        assert result["model"]["attn_implementation"] == "sdpa"
        for phase in ("train", "eval"):
            figures = result[phase]
            assert set(FIGURES) <= set(figures)
            assert figures["windows"] > 0 and 0 < figures["tokens"] <= figures["padded_tokens"]
            expected = figures["flops"] / figures["seconds"] / 100e12
            assert figures["mfu"] == pytest.approx(expected, rel=0.01, abs=1e-4)
        assert result["train"]["warmup_seconds"] >= 0 and result["train"]["profile"]["steps"] == 1
    minilm, base = report["results"]["minilm"]["model"], report["results"]["bert-base"]["model"]
    assert (minilm["layers"], minilm["hidden"]) == (6, 384)
    assert (base["layers"], base["hidden"]) == (2, 768)  # BERT-base width; 2 of its 12 layers in a dry run


def test_nothing_on_the_benchmark_path_imports_datasets(dry_run):
    assert dry_run[1] == []


def test_model_flops_and_peak_table():
    bench = load_script("gpu_bench")
    facts = {"non_embedding_parameters": 100, "layers": 2, "hidden": 8}
    assert bench.sequence_flops([10, 20], facts, 3) == 3 * (2 * 100 * 30 + 4 * 2 * 8 * (10 * 10 + 20 * 20))
    assert bench.peak_for_name("NVIDIA H200") == 989.0
    assert bench.peak_for_name("NVIDIA H100 80GB HBM3") == 989.0
    assert bench.peak_for_name("NVIDIA H100 PCIe") == 756.0
    assert bench.peak_for_name("NVIDIA L40S") == 362.0 and bench.peak_for_name("NVIDIA L4") == 121.0
    assert bench.peak_for_name("Some Future GPU") is None


def test_profile_summary_sorts_kernels_into_classes_per_step():
    from bench.gpu_profile import kernel_class, summarize

    assert kernel_class("nvjet_sm90_tst_192x192_64x4_2x1_v_bz_coopB_bias_TNN") == "gemm"
    assert kernel_class("cudnn_generated_fort_native_sdpa_sm90_flash_bprop_wgmma") == "attention"
    assert kernel_class("triton_per_fused_native_layer_norm_backward_8") == "layer_norm"
    assert kernel_class("at::native::GammaBetaBackwardCUDAKernelTemplate<float>") == "layer_norm"
    assert kernel_class("multi_tensor_apply_kernel<FusedOptimizerTensorListMetadata>") == "optimizer"
    assert kernel_class("vectorized_elementwise_kernel<4, GeluCUDAKernelImpl>") == "elementwise_other"
    kernels = [("nvjet_a", 3000.0), ("nvjet_a", 1000.0), ("direct_copy_kernel_cuda", 500.0), ("gelu", 500.0)]
    summary = summarize(kernels, steps=2, wall_s=0.01)
    assert summary["wall_ms_per_step"] == 5.0 and summary["kernel_ms_per_step"] == 2.5
    assert summary["kernels_per_step"] == 2.0
    assert summary["by_class_ms_per_step"] == {"gemm": 2.0, "copy": 0.25, "elementwise_other": 0.25}
    assert summary["top_kernels"][0] == {"name": "nvjet_a", "class": "gemm", "ms_per_step": 2.0, "calls_per_step": 1.0}


def test_profile_kernels_leave_out_the_ranges_that_mirror_cpu_events():
    from torch.autograd import DeviceType
    from torch.autograd.profiler_util import FunctionEvent

    from bench.gpu_profile import device_kernels

    def event(name: str, device_type: DeviceType, start: int, end: int) -> FunctionEvent:
        return FunctionEvent(id=start, name=name, thread=0, start_us=start, end_us=end, device_type=device_type)

    events = [event("Optimizer.step#AdamW.step", DeviceType.CPU, 0, 50),
              event("Optimizer.step#AdamW.step", DeviceType.CUDA, 10, 40),  # the range again, on the device
              event("multi_tensor_apply_kernel", DeviceType.CUDA, 10, 25), event("Memcpy HtoD", DeviceType.CUDA, 25, 40)]
    assert device_kernels(events) == [("multi_tensor_apply_kernel", 15), ("Memcpy HtoD", 15)]


def test_the_bundle_carries_the_pinned_tokenizers(tmp_path: Path):
    """gpu_check.sh installs the bundle's wheel on a machine whose tokenizers cuts long contexts short."""
    bundle = load_script("make_bundle")
    requirements = (ROOT / "requirements.txt").read_text(encoding="utf-8")
    assert f"tokenizers=={bundle.pinned_version('tokenizers')}\n" in requirements
    (tmp_path / "requirements.txt").write_text("torch==2.13.0\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no pin for tokenizers"):
        bundle.pinned_version("tokenizers", tmp_path / "requirements.txt")
    script = (ROOT / "bench" / "gpu_check.sh").read_text(encoding="utf-8")
    assert "bench/bundle/wheels/tokenizers-" in script
