"""One frozen config for training, evaluation and inference; the CLI and the web UI read their defaults from it."""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT_MODEL = "embedded"
# transformers' schedulers that need nothing beyond the warm-up and the step count.
LR_SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
                 "inverse_sqrt")
PARTIAL_ANSWER_LABELS = ("cls", "clip")
# Far above AdamW's rates for BERT-sized models (1e-5 to 1e-3): a larger rate can throw the weights to finite
# garbage, which no check for non-finite values sees, so such a run would be saved as finished.
MAX_LEARNING_RATE = 1.0
# Far above the decays used to fine-tune BERT (0 to 0.1). With the rate bounded too, AdamW's decoupled decay factor
# 1 - learning_rate * weight_decay stays in [0, 1]: a larger decay flips and grows the weights every step instead.
MAX_WEIGHT_DECAY = 1.0


# Special tokens of a question + context pair where the model's tokenizer is not known yet: BERT's
# [CLS] q [SEP] c [SEP]. Where it is (preflight reads a local model's, features the loaded one), its own count.
BERT_SPECIAL_TOKENS = 3


def context_room(max_seq_length: int, max_query_length: int, special_tokens: int) -> int:
    """Context tokens a window holds after the longest question and the pair's special tokens."""
    return max_seq_length - max_query_length - special_tokens


def check_windows(max_seq_length: int, doc_stride: int, max_query_length: int,
                  special_tokens: int = BERT_SPECIAL_TOKENS) -> None:
    """Windows with room for context, and a stride shorter than that room (the tokenizer panics otherwise)."""
    room = context_room(max_seq_length, max_query_length, special_tokens)
    if room <= 0:  # the window itself is too short: its fault, not doc_stride's
        raise ValueError(f"max_seq_length ({max_seq_length}) leaves no room for the context after max_query_length "
                         f"({max_query_length}) and {special_tokens} special tokens; raise max_seq_length or lower "
                         f"max_query_length")
    if doc_stride >= room:
        raise ValueError(f"doc_stride ({doc_stride}) must be smaller than the context room of a window "
                         f"(max_seq_length - max_query_length - {special_tokens} special tokens = {room})")


