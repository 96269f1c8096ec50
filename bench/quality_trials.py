"""Issue 11.5 trials: span-scoring variants on a trained run's dev logits, and a record of training trials, as JSON.

    python -m bench.quality_trials spans /work/runs/protocol-baseline       # score span-search variants
    python -m bench.quality_trials record /work/runs/trial-lr2e-4 --name lr2e-4 --log LOG --command "..."

Both update bench/results/quality.json (other entries are kept). The dev logits of a run are computed once and
cached in the run folder (dev_logits.npz), so every scoring variant sees the same numbers.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "squad"  # ../shared/squad beside the repository, as the other benches read it
TRAIN_FILE = SHARED / "train-v1.1-subset.json"
DEV_FILE = SHARED / "dev-v1.1-subset.json"
RESULTS = ROOT / "bench" / "results" / "quality.json"
LOGITS_FILE = "dev_logits.npz"

# A span score from one window's logits: (start (seq,), end (seq,), in_context (seq,), max_answer_length) ->
# (seq, seq) scores, -inf where the span is not allowed; rows are starts, columns ends.
Scorer = Callable[[np.ndarray, np.ndarray, np.ndarray, int], np.ndarray]


def allowed(in_context: np.ndarray, max_answer_length: int) -> np.ndarray:
    """(seq, seq) mask of context spans with end >= start and fewer than max_answer_length tokens."""
    seq = len(in_context)
    length = np.arange(seq)[None, :] - np.arange(seq)[:, None]  # (seq, seq)
    return (length >= 0) & (length < max_answer_length) & in_context[:, None] & in_context[None, :]


def log_softmax(x: np.ndarray) -> np.ndarray:
    finite = np.isfinite(x)
    top = x[finite].max()
    return np.where(finite, x - top - np.log(np.exp(x[finite] - top).sum()), -np.inf)


def score_sum(start: np.ndarray, end: np.ndarray, in_context: np.ndarray, max_answer_length: int) -> np.ndarray:
    """The package's score: start logit + end logit."""
    return np.where(allowed(in_context, max_answer_length), start[:, None] + end[None, :], -np.inf)


def score_window_log_probability(start: np.ndarray, end: np.ndarray, in_context: np.ndarray,
                                 max_answer_length: int) -> np.ndarray:
    """log p(start) + log p(end), each a softmax over the whole window as in training (CLS and question included):
    comparable across the windows of one example."""
    return score_sum(log_softmax(start), log_softmax(end), in_context, max_answer_length)


def score_end_given_start(start: np.ndarray, end: np.ndarray, in_context: np.ndarray,
                          max_answer_length: int) -> np.ndarray:
    """log p(start) + log p(end | start): the end softmax runs only over the context ends allowed after that start."""
    mask = allowed(in_context, max_answer_length)  # (seq, seq)
    ends = np.where(mask, end[None, :], -np.inf)  # (seq, seq)
    top = np.max(ends, axis=1, keepdims=True)  # (seq, 1)
    top = np.where(np.isfinite(top), top, 0.0)
    log_norm = top + np.log(np.exp(ends - top).sum(axis=1, keepdims=True) + 1e-30)  # (seq, 1)
    return np.where(mask, log_softmax(start)[:, None] + ends - log_norm, -np.inf)


def length_prior_scorer(log_prior: np.ndarray, weight: float) -> Scorer:
    """start + end logit + weight * log p(answer length in tokens), p from the training labels."""
    def score(start: np.ndarray, end: np.ndarray, in_context: np.ndarray, max_answer_length: int) -> np.ndarray:
        length = np.arange(len(start))[None, :] - np.arange(len(start))[:, None]  # (seq, seq)
        prior = log_prior[np.clip(length, 0, len(log_prior) - 1)]  # (seq, seq)
        return score_sum(start, end, in_context, max_answer_length) + weight * prior
    return score


