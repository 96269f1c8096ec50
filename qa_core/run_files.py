"""The names of everything a run folder holds, and the way from a run folder to its model and back."""

from __future__ import annotations

from pathlib import Path

# Local bookkeeping: the run's own record, its progress log and TensorBoard events.
RUN_FILE = "run.json"
HISTORY_FILE = "history.jsonl"
TENSORBOARD_DIR = "tensorboard"
# Resumable training state: a model folder plus the optimizer, scheduler and RNG state.
CHECKPOINT_DIR = "checkpoint"
STATE_FILE = "trainer_state.pt"
# The final model: config, weights, tokenizer and model card, ready for from_pretrained and the Hub.
MODEL_DIR = "model"
CARD_FILE = "README.md"
CONFIG_FILE = "config.json"
# Model files at the top of a folder: an older run's final model, or a plain model folder.
MODEL_FILES = ("model.safetensors", "pytorch_model.bin", CONFIG_FILE)
# The latest evaluation (eval_*): official predictions, metrics, per-question records, SQuAD 2.0 inputs.
EVAL_PREFIX = "eval_"
PREDICTIONS_FILE = "eval_predictions.json"
METRICS_FILE = "eval_metrics.json"
RECORDS_FILE = "eval_records.jsonl"
NULL_ODDS_FILE = "eval_null_odds.json"  # SQuAD 2.0: evaluate-v2.0.py's --na-prob-file
BEST_SPANS_FILE = "eval_best_spans.json"  # SQuAD 2.0: the best span of every question, abstaining or not
CALIBRATION_FILE = "calibration.json"  # a temperature fitted on the records
TMP_SUFFIX, OLD_SUFFIX = ".tmp", ".old"  # a folder being written; the one it replaces, until the swap is done


def partial_names(name: str) -> tuple[str, str, str]:
    """A swapped-in file or folder and its two temporary names."""
    return name, name + TMP_SUFFIX, name + OLD_SUFFIX


# What a run leaves in its folder; a new run or evaluation refuses to write over any of them.
RUN_RECORDS = (*partial_names(RUN_FILE), HISTORY_FILE, TENSORBOARD_DIR, *partial_names(CHECKPOINT_DIR),
               *partial_names(MODEL_DIR), CALIBRATION_FILE, *MODEL_FILES)
# What a model is: the final model folder of a run, or model files at the top of a folder.
MODEL_RECORDS = (*partial_names(MODEL_DIR), *MODEL_FILES)


def model_folder(folder: Path) -> Path:
    """The folder holding the model of `folder`: a run's model/ subfolder, else the folder itself (a plain
    model folder, or a run from before the model had its own subfolder)."""
    inner = folder / MODEL_DIR
    return inner if (inner / CONFIG_FILE).is_file() else folder


def run_folder(model: Path) -> Path:
    """The run a model folder belongs to: the parent of a run's model/ subfolder, else the folder itself."""
    if model.name == MODEL_DIR and (model.parent / RUN_FILE).is_file():
        return model.parent
    return model
