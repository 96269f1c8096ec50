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
