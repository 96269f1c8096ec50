"""SQuAD 2.0 figures and whole-word spans before/after, of one trained model, as JSON.

    python -m bench.bench_v2 runs/minilm         # writes bench/results/quality-v2.json

Runs the model once per data set and searches spans several ways over the same logits, so each figure is what
`train.py evaluate` reports with the matching options (same prediction path, same metrics).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SQUAD = ROOT.parent / "shared" / "squad"


def logits_of(loaded, path: Path, config):
    """Examples, windows and their (start, end) logits, each (features, seq)."""
    from qa_core.data import load_examples
    from qa_core.features import featurize
    from qa_core.inference import run_model

    examples = load_examples(str(path), "validation").examples
    features = featurize(examples, loaded.tokenizer, config, training=False).features
    start, end = run_model(loaded.model, features, config.per_device_eval_batch_size,
                           batch_format=loaded.batch_format)
    return examples, features, start, end


def cut_words(examples, predictions) -> int:
    """Answers that start or end inside a word of the context."""
    from qa_core.postprocess import inside_word

    contexts = {e.example_id: e.context for e in examples}
    return sum(1 for k, p in predictions.items()
               if p.span and (inside_word(contexts[k], p.span[0]) or inside_word(contexts[k], p.span[1])))


def whole_word_figures(loaded, config, path: Path) -> dict:
    from qa_core.metrics import compute_metrics
    from qa_core.postprocess import SpanSearch, postprocess_predictions

    examples, features, start, end = logits_of(loaded, path, config)
    golds = {e.example_id: [a.text for a in e.answers] for e in examples if e.answers}
    out, texts = {}, []
    for name, whole_words in (("token_spans", False), ("whole_word_spans", True)):
        search = SpanSearch.from_config(config.replace(whole_word_spans=whole_words))
        predictions = postprocess_predictions(examples, features, start, end, search)
        texts.append({k: p.text for k, p in predictions.items()})
        metrics = compute_metrics(texts[-1], golds)
        out[name] = {**metrics.to_dict(), "answers_cut_inside_a_word": cut_words(examples, predictions)}
    out["changed_answers"] = sum(texts[0][k] != texts[1][k] for k in texts[0])
    return out


def v2_figures(loaded, config, path: Path, thresholds: tuple[float, ...]) -> dict:
    from qa_core.evaluation import squad_v2_metrics
    from qa_core.postprocess import SpanSearch, postprocess_predictions

    v2 = config.replace(version_2_with_negative=True)
    examples, features, start, end = logits_of(loaded, path, v2)
    out = {}
    for threshold in thresholds:
        search = SpanSearch.from_config(v2.replace(null_score_diff_threshold=threshold))
        predictions = postprocess_predictions(examples, features, start, end, search)
        out[f"threshold {threshold:g}"] = squad_v2_metrics(examples, predictions, threshold).to_dict()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a trained model or run folder")
    parser.add_argument("--v1_file", default=str(SQUAD / "dev-v1.1-subset.json"))
    parser.add_argument("--v2_file", default=str(SQUAD / "dev-v2.0-subset.json"))
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.0])
    parser.add_argument("--output", default=str(ROOT / "bench" / "results" / "quality-v2.json"))
    args = parser.parse_args()

    import torch

    from qa_core.config import QAConfig
    from qa_core.modeling import load_model
    from qa_core.runtime import configure_process

    configure_process()
    config = QAConfig(model_name_or_path=args.model)
    loaded = load_model(args.model)
    started = time.perf_counter()
    result = {
        "command": "python -m bench.bench_v2 " + " ".join(sys.argv[1:]),
        "model": args.model, "config": {k: v for k, v in config.to_dict().items()
                                        if k in ("max_seq_length", "doc_stride", "n_best_size", "max_answer_length")},
        "whole_words": whole_word_figures(loaded, config, Path(args.v1_file)),
        "squad_v2": v2_figures(loaded, config, Path(args.v2_file), tuple(args.thresholds)),
        "machine": {"platform": platform.platform(), "torch": torch.__version__, "threads": torch.get_num_threads()},
    }
    result["seconds"] = round(time.perf_counter() - started, 1)
    Path(args.output).write_text(json.dumps(result, indent=1), encoding="utf-8")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