def _opt(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class QAConfig:
    """Every knob of a run; option names follow transformers' run_qa.py where it has one."""

    model_name_or_path: str = _opt(DEFAULT_MODEL, "Model: 'embedded' (packaged MiniLM), a local folder, a run folder "
                                   "or a hub id.")
    train_file: str | None = _opt(None, "Training data: SQuAD JSON, flat JSON/JSONL, 'sample', or a hub data set name.")
    validation_file: str | None = _opt(None, "Evaluation data, in any format train_file accepts.")
    output_dir: str = _opt("runs/latest", "Run folder for checkpoints, the final model, metrics and error records.")
    max_seq_length: int = _opt(256, "Tokens per window (question + context + special tokens).")
    doc_stride: int = _opt(128, "Tokens shared by two consecutive windows of a long context.")
    max_query_length: int = _opt(64, "Questions longer than this many tokens are truncated.")
    learning_rate: float = _opt(2e-4, f"Peak learning rate of AdamW, at most {MAX_LEARNING_RATE:g}; the default "
                                      "suits the embedded 6-layer MiniLM (BERT-base-sized models: 3e-5 to 5e-5, as "
                                      "run_qa.py).")
    weight_decay: float = _opt(0.01, f"AdamW weight decay, at most {MAX_WEIGHT_DECAY:g}; not applied to biases and "
                                      "LayerNorm.")
    warmup_ratio: float = _opt(0.1, "Fraction of the optimizer steps spent warming the learning rate up linearly.")
    lr_scheduler_type: str = _opt("linear", "Learning-rate decay after the warm-up: " + ", ".join(LR_SCHEDULERS) + ".")
    max_grad_norm: float = _opt(1.0, "Gradient clipping norm.")
    num_train_epochs: float = _opt(2.0, "Passes over the training features.")
    max_steps: int = _opt(-1, "If > 0, stop after this many optimizer steps (overrides num_train_epochs).")
    per_device_train_batch_size: int = _opt(16, "Training windows per step and process.")
    per_device_eval_batch_size: int = _opt(32, "Evaluation windows per forward pass and process.")
    gradient_accumulation_steps: int = _opt(1, "Micro-batches accumulated into one optimizer step.")
    seed: int = _opt(42, "Seed for initialisation, dropout and batch order.")
    max_train_samples: int | None = _opt(None, "Keep only the first N training examples (questions).")
    max_eval_samples: int | None = _opt(None, "Keep only the first N evaluation examples (questions).")
    n_best_size: int = _opt(20, "Start and end candidates per window in the span search.")
    max_answer_length: int = _opt(30, "Longest answer span, in tokens.")
    whole_word_spans: bool = _opt(True, "Snap answer spans to word boundaries of the context, so an answer never "
                                  "starts or ends inside a word (off: the sub-word token boundaries, as run_qa.py).")
    partial_answer_labels: str = _opt("cls", "Training windows holding only part of the answer: 'cls' labels them "
                                      "no-answer (BERT's recipe), 'clip' labels the part inside the window.")
    version_2_with_negative: bool = _opt(False, "SQuAD 2.0: some questions have no answer in the context; train "
                                         "them toward the CLS token and predict '' when the null score wins.")
    null_score_diff_threshold: float = _opt(0.0, "Predict no answer when the null score beats the best span's "
                                            "score by more than this (SQuAD 2.0 only).")
    attention_dropout: float | None = _opt(0.0, "Dropout on attention probabilities while training; at 0 PyTorch's "
                                           "fused attention kernel runs on the CPU too (faster, less memory); "
                                           "None keeps the model's own (0.1 for BERT).")
    group_by_length: bool = _opt(True, "Batch windows of similar length together, so less padding is computed.")
    bf16: bool | None = _opt(None, "bf16 autocast; default: on for CUDA and for CPUs with native bf16 "
                             "(AVX512-BF16, AMX).")
    tf32: bool = _opt(True, "Allow TF32 matmuls on CUDA.")
    torch_compile: bool = _opt(False, "Compile the model with torch.compile (dynamic shapes); with varying batch "
                                      "lengths it has been slower than eager on a GPU (README, GPU benchmark).")
    save_steps: int = _opt(200, "Write a resumable checkpoint every N optimizer steps (and at each epoch end).")
    logging_steps: int = _opt(10, "Report the running loss every N optimizer steps (progress moves at every step).")
    dataloader_num_workers: int = _opt(0, "Worker processes for batch collation.")
    pad_to_max_length: bool = _opt(False, "Pad every window to max_seq_length, as run_qa.py does by default (slower).")
    resume: bool = _opt(False, "Continue from the checkpoint in output_dir.")
    overwrite_output_dir: bool = _opt(False, "Write into an output_dir that holds a model, a run or evaluation "
                                      "files, clearing them first.")
    report_to: str = _opt("none", "Also write training metrics for: 'tensorboard' (needs the tensorboard package) "
                          "or 'none'; every run keeps history.jsonl.")

    def __post_init__(self) -> None:
        _check_types(self)
        _check_positive(self, ("max_seq_length", "doc_stride", "max_query_length", "per_device_train_batch_size",
                               "per_device_eval_batch_size", "gradient_accumulation_steps", "n_best_size",
                               "max_answer_length", "save_steps", "logging_steps"))
        _check_finite(self, ("learning_rate", "weight_decay", "warmup_ratio", "max_grad_norm", "num_train_epochs",
                             "null_score_diff_threshold"))
        for name in ("learning_rate", "max_grad_norm"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.learning_rate > MAX_LEARNING_RATE:
            raise ValueError(f"learning_rate must be at most {MAX_LEARNING_RATE:g} (AdamW's rates for BERT-sized "
                             f"models: about 1e-5 to 1e-3), got {self.learning_rate:g}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.weight_decay > MAX_WEIGHT_DECAY:
            raise ValueError(f"weight_decay must be at most {MAX_WEIGHT_DECAY:g} (AdamW's decays for BERT fine-tuning: "
                             f"0 to 0.1), got {self.weight_decay:g}")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        _check_length(self)
        _check_counts(self)
        if not self.output_dir.strip():  # Path("") is the current folder: a run would land among the user's files
            raise ValueError(f"output_dir must name a folder, got {shown(self.output_dir)}")
        if self.report_to not in ("none", "tensorboard"):
            raise ValueError(f"report_to must be 'none' or 'tensorboard', got {shown(self.report_to)}")
        if self.lr_scheduler_type not in LR_SCHEDULERS:
            raise ValueError(f"lr_scheduler_type must be one of {', '.join(LR_SCHEDULERS)}, "
                             f"got {shown(self.lr_scheduler_type)}")
        if self.partial_answer_labels not in PARTIAL_ANSWER_LABELS:
            raise ValueError(f"partial_answer_labels must be one of {', '.join(PARTIAL_ANSWER_LABELS)}, "
                             f"got {shown(self.partial_answer_labels)}")
        if self.attention_dropout is not None and not 0 <= self.attention_dropout < 1:  # NaN fails too
            raise ValueError(f"attention_dropout must be in [0, 1) or None, got {self.attention_dropout}")
        check_windows(self.max_seq_length, self.doc_stride, self.max_query_length)

    def replace(self, **changes: Any) -> QAConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_saved(cls, saved: Mapping[str, Any]) -> QAConfig:
        """The config a run.json stored; keys this version has no field for are left out. Values are checked as
        any config's (ValueError), and a wrongly typed one may raise TypeError."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in saved.items() if k in known})


SEED_RANGE = (0, 2**32 - 1)  # what numpy's seed takes; transformers' set_seed seeds numpy too


# Far above any count of steps, tokens or examples, yet within the 64-bit integers a web page's JSON carries: a
# max_steps of 10**30 was taken, and every caller's training status then failed to encode.
MAX_COUNT = 2**31 - 1
MAX_EPOCHS = 1e6  # 1e308 epochs passed as finite, then failed as an infinite step count
_KINDS = ((bool, "true or false"), (int, "a whole number"), (float, "a number"), (str, "text"))


def _check_types(config: QAConfig) -> None:
    """A value of another type is refused naming the option: the string "false" is a true bool, '256' <= 0 raises
    a TypeError that names nothing, and 5.0 steps would reach range(). A numpy scalar or a path is stored as the
    plain value it stands for, so that run.json and comparisons see the same thing."""
    for f in dataclasses.fields(config):
        value = check_type(f.name, getattr(config, f.name))
        object.__setattr__(config, f.name, value)  # frozen: set once, here, as dataclasses' own __init__ does


def check_type(name: str, value: Any) -> Any:
    """A value of QAConfig's field `name` as the library stores it (_plain), refused naming the option when it is
    of another type; the web API checks its options with it, so it refuses what the library refuses."""
    value, kinds = _plain(value), typing.get_args(HINTS[name]) or (HINTS[name],)
    if value is None and type(None) in kinds:
        return value
    kind, said = next((k, said) for k, said in _KINDS if k in kinds)
    if not _is_kind(value, kind):
        raise ValueError(f"{name} must be {said}, got {shown(value)}")
    if kind is int and name != "seed" and value > MAX_COUNT:  # the seed has a range of its own
        raise ValueError(f"{name} must be at most {MAX_COUNT}, got {_compact(value)}")
    return value


def shown(value: Any, limit: int = 80) -> str:
    """A value as a refusal quotes it: its repr, cut after `limit` characters (a web caller's may be megabytes)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def _compact(count: int) -> str:
    """A count as it reads: exact up to 15 digits, else as 1e+30 (a float's 1e308 taken as steps has 309 digits)."""
    try:
        return str(count) if count < 10**15 else f"{count:g}"
    except OverflowError:  # beyond any float
        return "more than 1e+308"


def _plain(value: Any) -> Any:
    """A path as its text, a numpy scalar (np.bool_, np.int64) as its Python value; anything else as it is."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value.item() if type(value).__module__ == "numpy" and hasattr(value, "item") else value


def _is_kind(value: Any, kind: type) -> bool:
    if kind is bool or isinstance(value, bool):  # True is an int to Python, but no step count
        return kind is bool and isinstance(value, bool)
    if kind is int:
        return isinstance(value, numbers.Integral)
    return isinstance(value, numbers.Real if kind is float else str)


def _check_length(config: QAConfig) -> None:
    """max_steps, when set, overrides num_train_epochs (as in run_qa.py), but a negative epoch count is never
    meaningful, so it is refused either way."""
    if config.num_train_epochs < 0 or (config.num_train_epochs == 0 and config.max_steps <= 0):
        raise ValueError(f"num_train_epochs must be > 0, or 0 when max_steps is set, got {config.num_train_epochs}")
    if config.num_train_epochs > MAX_EPOCHS:
        raise ValueError(f"num_train_epochs must be at most {MAX_EPOCHS:g}, got {config.num_train_epochs:g}")
    if config.max_steps == 0 or config.max_steps < -1:
        raise ValueError(f"max_steps must be > 0, or -1 to train num_train_epochs, got {config.max_steps}")


def _check_counts(config: QAConfig) -> None:
    """Counts that would otherwise fail late: an empty data set, numpy's seed, PyTorch's worker pool."""
    for name in ("max_train_samples", "max_eval_samples"):
        value = getattr(config, name)
        if value is not None and value <= 0:
            raise ValueError(f"{name} must be > 0 or None (all examples), got {value}")
    if not SEED_RANGE[0] <= config.seed <= SEED_RANGE[1]:
        raise ValueError(f"seed must be in [{SEED_RANGE[0]}, {SEED_RANGE[1]}], got {config.seed}")
    if config.dataloader_num_workers < 0:
        raise ValueError(f"dataloader_num_workers must be >= 0, got {config.dataloader_num_workers}")


def _check_positive(config: QAConfig, names: tuple[str, ...]) -> None:
    for name in names:
        value = getattr(config, name)
        if value <= 0:
            raise ValueError(f"{name} must be > 0, got {value}")


def _check_finite(config: QAConfig, names: tuple[str, ...]) -> None:
    for name in names:
        value = getattr(config, name)
        if not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value}")


def help_of(name: str) -> str:
    """The one-line help of a config field, for CLI and UI labels."""
    return QAConfig.__dataclass_fields__[name].metadata["help"]


HINTS = typing.get_type_hints(QAConfig)
