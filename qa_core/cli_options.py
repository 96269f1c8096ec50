"""The command line's options, one per QAConfig field, and the config they make."""
# For evaluate and predict, a run's windows where the command line does not give them.

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from collections.abc import Sequence
from typing import Any

from qa_core.config import QAConfig

SPAN_FIELDS = ("n_best_size", "max_answer_length", "whole_word_spans", "version_2_with_negative",
               "null_score_diff_threshold")
EVAL_FIELDS = ("model_name_or_path", "validation_file", "output_dir", "max_seq_length", "doc_stride",
               "max_query_length", "per_device_eval_batch_size", "max_eval_samples", "bf16",
               "overwrite_output_dir") + SPAN_FIELDS
PREDICT_FIELDS = ("model_name_or_path", "max_seq_length", "doc_stride", "max_query_length",
                  "overwrite_output_dir") + SPAN_FIELDS
# What evaluate and predict take from a run's run.json unless given: the windows and span search it trained and
# evaluated with; evaluate also SQuAD 2.0 and its threshold, else evaluating a v2 run into its own folder would
# make it a v1.1 run (predict answers at the best threshold of the run's evaluation, cli.run_predict)
RUN_FOLLOWED = ("max_seq_length", "doc_stride", "max_query_length", "n_best_size", "max_answer_length",
                "whole_word_spans")
EVAL_FOLLOWED = RUN_FOLLOWED + ("version_2_with_negative", "null_score_diff_threshold")
FROM_THE_RUN = "the model's run's (its run.json), else {}"
EVAL_DEFAULTS = {"version_2_with_negative": "as the model's run (its run.json), else off",
                 "null_score_diff_threshold": "the model's run's (its run.json), else 0.0"}
PREDICT_DEFAULTS = {"version_2_with_negative": "on for a run whose evaluation was SQuAD 2.0 (its eval_metrics.json), "
                                               "else off",
                    "null_score_diff_threshold": "the best_f1_thresh of that evaluation, else 0.0"}
EVAL_OUTPUT_HELP = ("Folder for the evaluation's metrics, predictions and per-question records; a run's own folder "
                    "keeps its run and replaces only its evaluation files")
PREDICT_OVERWRITE_HELP = "Replace an --output_file that already exists (else predict refuses it)"


def _float_or_none(text: str) -> float | None:
    """A float, or None for 'none' (e.g. --attention_dropout none keeps the model's own)."""
    return None if text.lower() == "none" else float(text)


_TYPES = {"str": str, "str | None": str, "int": int, "int | None": int, "float": float, "float | None": _float_or_none}


def add_config_options(parser: argparse.ArgumentParser, names: tuple[str, ...] | None = None,
                       said: dict[str, str] | None = None, helps: dict[str, str] | None = None) -> None:
    """One --option per QAConfig field, with the field's help and default. said: defaults decided elsewhere (from
    the model's run), as the help tells them; the option's value is then None. helps: a command's own help."""
    said, helps = said or {}, helps or {}
    for f in dataclasses.fields(QAConfig):
        if names is not None and f.name not in names:
            continue
        default = None if f.name in said else f.default
        help_text = f"{helps.get(f.name, f.metadata['help'])} (default: {said.get(f.name, f.default)})"
        if f.type.startswith("bool"):
            parser.add_argument(f"--{f.name}", action=argparse.BooleanOptionalAction, default=default, help=help_text)
        else:
            parser.add_argument(f"--{f.name}", type=_TYPES[f.type], default=default, help=help_text)


def add_hub_options(parser: argparse.ArgumentParser) -> None:
    """run_qa.py's names for uploading the finished run to the Hugging Face Hub."""
    parser.add_argument("--push_to_hub", action="store_true",
                        help="upload the final model and its model card to the Hub when training finishes")
    parser.add_argument("--hub_model_id", default=None,
                        help="Hub repository to push to, 'user/name' (default: the output_dir's folder name)")


