"""Evaluate a model on examples: logits for every window, spans, official metrics and per-question records."""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from qa_core.batching import BatchFormat
from qa_core.calibration import fit_calibration, write_calibration
from qa_core.checkpoints import move_in
from qa_core.file_writes import no_room_said
from qa_core.config import QAConfig
from qa_core.data import Example, gold_texts, load_examples
from qa_core.distributed import DistContext, device_for, init_distributed
from qa_core.error_analysis import QuestionRecord, build_records, write_records
from qa_core.eval_settings import Evaluated, evaluated_data, write_evaluated
from qa_core.features import Feature, featurize
from qa_core.inference import WindowProgress, predict_examples
from qa_core.metrics import Metrics, compute_metrics, compute_metrics_v2
from qa_core.model_card import write_model_card
from qa_core.modeling import fit_config, load_model, warn_if_untrained
from qa_core.postprocess import Prediction, finite_floats, prediction_texts
from qa_core.precision import set_up_precision
from qa_core.run_files import (BEST_SPANS_FILE, CALIBRATION_FILE, CARD_FILE, EVAL_MODEL_FILE, EVAL_EXTRA_OUTPUTS,
                               EVAL_SETTINGS_FILE, EVAL_STAGING, METRICS_FILE, MODEL_DIR, MODEL_OUTPUTS, NULL_ODDS_FILE,
                               PREDICTIONS_FILE, RECORDS_FILE, RUN_FILE, RUN_OUTPUTS, RunInfo, check_eval_output_dir,
                               evaluated_model_entry, evaluates_own_run, read_run_info)
from qa_core.run_lock import training_lock
from qa_core.wording import TwoWordings

# With --overwrite_output_dir an evaluation replaces a run's outputs, but not the model it may be evaluating.
EVAL_OVERWRITES = tuple(name for name in RUN_OUTPUTS if name not in MODEL_OUTPUTS)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalResult:
    metrics: Metrics
    predictions: dict[str, Prediction]
    records: list[QuestionRecord]
    used: Evaluated | None = None  # what it evaluated with besides the model (None: not known)


def evaluate(model: torch.nn.Module, examples: Sequence[Example], features: Sequence[Feature], config: QAConfig,
             bf16: bool = False, dist_ctx: DistContext = DistContext(),
             batch_format: BatchFormat = BatchFormat(), progress: WindowProgress | None = None) -> EvalResult:
    """Predictions for every example (each window scored once across ranks), official metrics, records, and what
    it evaluated with (the data, the threshold, the windows: config is fitted to the model already).

    Without version_2_with_negative, unanswerable questions are left out of the scores and the records."""
    predictions = predict_examples(model, examples, features, config, bf16, dist_ctx, batch_format, progress)
    used = evaluated_data(config, examples)
    if config.version_2_with_negative:
        return EvalResult(squad_v2_metrics(examples, predictions, config.null_score_diff_threshold), predictions,
                          build_records(examples, predictions), used)
    golds = gold_texts(e for e in examples if e.answers)
    metrics = compute_metrics(prediction_texts(predictions), golds)
    return EvalResult(metrics, predictions, build_records([e for e in examples if e.answers], predictions), used)


class UnscorableData(TwoWordings, ValueError):
    """Evaluation data with nothing to score, in train.py's words and the web app's."""


def check_scorable(examples: Sequence[Example], config: QAConfig, source: str) -> None:
    """Refuse evaluation data with nothing to score (SQuAD 2.0 questions read as v1.1) before any work on it."""
    if examples and not config.version_2_with_negative and not any(e.answers for e in examples):
        said = (f"{source}: none of its {len(examples)} questions has an answer, so a SQuAD v1.1 evaluation has "
                f"nothing to score; for SQuAD 2.0 data")
        raise UnscorableData(f"{said} add --version_2_with_negative", f"{said} turn version_2_with_negative on")
    unanswerable = sum(not e.answers for e in examples)
    if unanswerable and not config.version_2_with_negative:  # else EM/F1 silently describe part of the file
        logger.warning("%s: %d of its %d questions have no answer; a SQuAD v1.1 evaluation leaves them out of the "
                       "scores (--version_2_with_negative scores them)", source, unanswerable, len(examples))


def squad_v2_metrics(examples: Sequence[Example], predictions: Mapping[str, Prediction],
                     threshold: float) -> Metrics:
    """evaluate-v2.0.py's figures of the predictions at this threshold; best_* are searched over the best spans
    (the answers before abstaining), since a sweep over answers already cut at the threshold cannot find a higher
    one. exact_match and f1 repeat exact and f1 for readers of v1.1 metrics."""
    golds = gold_texts(examples)
    odds = null_odds(predictions)
    at_threshold = compute_metrics_v2(prediction_texts(predictions), golds, odds, threshold)
    searched = compute_metrics_v2(best_span_texts(predictions), golds, odds, threshold)
    v2 = replace(at_threshold, best_exact=searched.best_exact, best_f1=searched.best_f1)
    return Metrics(v2.exact, v2.f1, v2.total, v2)


def null_odds(predictions: Mapping[str, Prediction]) -> dict[str, float]:
    return {k: p.null_odds for k, p in predictions.items() if p.null_odds is not None}


def best_span_texts(predictions: Mapping[str, Prediction]) -> dict[str, str]:
    return {k: p.alternatives[0].text if p.alternatives else "" for k, p in predictions.items()}


