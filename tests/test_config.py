"""QAConfig refuses bad values when it is built, naming the option, before anything loads or runs."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from qa_core.config import QAConfig
from qa_core.config_options import coerce_option


@pytest.mark.parametrize("changes, message", [
    ({"max_train_samples": 0}, "max_train_samples must be > 0 or None"),
    ({"max_train_samples": -3}, "max_train_samples must be > 0 or None"),
    ({"max_eval_samples": 0}, "max_eval_samples must be > 0 or None"),
    ({"max_eval_samples": -1}, "max_eval_samples must be > 0 or None"),
    ({"seed": -1}, r"seed must be in \[0, 4294967295\], got -1"),
    ({"seed": 99999999999}, r"seed must be in \[0, 4294967295\], got 99999999999"),
    ({"dataloader_num_workers": -1}, "dataloader_num_workers must be >= 0, got -1"),
    ({"num_train_epochs": -1.0}, r"num_train_epochs must be > 0, or 0 when max_steps is set, got -1.0"),
    ({"num_train_epochs": -1.0, "max_steps": 2}, r"num_train_epochs must be > 0, or 0 when max_steps is set"),
    ({"num_train_epochs": 0.0}, r"num_train_epochs must be > 0, or 0 when max_steps is set, got 0.0"),
    # the window itself is too short: its fault, not doc_stride's (a "room" of -3 read as a stride to lower)
    ({"max_seq_length": 64}, r"max_seq_length \(64\) leaves no room for the context after max_query_length "
                             r"\(64\) and 3 special tokens; raise max_seq_length or lower max_query_length"),
    ({"max_seq_length": 16, "doc_stride": 4}, r"max_seq_length \(16\) leaves no room"),
    ({"doc_stride": 189}, r"doc_stride \(189\) must be smaller than the context room of a window"),
    # an empty "$OUT" would otherwise write the run into the current folder
    ({"output_dir": ""}, r"output_dir must name a folder, got ''"),
    ({"output_dir": "  "}, r"output_dir must name a folder, got '  '"),
    # found by trying the library: the string "false" was taken as a true switch, '256' raised a TypeError
    ({"version_2_with_negative": "false"}, r"version_2_with_negative must be true or false, got 'false'"),
    ({"bf16": 0}, r"bf16 must be true or false, got 0"),
    ({"max_seq_length": "256"}, r"max_seq_length must be a whole number, got '256'"),
    ({"max_steps": 5.0}, r"max_steps must be a whole number, got 5.0"),
    ({"max_steps": True}, r"max_steps must be a whole number, got True"),
    ({"learning_rate": "1e-4"}, r"learning_rate must be a number, got '1e-4'"),
    ({"train_file": 3}, r"train_file must be text, got 3"),
    # found by trying the app: a step count beyond 64 bits broke every caller's training status
    ({"max_steps": 10**30}, r"max_steps must be at most 2147483647, got 1e\+30$"),
    ({"max_steps": 99999999999}, r"max_steps must be at most 2147483647, got 99999999999$"),
    # found by trying the API: {"max_steps": 1e308} was shown as a number of 309 digits
    ({"max_steps": coerce_option("max_steps", 1e308)}, r"max_steps must be at most 2147483647, got 1e\+308$"),
    ({"save_steps": 10**400}, r"save_steps must be at most 2147483647, got more than 1e\+308$"),
    ({"num_train_epochs": 1e308}, r"num_train_epochs must be at most 1e\+06, got 1e\+308"),
    # found by trying the CLI: a rate of 1e30 trained to finite garbage, saved as a finished run
    ({"learning_rate": 1e30}, r"learning_rate must be at most 1 .*, got 1e\+30"),
    ({"learning_rate": 1.5}, r"learning_rate must be at most 1 .*, got 1.5"),
    # found in review: a decay of 1e38 makes AdamW's factor 1 - learning_rate * weight_decay hugely negative
    ({"weight_decay": 1.5}, r"weight_decay must be at most 1 .*, got 1.5"),
    ({"weight_decay": 1e38}, r"weight_decay must be at most 1 .*, got 1e\+38"),
])
def test_bad_values_are_refused_naming_the_option(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        QAConfig(**changes)


@pytest.mark.parametrize("changes", [
    {"max_train_samples": 1, "max_eval_samples": 1}, {"seed": 0}, {"seed": 2**32 - 1},
    {"dataloader_num_workers": 0}, {"num_train_epochs": 0.0, "max_steps": 2},
    {"learning_rate": 1, "num_train_epochs": 2}, {"max_steps": 2**31 - 1}, {"max_eval_samples": None},
    {"weight_decay": 1.0},
])
def test_edge_values_are_accepted(changes: dict) -> None:
    QAConfig(**changes)


def test_paths_and_numpy_scalars_are_taken_as_their_plain_values() -> None:
    """Found in review: the type checks refused a pathlib.Path data file and numpy's bool, which trained before."""
    import numpy as np

    config = QAConfig(train_file=Path("data/train.json"), bf16=np.bool_(False), max_steps=np.int64(5),
                      learning_rate=np.float32(0.5))
    assert (config.train_file, config.bf16, config.max_steps) == ("data/train.json", False, 5)
    assert type(config.bf16) is bool and type(config.max_steps) is int and type(config.learning_rate) is float
    assert config.to_dict()["train_file"] == "data/train.json"


def test_a_saved_config_reads_back_without_the_keys_this_version_does_not_know() -> None:
    config = QAConfig(doc_stride=64, seed=7)
    assert QAConfig.from_saved({**config.to_dict(), "an_option_since_removed": 1}) == config
    with pytest.raises(ValueError, match="doc_stride"):
        QAConfig.from_saved({"doc_stride": 10_000})


@pytest.mark.parametrize("changes, message", [
    ({"num_train_epochs": math.inf}, "num_train_epochs must be a finite number"),
    ({"num_train_epochs": -1.0}, "num_train_epochs must be > 0"),
    ({"max_steps": -5}, "max_steps must be > 0"),
    ({"max_grad_norm": -1.0}, "max_grad_norm must be > 0"),
    ({"learning_rate": math.nan}, "learning_rate must be a finite number"),
    ({"weight_decay": -0.1}, "weight_decay must be >= 0"),
    ({"report_to": "wandb"}, "report_to must be"),
])
def test_bad_numbers_are_refused_at_the_boundary(changes, message) -> None:
    with pytest.raises(ValueError, match=message):
        QAConfig(**changes)


def test_unknown_lr_scheduler_type_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="lr_scheduler_type"):
        QAConfig(lr_scheduler_type="triangle")


def test_bad_attention_dropout_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="attention_dropout"):
        QAConfig(attention_dropout=1.5)


def test_a_refusal_quotes_a_long_value_cut_short() -> None:
    """Found by a tester: a web caller's 10,000-character option came back whole in the refusal."""
    from qa_core.config_options import coerce_option

    for refuse in (lambda: QAConfig(partial_answer_labels="x" * 10_000),
                   lambda: coerce_option("learning_rate", "9" * 10_000 + "x")):
        with pytest.raises(ValueError) as refused:
            refuse()
        assert len(str(refused.value)) < 200 and str(refused.value).endswith("…")
