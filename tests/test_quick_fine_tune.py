"""The quick fine-tune's split of the sample and its config."""

from __future__ import annotations

import json
from pathlib import Path

from qa_core.data import load_examples
from qa_core.quick_fine_tune import QUICK_EXPECTED_S, quick_config

MEASURED = Path(__file__).resolve().parents[1] / "bench" / "results" / "quick-fine-tune.json"


def test_the_quick_fine_tune_holds_out_whole_passages(tmp_path):
    quick = quick_config("embedded", str(tmp_path))
    assert quick.output_dir == str(tmp_path) and quick.train_file != quick.validation_file
    trained, held = (load_examples(source).examples for source in (quick.train_file, quick.validation_file))
    assert len(trained) + len(held) == len(load_examples("sample").examples) and 0 < len(held) < len(trained)
    assert not {e.context for e in trained} & {e.context for e in held}  # no passage on both sides


def test_the_quick_fine_tunes_estimate_is_the_measured_time():
    """The Train tab says "about N min" from QUICK_EXPECTED_S: the time bench/results records, not another figure."""
    assert QUICK_EXPECTED_S == json.loads(MEASURED.read_text(encoding="utf-8"))["wall_seconds"]