def training_length_log_prior(max_answer_length: int) -> np.ndarray:
    """log p(length - 1) of the answers in the training windows, add-one smoothed over 1..max_answer_length tokens."""
    from qa_core.config import QAConfig
    from qa_core.data import load_examples
    from qa_core.features import CLS_INDEX, featurize
    from qa_core.modeling import load_model

    tokenizer = load_model("embedded").tokenizer
    features = featurize(load_examples(str(TRAIN_FILE), "train").examples, tokenizer, QAConfig(), True).features
    counts = np.ones(max_answer_length)
    for f in features:
        if f.start_position != CLS_INDEX:
            counts[min(f.end_position - f.start_position, max_answer_length - 1)] += 1
    return np.log(counts / counts.sum())


def search(examples, features, start_logits: np.ndarray, end_logits: np.ndarray, scorer: Scorer,
           max_answer_length: int = 30) -> dict[str, str]:
    """{example_id: answer}: the best-scoring span over all windows of each example (every start-end pair)."""
    best: dict[int, tuple[float, int, int]] = {}
    for feature, start, end in zip(features, start_logits, end_logits):
        n = len(feature.input_ids)
        in_context = np.array([o is not None for o in feature.offsets])  # (seq,)
        scores = scorer(start[:n], end[:n], in_context, max_answer_length)  # (seq, seq)
        s, e = np.unravel_index(np.argmax(scores), scores.shape)
        if np.isfinite(scores[s, e]) and scores[s, e] > best.get(feature.example_index, (-np.inf,))[0]:
            best[feature.example_index] = (float(scores[s, e]), feature.offsets[s][0], feature.offsets[e][1])
    return {ex.example_id: ex.context[best[i][1]:best[i][2]] if i in best else "" for i, ex in enumerate(examples)}


def dev_logits(run_dir: Path):
    """Dev examples, windows and logits of a run's final model, bf16 as in training; cached in the run folder."""
    import torch

    from qa_core.config import QAConfig
    from qa_core.data import load_examples
    from qa_core.features import featurize
    from qa_core.inference import run_model
    from qa_core.modeling import load_model
    from qa_core.precision import set_up_precision

    config = QAConfig()
    loaded = load_model(str(run_dir))
    examples = load_examples(str(DEV_FILE), "validation").examples
    features = featurize(examples, loaded.tokenizer, config, training=False).features
    cache = run_dir / LOGITS_FILE
    if cache.exists():
        saved = np.load(cache)
        return examples, features, saved["start"], saved["end"]
    bf16 = set_up_precision(loaded.model, True, torch.device("cpu"))  # as training ran
    start, end = run_model(loaded.model, features, config.per_device_eval_batch_size, bf16=bf16,
                           batch_format=loaded.batch_format)
    np.savez(cache, start=start, end=end)
    return examples, features, start, end


def score_spans(run_dir: Path) -> dict:
    """Dev EM/F1 of the package's span search and of each variant, on the same logits."""
    from qa_core.metrics import compute_metrics
    from qa_core.postprocess import postprocess_predictions

    examples, features, start, end = dev_logits(run_dir)
    golds = {e.example_id: [a.text for a in e.answers] for e in examples}
    package = postprocess_predictions(examples, features, start, end)
    log_prior = training_length_log_prior(30)
    variants: dict[str, Scorer] = {
        "sum (exhaustive)": score_sum,
        "window log-probability": score_window_log_probability,
        "end given start": score_end_given_start,
        "length prior, weight 1": length_prior_scorer(log_prior, 1.0),
    }
    rows = {"package (top-20 starts x ends)": compute_metrics({k: p.text for k, p in package.items()}, golds)}
    rows.update({name: compute_metrics(search(examples, features, start, end, scorer), golds)
                 for name, scorer in variants.items()})
    result = {name: {"exact_match": round(m.exact_match, 2), "f1": round(m.f1, 2)} for name, m in rows.items()}
    grid = {w: per_question_f1(search(examples, features, start, end, length_prior_scorer(log_prior, w)), golds)
            for w in PRIOR_WEIGHTS}
    result["length prior, weight chosen by 2-fold cross-validation on dev"] = cross_validated(grid)
    return result


PRIOR_WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0)


def per_question_f1(predictions: dict[str, str], golds: dict[str, list[str]]) -> np.ndarray:
    from qa_core.metrics import best_over_golds, compute_f1

    return np.array([best_over_golds(compute_f1, predictions.get(k, ""), g) for k, g in golds.items()])