def config_from_args(args: argparse.Namespace) -> QAConfig:
    """The config of the given options; an option left at None (where None is no valid value) keeps its default,
    or for evaluate and predict takes the model's run's (followed_settings)."""
    fields = {f.name: f for f in dataclasses.fields(QAConfig)}
    given = {k: v for k, v in vars(args).items() if k in fields and not (v is None and "None" not in fields[k].type)}
    return QAConfig(**{**followed_settings(args), **given})  # one check of the merged values: 96 with the run's stride


def followed_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The model's run's settings (EVAL_FOLLOWED, RUN_FOLLOWED) for the options evaluate or predict were not given:
    other windows give other scores than the run's own evaluation, for the same model."""
    followed = {"evaluate": EVAL_FOLLOWED, "predict": RUN_FOLLOWED}.get(args.command, ())
    if not followed:
        return {}
    from qa_core.preflight import run_settings

    stored = run_settings(args.model_name_or_path)
    return {name: stored[name] for name in followed if getattr(args, name) is None and name in stored}


def run_defaults(command_defaults: dict[str, str]) -> dict[str, str]:
    """What evaluate or predict says of the defaults it takes from the model's run."""
    defaults = QAConfig()
    return {**{name: FROM_THE_RUN.format(getattr(defaults, name)) for name in RUN_FOLLOWED}, **command_defaults}


NEGATIVE_NUMBER = re.compile(r"-(\d+\.?\d*|\.\d+)(e[-+]?\d+)?|-inf(inity)?|-nan", re.IGNORECASE)


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, taking a negative number in any spelling as an option's value: argparse's own rule knows
    no exponent, so it read '-4e-05' (a threshold as eval_metrics.json writes it) as an option of its own."""

    def parse_known_args(self, args: Sequence[str] | None = None,
                         namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        return super().parse_known_args(joined_negative_numbers(sys.argv[1:] if args is None else args), namespace)


def joined_negative_numbers(args: Sequence[str]) -> list[str]:
    """args with each negative number that follows an option joined to it: '--x', '-4e-05' make '--x=-4e-05'."""
    joined: list[str] = []
    for arg in args:
        after_option = (joined and joined[-1].startswith("-") and "=" not in joined[-1]
                        and not NEGATIVE_NUMBER.fullmatch(joined[-1]) and "--" not in joined)
        if after_option and NEGATIVE_NUMBER.fullmatch(arg):
            joined[-1] += f"={arg}"
        else:
            joined.append(arg)
    return joined


def build_parser(prog: str | None = None, description: str | None = None) -> argparse.ArgumentParser:
    parser = ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    # no abbreviations: --lr (run_qa.py users' habit) was taken for --lr_scheduler_type
    train = commands.add_parser("train", help="fine-tune, evaluating after each epoch", allow_abbrev=False)
    add_config_options(train)
    add_hub_options(train)
    evaluate = commands.add_parser("evaluate", help="score a model on validation_file (EM/F1 + records)",
                                   allow_abbrev=False)
    add_config_options(evaluate, EVAL_FIELDS, run_defaults(EVAL_DEFAULTS), {"output_dir": EVAL_OUTPUT_HELP})
    predict = commands.add_parser("predict", help="answer one question, or every question of a file",
                                  allow_abbrev=False)
    add_config_options(predict, PREDICT_FIELDS, run_defaults(PREDICT_DEFAULTS),
                       {"overwrite_output_dir": PREDICT_OVERWRITE_HELP})
    predict.add_argument("--question", help="a question about --context")
    predict.add_argument("--context", help="the passage holding the answer")
    predict.add_argument("--test_file", help="answer every question of this data file instead (gold answers, "
                         "if any, are not used)")
    predict.add_argument("--output_file", help="where to write {id: answer} for --test_file (default: stdout)")
    commands.add_parser("app", help="serve the Gradio web app (as `python app.py`; GRADIO_SERVER_PORT etc. apply)")
    return parser
