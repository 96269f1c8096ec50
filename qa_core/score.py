"""Official-style scorer: `python -m qa_core.score DATASET.json PREDICTIONS.json [--na-prob-file F]` prints JSON."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from qa_core.cli_options import ArgumentParser
from qa_core.data import DataError, gold_texts, load_examples
from qa_core.data_sources import read_json
from qa_core.metrics import compute_metrics, compute_metrics_v2

logger = logging.getLogger(__name__)


def read_json_object(path: str, what: str) -> dict[str, Any]:
    try:
        value = read_json(Path(path).read_text(encoding="utf-8-sig"), Path(path), "file")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: not a readable JSON {what} file ({err})") from None
    if not isinstance(value, dict):
        raise DataError(f"{path}: expected a JSON object {{question id: {what}}}")
    return value


def score_files(dataset_file: str, prediction_file: str, na_prob_file: str | None = None,
                na_prob_thresh: float = 1.0) -> dict[str, float]:
    """v1.1 EM/F1 for files without unanswerable questions (and no null odds); else evaluate-v2.0.py's figures."""
    examples = load_examples(dataset_file).examples
    predictions = {k: _text(v, prediction_file, k) for k, v in read_json_object(prediction_file, "answer text").items()}
    if na_prob_file is None and all(e.answers for e in examples):
        golds = gold_texts(examples)
        for question_id in golds.keys() - predictions.keys():
            logger.warning("Unanswered question %s will receive score 0.", question_id)
        return compute_metrics(predictions, golds).to_dict()
    na_probs = None
    if na_prob_file is not None:
        na_probs = {k: _number(v, na_prob_file, k) for k, v in read_json_object(na_prob_file, "null odds").items()}
        unscored = [e.example_id for e in examples if e.example_id not in na_probs]
        if unscored:  # compute_metrics_v2 would say so too, but could not name the file at fault
            raise DataError(f"{na_prob_file}: {len(unscored)} questions have no null odds (first: {unscored[0]!r})")
    golds_v2 = gold_texts(examples)
    try:
        return compute_metrics_v2(predictions, golds_v2, na_probs, na_prob_thresh).to_dict()
    except ValueError as err:
        raise DataError(f"{prediction_file}: {err}") from None


def _text(value: Any, path: str, question_id: str) -> str:
    # str() would score null as the answer "None" and 3 as "3": a broken predictions file, silently scored
    if not isinstance(value, str):
        raise DataError(f"{path}: question {question_id!r} has {json.dumps(value)}, expected answer text "
                        f"('' for no answer)")
    return value


def _number(value: Any, path: str, question_id: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataError(f"{path}: question {question_id!r} has {value!r}, expected a number")
    return float(value)


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description="SQuAD evaluation: the interface of evaluate-v1.1.py, and of "
                                        "evaluate-v2.0.py for data with unanswerable questions")
    parser.add_argument("dataset_file", help="SQuAD-format data set file")
    parser.add_argument("prediction_file", help="JSON object mapping question id to answer text ('' for no answer)")
    parser.add_argument("--na-prob-file", "-n", help="JSON object mapping question id to its null odds "
                        "(a run's eval_null_odds.json); adds best_exact/best_f1 and their thresholds")
    parser.add_argument("--na-prob-thresh", "-t", type=float, default=1.0,
                        help="count a question as abstained when its null odds exceed this (default 1.0, as "
                             "evaluate-v2.0.py; pass the run's threshold to reproduce its eval_metrics.json)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(format="%(message)s")  # warnings on stderr in evaluate-v1.1.py's words, as it prints them
    try:
        scores = score_files(args.dataset_file, args.prediction_file, args.na_prob_file, args.na_prob_thresh)
        print(json.dumps(scores, indent=2 if "total" in scores else None))  # each official script's layout
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
