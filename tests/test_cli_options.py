"""The command line's options and the config they make (qa_core.cli_options), read by the CLI's parser."""

from __future__ import annotations

from qa_core import cli
from qa_core.config import QAConfig


def test_hub_options_use_run_qa_names():
    args = cli.build_parser().parse_args(["train", "--push_to_hub", "--hub_model_id", "me/minilm-squad"])
    assert (args.push_to_hub, args.hub_model_id) == (True, "me/minilm-squad")
    assert not hasattr(cli.config_from_args(args), "push_to_hub")  # a CLI action, not a training setting


def test_cli_accepts_none_for_attention_dropout() -> None:
    args = cli.build_parser().parse_args(["train", "--attention_dropout", "none"])
    assert cli.config_from_args(args).attention_dropout is None
    assert QAConfig().attention_dropout == 0.0


def test_negative_numbers_in_any_spelling_are_values():
    """Found by trying the CLI: a threshold copied from eval_metrics.json as Python writes it (-4e-05) was read as
    an option ("expected one argument"), as was --learning_rate -1e-4, which then missed its own range error."""
    import pytest

    from qa_core import score

    args = cli.build_parser().parse_args(["predict", "--model_name_or_path", "runs/x", "--question", "Who?",
                                          "--context", "Marta.", "--null_score_diff_threshold", "-4e-05"])
    assert cli.config_from_args(args).null_score_diff_threshold == -4e-05
    args = cli.build_parser().parse_args(["train", "--null_score_diff_threshold", "-1E-1", "--seed", "-3"])
    assert (args.null_score_diff_threshold, args.seed) == (-0.1, -3)
    with pytest.raises(ValueError, match="learning_rate"):
        cli.config_from_args(cli.build_parser().parse_args(["train", "--learning_rate", "-1e-4"]))
    assert score.build_parser().parse_args(["dev.json", "pred.json", "-t", "-4e-05"]).na_prob_thresh == -4e-05
