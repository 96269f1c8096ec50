"""Run a QA model over windows and answer a question about a context of any length."""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from qa_core.batching import BatchFormat, collate, padding_multiple, sorted_batches, unpad_logits
from qa_core.config import QAConfig
from qa_core.data import Example
from qa_core.data_sources import check_unicode
from qa_core.distributed import DistContext, gather
from qa_core.features import AS_TEXT, Feature, featurize
from qa_core.modeling import LoadedModel, fit_config
from qa_core.postprocess import (ANSWER_TOP_K, Prediction, SpanSearch, leading_spans, postprocess_predictions,
                                 predict_example, prediction_texts)
from qa_core.precision import autocast, inference_copy

logger = logging.getLogger(__name__)

WindowProgress = Callable[[int, int], None]  # windows scored so far, of how many (this process's share)


@dataclass(frozen=True)
class TokenLogits:
    """Start/end logits of every context token, merged over the windows that contain it."""

    tokens: tuple[str, ...]
    offsets: tuple[tuple[int, int], ...]  # each token's (start, end) characters in the context
    start_logits: np.ndarray  # (tokens,)
    end_logits: np.ndarray  # (tokens,)
    labels: tuple[str, ...] = ()  # what the plots show: each token's text in the context (token_labels)


ScoredWindow = tuple[Feature, np.ndarray, np.ndarray]  # a window and its start and end logits, each (seq,)


@dataclass(frozen=True)
class AnswerResult:
    question: str
    context: str
    prediction: Prediction
    windows: int
    null_threshold: float | None = None  # SQuAD 2.0: the null odds threshold it abstains above; None: never abstains
    scored: tuple[ScoredWindow, ...] = field(default=(), repr=False, compare=False)
    tokenizer: PreTrainedTokenizerBase | None = field(default=None, repr=False, compare=False)

    @functools.cached_property
    def logits(self) -> TokenLogits:
        """One row per context token, for plots: merged from the windows when first read, where the plot is drawn,
        so that answering (on the model thread) never pays for it, nor an answer that draws none (/answer's)."""
        return merge_token_logits(self.tokenizer, self.scored, self.context)


