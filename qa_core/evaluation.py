"""Evaluate a model on examples: logits for every window, spans, official metrics and per-question records."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from qa_core.checkpoints import MODEL_FILES, RUN_RECORDS, check_output_dir, clear_records
from qa_core.config import QAConfig
from qa_core.data import Example, load_examples
from qa_core.distributed import DistContext, device_for, init_distributed
from qa_core.error_analysis import RECORDS_FILE, QuestionRecord, build_records, write_records
from qa_core.features import BatchFormat, Feature, featurize
from qa_core.inference import predict_examples
from qa_core.metrics import Metrics, compute_metrics
from qa_core.modeling import fit_config, load_model
from qa_core.postprocess import Prediction

# With --overwrite_output_dir an evaluation replaces a run's records, but not the model it may be evaluating.
EVAL_OVERWRITES = tuple(name for name in RUN_RECORDS if name not in MODEL_FILES)
PREDICTIONS_FILE = "eval_predictions.json"
METRICS_FILE = "eval_metrics.json"


@dataclass(frozen=True)
class EvalResult:
    metrics: Metrics
    predictions: dict[str, Prediction]
    records: list[QuestionRecord]


def evaluate(model: torch.nn.Module, examples: Sequence[Example], features: Sequence[Feature], config: QAConfig,
             bf16: bool = False, context: DistContext = DistContext(),
             batch_format: BatchFormat = BatchFormat()) -> EvalResult:
    """Predictions for every example (each window scored once across ranks), official metrics, records."""
    predictions = predict_examples(model, examples, features, config, bf16, context, batch_format)
    golds = {e.example_id: [a.text for a in e.answers] for e in examples if e.answers}
    metrics = compute_metrics({k: p.text for k, p in predictions.items()}, golds)
    return EvalResult(metrics, predictions, build_records([e for e in examples if e.answers], predictions))


def write_eval_outputs(output_dir: Path, result: EvalResult) -> None:
    """The official predictions file, the metrics, and one JSON line per question for error analysis."""
    output_dir.mkdir(parents=True, exist_ok=True)
    predictions = {k: p.text for k, p in result.predictions.items()}
    (output_dir / PREDICTIONS_FILE).write_text(json.dumps(predictions, ensure_ascii=False, indent=1), encoding="utf-8")
    (output_dir / METRICS_FILE).write_text(json.dumps(result.metrics.to_dict(), indent=1), encoding="utf-8")
    write_records(output_dir / RECORDS_FILE, result.records)


def run_evaluation(config: QAConfig, device: str | None = None) -> EvalResult:
    """Load config.model_name_or_path and config.validation_file, evaluate, and write the outputs to output_dir."""
    if not config.validation_file:
        raise ValueError("validation_file is required for evaluation")
    output_dir = Path(config.output_dir)
    check_output_dir(output_dir, config.overwrite_output_dir)  # never mix with a run's or another evaluation's files
    context = init_distributed()
    torch_device = device_for(context, device)
    loaded = load_model(config.model_name_or_path, torch_device)
    config = fit_config(config, loaded)
    examples = load_examples(config.validation_file, "validation", config.max_eval_samples).examples
    features = featurize(examples, loaded.tokenizer, config, training=False).features
    bf16 = config.bf16 if config.bf16 is not None else torch_device.type == "cuda"
    result = evaluate(loaded.model, examples, features, config, bf16, context, loaded.batch_format)
    if context.is_main:
        clear_records(output_dir, EVAL_OVERWRITES)
        write_eval_outputs(output_dir, result)
    return result
