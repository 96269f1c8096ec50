"""The quick fine-tune: the embedded MiniLM on the bundled sample, with whole passages held out for evaluation."""

from __future__ import annotations

import json
from pathlib import Path

from qa_core.config import QAConfig
from qa_core.data_sources import SAMPLE_PATH
from qa_core.run_files import QUICK_DATA

# The quick fine-tune: the embedded MiniLM on the bundled sample, a few minutes on a laptop CPU. It trains on
# most passages and evaluates on the others (whole passages held out: questions about a passage it trained on
# would measure memory), so its F1 is a figure about unseen text, if a noisy one for so few questions.
QUICK_PRESET = {"num_train_epochs": 15.0, "per_device_train_batch_size": 8, "learning_rate": 1e-4,
                "warmup_ratio": 0.1, "max_seq_length": 256, "doc_stride": 64, "logging_steps": 5, "save_steps": 1000}
QUICK_HELD_OUT_EVERY = 4  # every 4th passage of the sample is held out for evaluation
# The Train tab's estimate of the quick fine-tune's wall time: bench/results/quick-fine-tune.json's wall_seconds
# (python -m bench.bench_quick times this preset; rerun it when the preset changes).
QUICK_EXPECTED_S = 382


def write_quick_split(folder: Path) -> tuple[Path, Path]:
    """The bundled sample as two SQuAD files in folder: training passages, and every QUICK_HELD_OUT_EVERY-th
    passage held out for evaluation."""
    raw = json.loads(SAMPLE_PATH.read_text(encoding="utf-8"))
    parts: tuple[list, list] = ([], [])
    for index, article in enumerate(raw["data"]):
        parts[(index + 1) % QUICK_HELD_OUT_EVERY == 0].append(article)
    paths = (folder / QUICK_DATA[0], folder / QUICK_DATA[1])
    for path, articles in zip(paths, parts):
        path.write_text(json.dumps({**raw, "data": articles}), encoding="utf-8")
    return paths


def quick_config(model: str, output_dir: str) -> QAConfig:
    """The quick fine-tune's config; writes its training and held-out files into the (claimed) run folder."""
    train_file, heldout = write_quick_split(Path(output_dir))
    return QAConfig(model_name_or_path=model, output_dir=output_dir, train_file=str(train_file),
                    validation_file=str(heldout), **QUICK_PRESET)