@torch.inference_mode()
def run_model(model: torch.nn.Module, features: Sequence[Feature], batch_size: int, bf16: bool = False,
              batch_format: BatchFormat = BatchFormat(), pad_to: int | None = None,
              multiple_of: int | None = None, progress: WindowProgress | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Start and end logits of every feature, each (features, longest window), padded with -inf.

    Batches hold windows of similar length, padded to a multiple of multiple_of (default: batching.padding_multiple,
    e.g. 8 on CUDA, for tensor cores); pad_to pads every batch to a fixed length instead (reference mode). progress
    hears after each batch.
    """
    parameter = next(model.parameters())
    device, bf16 = parameter.device, bf16 and parameter.dtype == torch.float32  # bf16 weights need no autocast
    was_training = model.training
    if was_training:  # .eval() walks every module: a measurable cost per question on the Ask path
        model.eval()
    longest = pad_to or max((len(f.input_ids) for f in features), default=0)
    start_logits = np.full((len(features), longest), -np.inf, dtype=np.float32)  # (features, seq)
    end_logits = np.full((len(features), longest), -np.inf, dtype=np.float32)  # (features, seq)
    scored, multiple = 0, multiple_of or padding_multiple(device, model)
    for batch in sorted_batches([len(f.input_ids) for f in features], batch_size):
        inputs = collate([features[i] for i in batch], batch_format, pad_to, multiple)
        inputs = {k: v.to(device, non_blocking=True) for k, v in inputs.items() if not k.endswith("_positions")}
        with autocast(device, bf16):
            outputs = model(**inputs)
        lengths = [len(features[i].input_ids) for i in batch]
        seq = max(lengths)  # the columns past it are padding, and may reach past `longest`
        start_logits[batch, :seq] = unpad_logits(outputs.start_logits.float().cpu().numpy(), lengths)[:, :seq]
        end_logits[batch, :seq] = unpad_logits(outputs.end_logits.float().cpu().numpy(), lengths)[:, :seq]
        scored += len(batch)
        if progress is not None:
            progress(scored, len(features))
    if was_training:
        model.train()
    return start_logits, end_logits


def answer_question(loaded: LoadedModel, question: str, context: str, config: QAConfig = QAConfig(),
                    top_k: int = ANSWER_TOP_K, max_windows: int | None = None) -> AnswerResult:
    """Search every window of the context for the best span; the windows' logits stay with the answer, for its
    per-token plots (AnswerResult.logits). Its alternatives are the best spans through its top_k-th distinct text.

    A context cut into more than max_windows windows is refused with a ValueError before the model runs."""
    example, config, features = question_windows(loaded, question, context, config, max_windows)
    start_logits, end_logits = run_model(loaded.model, features, config.per_device_eval_batch_size,
                                         batch_format=loaded.batch_format)
    scored = list(zip(features, start_logits, end_logits))
    search = SpanSearch.from_config(config, top_k)
    prediction = predict_example(example, scored, search)
    prediction = dataclasses.replace(prediction, alternatives=leading_spans(prediction.alternatives, top_k))
    return AnswerResult(question, context, prediction, len(features), search.null_threshold, tuple(scored),
                        loaded.tokenizer)


def question_windows(loaded: LoadedModel, question: str, context: str, config: QAConfig,
                     max_windows: int | None = None) -> tuple[Example, QAConfig, tuple[Feature, ...]]:
    """One question about a context as an example and its windows, cut as this model takes them (the config fitted
    to it); more than max_windows windows is refused with a ValueError, from one tokenizer pass, before any model
    runs. Answering and explaining both start here."""
    if not question.strip():
        raise ValueError("question is empty")
    if not context.strip():
        raise ValueError("context is empty")
    check_unicode(question, "question")  # else the tokenizer's TypeError
    check_unicode(context, "context")
    example = Example("query", question, context, answers=())  # a question to answer, as predict loads them
    config = fit_config(config, loaded)
    features = featurize([example], loaded.tokenizer, config, training=False).features
    # zero-width and control characters pass the blank checks, but tokenizers drop them
    if asks_nothing(features[0], loaded.tokenizer):
        raise ValueError("question has no words this model reads (only invisible characters)")
    if not any(offset is not None for feature in features for offset in feature.offsets):
        raise ValueError("context has no words this model reads (only invisible characters)")
    if max_windows is not None and len(features) > max_windows:
        raise ValueError(f"the context needs {len(features):,} windows of {config.max_seq_length} tokens; "
                         f"this server answers up to {max_windows:,} (shorten the context)")
    return example, config, features


def asks_nothing(feature: Feature, tokenizer: PreTrainedTokenizerBase) -> bool:
    """Whether a window holds no question token: only special ones before the separator that ends the question
    (which windows put first), an unknown-token stand-in counting as a word the model reads."""
    ids = list(feature.input_ids)
    end = ids.index(tokenizer.sep_token_id) if tokenizer.sep_token_id in ids else len(ids)
    special = set(tokenizer.all_special_ids) - {tokenizer.unk_token_id}
    return all(token_id in special for token_id in ids[:end])


def merge_token_logits(tokenizer: PreTrainedTokenizerBase | None, scored: Sequence[ScoredWindow],
                       context: str) -> TokenLogits:
    """One row per context token; a token seen in several windows keeps its highest logits. Tokens that share
    their characters (the bytes of one character in byte-level BPE) are one row, labelled by those characters and
    named by the first of them."""
    windows = [context_tokens(*s) for s in scored]
    if not any(len(spans) for spans, *_ in windows):
        return TokenLogits((), (), np.empty(0), np.empty(0), ())
    assert tokenizer is not None, "windows with context tokens come with their tokenizer"
    span, token_ids, start, end = (np.concatenate(column) for column in zip(*windows))  # (all, 2), then (all,)
    order = np.lexsort((span[:, 1], span[:, 0]))  # stable: within one span, the first window's token first
    span = span[order]
    first = np.flatnonzero(np.r_[True, (span[1:] != span[:-1]).any(axis=1)])  # (rows,) where each span begins
    rows = [(int(s), int(e)) for s, e in span[first]]
    return TokenLogits(tuple(tokenizer.convert_ids_to_tokens(token_ids[order][first].tolist())), tuple(rows),
                       np.maximum.reduceat(start[order], first), np.maximum.reduceat(end[order], first),
                       tuple(context[s:e] for s, e in rows))


def context_tokens(feature: Feature, start_logits: np.ndarray,
                   end_logits: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A window's context tokens: their spans (tokens, 2), token ids and start and end logits (tokens,)."""
    offsets = feature.offsets.as_array()  # (seq, 2)
    kept = np.flatnonzero(offsets[:, 0] >= 0)  # (tokens,)
    return (offsets[kept], np.asarray(feature.input_ids)[kept], np.asarray(start_logits, dtype=np.float64)[kept],
            np.asarray(end_logits, dtype=np.float64)[kept])


def token_labels(tokenizer: PreTrainedTokenizerBase, feature: Feature, context: str,
                 question: str = "") -> tuple[str, ...]:
    """How a window's tokens read on a plot: a context token as the characters of the context it covers, a question
    token as the question's, not as its vocabulary string ('ĠThe', 'Ã©' and '©' for the two bytes of é in
    byte-level BPE, '▁The' in sentencepiece, 'the' for 'The' in an uncased vocabulary); a special token as itself
    ([CLS], <s>). Any other token (one that covers only a space) as the tokenizer decodes it, '␣' where blank."""
    names = tokenizer.convert_ids_to_tokens(list(feature.input_ids))
    special = set(tokenizer.all_special_ids)
    asked = question_spans(tokenizer, question)
    labels = []
    for token_id, name, span in zip(feature.input_ids, names, feature.offsets):
        if span is not None:
            labels.append(context[span[0]:span[1]])
        elif asked and asked[0][0] == token_id:  # the question's tokens come in order, before the context's
            labels.append(question.lstrip()[slice(*asked.pop(0)[1])].strip() or "␣")
        elif token_id in special:
            labels.append(name)
        else:
            labels.append(tokenizer.convert_tokens_to_string([name]).strip() or "␣")
    return tuple(labels)


def question_spans(tokenizer: PreTrainedTokenizerBase, question: str) -> list[tuple[int, tuple[int, int]]]:
    """(token id, characters) of each token of the question as windows hold it (features.build_features strips
    its leading spaces)."""
    if not question.strip():
        return []
    encoded = tokenizer(question.lstrip(), add_special_tokens=False, return_offsets_mapping=True, **AS_TEXT)
    return list(zip(encoded["input_ids"], encoded["offset_mapping"]))


def predict_examples(model: torch.nn.Module, examples: Sequence[Example], features: Sequence[Feature],
                     config: QAConfig, bf16: bool = False, dist_ctx: DistContext = DistContext(),
                     batch_format: BatchFormat = BatchFormat(),
                     progress: WindowProgress | None = None) -> dict[str, Prediction]:
    """The one prediction path of evaluation and batch prediction: each rank runs every world_size-th window,
    the logits are gathered, so every window counts exactly once, then spans are searched per example."""
    mine = list(range(dist_ctx.rank, len(features), dist_ctx.world_size))
    pad_to = config.max_seq_length if config.pad_to_max_length else None
    start, end = run_model(model, [features[i] for i in mine], config.per_device_eval_batch_size, bf16, batch_format,
                           pad_to, progress=progress)
    start_logits, end_logits = _assemble(gather((mine, start, end), dist_ctx), len(features))
    return postprocess_predictions(examples, features, start_logits, end_logits, SpanSearch.from_config(config))


def _assemble(parts: list[tuple[list[int], np.ndarray, np.ndarray]], count: int) -> tuple[np.ndarray, np.ndarray]:
    longest = max(part[1].shape[1] for part in parts)
    start_logits = np.full((count, longest), -np.inf, dtype=np.float32)  # (features, seq)
    end_logits = np.full((count, longest), -np.inf, dtype=np.float32)  # (features, seq)
    for indices, start, end in parts:
        start_logits[indices, :start.shape[1]] = start
        end_logits[indices, :end.shape[1]] = end
    return start_logits, end_logits


def answer_examples(loaded: LoadedModel, examples: Sequence[Example], config: QAConfig = QAConfig()) -> dict[str, str]:
    """{example_id: answer} for many examples, in the official predictions format."""
    config = fit_config(config, loaded)
    features = featurize(examples, loaded.tokenizer, config, training=False).features
    model, bf16 = inference_copy(loaded.model, config.bf16, next(loaded.model.parameters()).device)
    predictions = predict_examples(model, examples, features, config, bf16, batch_format=loaded.batch_format)
    return prediction_texts(predictions)