def write_eval_outputs(output_dir: Path, result: EvalResult) -> None:
    """The official predictions file ("" for no answer), the metrics, one JSON line per question for error
    analysis, the temperature fitted on those records, what the evaluation used (eval_settings.py) where known,
    and for SQuAD 2.0 the null odds and the best spans (evaluate-v2.0.py's inputs)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    files = {PREDICTIONS_FILE: prediction_texts(result.predictions),
             METRICS_FILE: result.metrics.to_dict()}
    if result.metrics.squad_v2 is not None:
        # Infinite odds (a context with no span at all) are not JSON; the largest float still abstains at any
        # threshold when evaluate-v2.0.py compares it.
        files[NULL_ODDS_FILE] = finite_floats(null_odds(result.predictions))
        files[BEST_SPANS_FILE] = best_span_texts(result.predictions)
    else:  # a v1.1 evaluation into a folder a v2 one wrote: no stale null odds beside the new predictions
        for name in (NULL_ODDS_FILE, BEST_SPANS_FILE):
            (output_dir / name).unlink(missing_ok=True)
    for name, content in files.items():
        (output_dir / name).write_text(json.dumps(content, ensure_ascii=False, indent=1), encoding="utf-8")
    write_records(output_dir / RECORDS_FILE, result.records)
    if result.used is not None:
        write_evaluated(output_dir, result.used)
    else:  # no settings of another evaluation beside these records
        (output_dir / EVAL_SETTINGS_FILE).unlink(missing_ok=True)
    if result.records:
        write_calibration(output_dir, fit_calibration(result.records))
    else:
        (output_dir / CALIBRATION_FILE).unlink(missing_ok=True)


def run_evaluation(config: QAConfig, device: str | None = None, progress: WindowProgress | None = None) -> EvalResult:
    """Load config.model_name_or_path and config.validation_file, evaluate, and write the outputs to output_dir;
    progress hears the windows the main process has scored."""
    if not config.validation_file:
        raise ValueError("validation_file is required for evaluation")
    output_dir = Path(config.output_dir)
    # Never mix with a run's or another evaluation's files; a run evaluated into its own folder refreshes only its
    # evaluation files (its run.json, checkpoint, history and model stay).
    check_eval_output_dir(output_dir, config.model_name_or_path, config.overwrite_output_dir)
    run = read_run_info(output_dir) if (output_dir / RUN_FILE).is_file() else None  # its card outlives run.json
    # held while it works: a trainer started meanwhile would see its files replaced by this older evaluation's
    with training_lock(output_dir) if run is not None else contextlib.nullcontext():
        return _evaluate_into(output_dir, config, run, device, progress)


def _evaluate_into(output_dir: Path, config: QAConfig, run: RunInfo | None, device: str | None,
                   progress: WindowProgress | None) -> EvalResult:
    own_run = evaluates_own_run(output_dir, config.model_name_or_path)
    dist_ctx = init_distributed()
    torch_device = device_for(dist_ctx, device)
    examples = load_examples(config.validation_file, "validation", config.max_eval_samples).examples
    check_scorable(examples, config, config.validation_file)  # before the model loads
    loaded = load_model(config.model_name_or_path, torch_device)
    warn_if_untrained(loaded)
    config = fit_config(config, loaded)
    features = featurize(examples, loaded.tokenizer, config, training=False).features
    bf16 = set_up_precision(loaded.model, config.bf16, torch_device, training=False)
    result = evaluate(loaded.model, examples, features, config, bf16, dist_ctx, loaded.batch_format,
                      progress if dist_ctx.is_main else None)
    if dist_ctx.is_main:
        named = None if own_run else config.model_name_or_path  # a folder of its own names the model nowhere else
        card_run = run if card_is_of(output_dir, run, Path(loaded.source)) else None
        with no_room_said(f"in {output_dir}", "the earlier evaluation files kept", "evaluate again"):
            save_evaluation(output_dir, result, EVAL_EXTRA_OUTPUTS if own_run else EVAL_OVERWRITES, named, card_run)
    return result


def save_evaluation(output_dir: Path, result: EvalResult, replaced: tuple[str, ...], model: str | None,
                    run: RunInfo | None) -> None:
    """Every file of the evaluation written aside (EVAL_STAGING, laid out as output_dir), then moved in over the
    earlier ones (move_in), so that a write that fails (a full disk) leaves the earlier evaluation whole, never
    part of each. model: the evaluated model, to name in the folder; run: the run whose model card states the new
    scores (card_is_of), and what the evaluation used (result.used, also staged)."""
    staged = output_dir / EVAL_STAGING
    shutil.rmtree(staged, ignore_errors=True)  # a killed evaluation's
    try:
        write_eval_outputs(staged, result)
        if model is not None:
            write_evaluated_model(staged, evaluated_model_entry(output_dir, model))
        if run is not None:
            (staged / MODEL_DIR).mkdir()
            write_model_card(output_dir, info=run, evaluated=result.used, folder=staged / MODEL_DIR,
                             eval_dir=staged)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    move_in(staged, output_dir, replaced)


def write_evaluated_model(output_dir: Path, named: str) -> None:
    """Name the evaluated model in the evaluation's folder (as run_files.evaluated_model_entry words it), so that
    given as a model it is told which to use, and the web app plots and explains its rows with that model."""
    (output_dir / EVAL_MODEL_FILE).write_text(json.dumps({"model_name_or_path": named}, ensure_ascii=False),
                                              encoding="utf-8")


def card_is_of(output_dir: Path, run: RunInfo | None, model: Path) -> bool:
    """A run's model evaluated again into its run folder: its model card is to state the new scores."""
    card = output_dir / MODEL_DIR / CARD_FILE
    return run is not None and card.is_file() and model.resolve() == card.parent.resolve()