def cross_validated(grid: dict[float, np.ndarray]) -> dict:
    """Choose the weight on the odd questions and score the even ones with it, and the other way round."""
    weights = list(grid)
    scores = np.stack([grid[w] for w in weights])  # (weights, questions)
    folds = np.arange(scores.shape[1]) % 2  # (questions,)
    chosen, total = [], 0.0
    for fold in (0, 1):
        best = int(np.argmax(scores[:, folds != fold].mean(axis=1)))
        chosen.append(weights[best])
        total += scores[best, folds == fold].sum()
    return {"f1": round(100 * total / scores.shape[1], 2), "chosen_weights": chosen,
            "f1_by_weight": {str(w): round(100 * grid[w].mean(), 2) for w in weights}}


def record_trial(run_dir: Path, name: str, log: Path, command: str, note: str) -> dict:
    """A training trial's settings, steps, windows, dev EM/F1 and wall time from its run folder and log."""
    from qa_core.run_files import RUN_FILE

    run = json.loads((run_dir / RUN_FILE).read_text())
    text = log.read_text(errors="replace")
    started = re.search(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", text, re.M)
    wall = (run_dir / RUN_FILE).stat().st_mtime - time.mktime(time.strptime(started.group(1), "%Y-%m-%d %H:%M:%S"))
    elapsed = re.findall(rf"{run['total_steps']}/{run['total_steps']} \[((?:\d+:)?\d+:\d+)", text)
    config = run["config"]
    windows = _windows(config)
    return {"name": name, "note": note, "status": run["status"], "steps": run["step"],
            "train_windows_per_epoch": windows, "windows_seen": windows * int(config["num_train_epochs"]),
            "exact_match": round(run["metrics"]["exact_match"], 2), "f1": round(run["metrics"]["f1"], 2),
            "history": run["history"], "wall_seconds": round(wall),
            "train_loop_seconds": _seconds(elapsed[-1]) if elapsed else None,
            "settings": {k: config[k] for k in ("learning_rate", "lr_scheduler_type", "warmup_ratio",
                                                  "partial_answer_labels", "weight_decay", "bf16", "seed")
                         if k in config},
            "command": command}


def _seconds(clock: str) -> int:
    """tqdm's elapsed time, [h:]mm:ss, in seconds."""
    return sum(int(part) * 60 ** i for i, part in enumerate(reversed(clock.split(":"))))


def _windows(config: dict) -> int:
    from qa_core.config import QAConfig
    from qa_core.data import load_examples
    from qa_core.features import featurize
    from qa_core.modeling import load_model

    tokenizer = load_model("embedded").tokenizer
    return len(featurize(load_examples(str(TRAIN_FILE), "train").examples, tokenizer, QAConfig.from_saved(config),
                         True).features)


def update_results(key: str, name: str, value: dict) -> None:
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results.setdefault("protocol", "embedded MiniLM, train-v1.1-subset.json, 2 epochs, 256/128, batch 16, "
                                   "warm-up 0.1, wd 0.01, seed 42, bf16 autocast on the CPU; dev-v1.1-subset.json")
    results.setdefault(key, {})[name] = value
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")


def main(argv: Sequence[str] | None = None) -> None:
    from qa_core.runtime import configure_process

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    spans = commands.add_parser("spans", help="score span-search variants on a run's dev logits")
    spans.add_argument("run_dir", type=Path)
    record = commands.add_parser("record", help="record a finished training trial")
    record.add_argument("run_dir", type=Path)
    record.add_argument("--name", required=True)
    record.add_argument("--log", type=Path, required=True)
    record.add_argument("--command", dest="trial_command", required=True)
    record.add_argument("--note", default="")
    args = parser.parse_args(argv)
    configure_process()
    if args.command == "spans":
        value = score_spans(args.run_dir)
        update_results("span_scoring", args.run_dir.name, value)
    else:
        value = record_trial(args.run_dir, args.name, args.log, args.trial_command, args.note)
        update_results("training_trials", args.name, value)
    print(json.dumps(value, indent=1))


if __name__ == "__main__":
    main()
