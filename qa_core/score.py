"""Official-style scorer: `python -m qa_core.score DATASET.json PREDICTIONS.json` prints EM and F1 as JSON."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from qa_core.data import DataError, load_examples
from qa_core.metrics import compute_metrics


def score_files(dataset_file: str, prediction_file: str) -> dict[str, float]:
    examples = load_examples(dataset_file).examples
    golds = {e.example_id: [a.text for a in e.answers] for e in examples if e.answers}
    try:
        predictions = json.loads(Path(prediction_file).read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{prediction_file}: not a readable JSON predictions file ({err})") from None
    if not isinstance(predictions, dict):
        raise DataError(f"{prediction_file}: expected a JSON object {{question id: answer text}}")
    for question_id in golds.keys() - predictions.keys():
        print(f"Unanswered question {question_id} will receive score 0.", file=sys.stderr)
    return compute_metrics({k: str(v) for k, v in predictions.items()}, golds).to_dict()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="SQuAD v1.1 evaluation (same interface as evaluate-v1.1.py)")
    parser.add_argument("dataset_file", help="SQuAD-format data set file")
    parser.add_argument("prediction_file", help="JSON object mapping question id to answer text")
    args = parser.parse_args(argv)
    try:
        print(json.dumps(score_files(args.dataset_file, args.prediction_file)))
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
