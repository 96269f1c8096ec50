"""Turn examples into token windows (features) with character offsets and answer labels."""

from __future__ import annotations

import contextvars
import dataclasses
import importlib.metadata
import logging
from array import array
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from itertools import chain

import numpy as np
from transformers import PreTrainedTokenizerBase

from qa_core.config import QAConfig, check_windows
from qa_core.data import Example
from qa_core.settings import limits_within

logger = logging.getLogger(__name__)

CLS_INDEX = 0  # where the CLS token sits in BERT-style windows; a window's own position is Feature.cls_index
NO_SPAN = (-1, -1)  # how Offsets stores None
CHUNK_SIZE = 1000  # examples tokenized at once by featurize
# Typed "[SEP]" or "<pad>" is text: a tokenizer would otherwise read it as its own special token, so a context of
# "[PAD]"s became padding and a question ended at a typed "[SEP]". BERT's original tokenizer split them too.
AS_TEXT = {"split_special_tokens": True}
LIMITED_CHUNK_SIZE = 100  # under a window limit: what one chunk may add past the limit before it is counted
_MAX_WINDOWS: contextvars.ContextVar[tuple[int | None, int | None]] = contextvars.ContextVar(
    "max_windows", default=(None, None))  # (training, evaluation)
LIMIT_NAMES = ("QA_MAX_TRAIN_WINDOWS", "QA_MAX_EVAL_WINDOWS")  # the variables that set them on a public server


def window_limits(training: int | None, evaluation: int | None = None) -> AbstractContextManager[None]:
    """Within this block, featurize refuses (ValueError) training data that makes more than `training` windows,
    and evaluation data more than `evaluation` (None: any number): each question makes every window of its
    context, so questions sharing long contexts multiply a job's memory, and a job evaluates after every epoch."""
    return limits_within(_MAX_WINDOWS, (training, evaluation))


class Offsets(Sequence):
    """Each token's (start, end) characters in the context, or None outside it, packed in one int32 array.

    Reads like a tuple of tuples, which costs many times the memory (a Python object per number and per pair),
    held for every training window for the whole run (bench/README.md, "Training: ours vs. transformers' Trainer").
    """

    __slots__ = ("_packed",)

    def __init__(self, offsets: Iterable[tuple[int, int] | None] = ()) -> None:
        self._packed = array("i", chain.from_iterable(NO_SPAN if o is None else o for o in offsets))

    def __len__(self) -> int:
        return len(self._packed) // 2

    def __getitem__(self, index: int | slice) -> tuple[int, int] | None | tuple[tuple[int, int] | None, ...]:
        if isinstance(index, slice):
            return tuple(self)[index]
        start, end = self._packed[2 * index], self._packed[2 * index + 1]  # a negative index works too
        return None if start < 0 else (start, end)

    def as_array(self) -> np.ndarray:
        """The offsets as a read-only (tokens, 2) int32 view, NO_SPAN's negative starts where a token has none."""
        view = np.frombuffer(self._packed, dtype=np.int32).reshape(-1, 2)  # (tokens, 2)
        view.flags.writeable = False
        return view

    def __iter__(self) -> Iterator[tuple[int, int] | None]:
        packed = iter(self._packed)
        return (None if start < 0 else (start, end) for start, end in zip(packed, packed))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and tuple(self) == tuple(other)

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return f"Offsets({tuple(self)!r})"


@dataclass(frozen=True)
class Feature:
    """One window of question + part of the context; token sequences are stored packed (int32 arrays)."""

    example_index: int  # position of its example in the sequence given to build_features
    example_id: str
    input_ids: Sequence[int]
    token_type_ids: Sequence[int]
    offsets: Sequence[tuple[int, int] | None]  # span of each token in the context; None outside the context
    cls_index: int = CLS_INDEX  # position of the CLS (BOS) token: where the "no answer in this window" label points
    start_position: int = CLS_INDEX
    end_position: int = CLS_INDEX

    def __post_init__(self) -> None:  # callers may pass lists or tuples; replace() passes the packed ones back
        for name in ("input_ids", "token_type_ids"):
            if not isinstance(getattr(self, name), array):
                object.__setattr__(self, name, array("i", getattr(self, name)))
        if not isinstance(self.offsets, Offsets):
            object.__setattr__(self, "offsets", Offsets(self.offsets))


@dataclass(frozen=True)
class FeatureSet:
    features: tuple[Feature, ...]
    skipped_examples: int  # training only: no usable answer, or the answer fits in no window


def build_features(examples: Sequence[Example], tokenizer: PreTrainedTokenizerBase, max_seq_length: int,
                   doc_stride: int, max_query_length: int, training: bool,
                   version_2_with_negative: bool = False, clip_partial: bool = False) -> FeatureSet:
    """Tokenize every example once into overlapping windows; training windows get answer labels (and, with
    version_2_with_negative, unanswerable questions train every window toward CLS)."""
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"{type(tokenizer).__name__} is not a fast tokenizer; offsets need one")
    if not examples:
        return FeatureSet((), 0)
    # 3 special tokens for BERT, 4 for RoBERTa's <s> q </s></s> c </s>
    check_windows(max_seq_length, doc_stride, max_query_length, tokenizer.num_special_tokens_to_add(pair=True))
    questions = truncate_questions([e.question.lstrip() for e in examples], tokenizer, max_query_length)
    # token_type_ids always: whether the model gets them is the batch's business (BatchFormat), not the window's
    encoded = tokenizer(questions, [e.context for e in examples], truncation="only_second",
                        max_length=max_seq_length, stride=doc_stride, return_overflowing_tokens=True,
                        return_offsets_mapping=True, return_token_type_ids=True, padding=False, **AS_TEXT)
    cls_id = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    by_example: list[list[Feature]] = [[] for _ in examples]  # each example's features, in order
    for i, example_index in enumerate(encoded["overflow_to_sample_mapping"]):
        example = examples[example_index]
        input_ids, sequence_ids = array("i", encoded["input_ids"][i]), encoded.sequence_ids(i)
        cls_index = special_position(input_ids, sequence_ids, cls_id)
        by_example[example_index].append(Feature(
            example_index, example.example_id, input_ids, array("i", encoded["token_type_ids"][i]),
            context_offsets(example.context, encoded["offset_mapping"][i], sequence_ids),
            cls_index=cls_index, start_position=cls_index, end_position=cls_index))
    check_windows_reach_the_end(examples, by_example, tokenizer)
    if not training:
        return FeatureSet(tuple(f for group in by_example for f in group), 0)
    return _label_features(examples, by_example, version_2_with_negative, clip_partial)


def special_position(input_ids: array, sequence_ids: Sequence[int | None], token_id: int | None) -> int:
    """Where the tokenizer put this special token (first for BERT, last for XLNet); text that spells it inside the
    question or context is not it. CLS_INDEX for a tokenizer without one."""
    position = -1
    while token_id is not None:
        try:
            position = input_ids.index(token_id, position + 1)
        except ValueError:
            break
        if sequence_ids[position] is None:
            return position
    return CLS_INDEX


def context_offsets(context: str, offset_mapping: Sequence[tuple[int, int]],
                    sequence_ids: Sequence[int | None]) -> tuple[tuple[int, int] | None, ...]:
    """The tokenizer's offset_mapping as offsets: each context token's characters without surrounding
    whitespace or format characters (invisible); None outside the context and for tokens that cover no visible
    character, which can neither start nor end an answer.

    Metaspace tokenizers without a whitespace pre-split (DeBERTa-v2/v3) count the space before a word into its
    '▁word' token, and a lone '▁' or byte-level 'Ġ' token covers only a space (or nothing, once trimmed).
    """
    offsets: list[tuple[int, int] | None] = []
    for (start, end), sequence_id in zip(offset_mapping, sequence_ids):
        if sequence_id != 1:
            offsets.append(None)
            continue
        # Python's nonprintable characters are the separators and "other" categories (all but ASCII space):
        # whitespace, and format characters such as a zero-width space or a byte order mark, which draw nothing
        while start < end and (context[start] == " " or not context[start].isprintable()):
            start += 1
        while end > start and (context[end - 1] == " " or not context[end - 1].isprintable()):
            end -= 1
        offsets.append((start, end) if start < end else None)
    return tuple(offsets)


def check_windows_reach_the_end(examples: Sequence[Example], by_example: list[list[Feature]],
                                tokenizer: PreTrainedTokenizerBase) -> None:
    """Refuse windows that stop before the end of their context instead of silently losing its last part:
    tokenizers 0.23.1 and 0.23.2 cut the last overflowing window short (huggingface/tokenizers#2091)."""
    for example, group in zip(examples, by_example):
        end = max((next((o[1] for o in reversed(f.offsets) if o), 0) for f in group), default=0)  # any window order
        tail = example.context[end:]
        if tail.strip() and tokenizer(tail, add_special_tokens=False, **AS_TEXT)["input_ids"]:  # not just dropped characters
            raise ValueError(f"example {example.example_id!r}: the tokenizer's windows end at character {end} of "
                             f"{len(example.context)}, so the rest of the context would be lost (tokenizers 0.23.1 "
                             f"and 0.23.2 cut windows short; installed: {importlib.metadata.version('tokenizers')}; "
                             f"requirements.txt pins tokenizers==0.23.3)")


def featurize(examples: Sequence[Example], tokenizer: PreTrainedTokenizerBase, config: QAConfig,
              training: bool) -> FeatureSet:
    """build_features with the window settings of a config, CHUNK_SIZE examples at a time: the tokenizer's output
    for all of a large data set at once (Python lists of every token id and offset) would outweigh the windows."""
    limit = _MAX_WINDOWS.get()[0 if training else 1]
    chunks, windows = [], 0
    chunk_size = CHUNK_SIZE if limit is None else LIMITED_CHUNK_SIZE
    for index, chunk in enumerate(featurize_in_chunks(examples, tokenizer, config, training, chunk_size)):
        windows += len(chunk.features)
        if limit is not None and windows > limit:
            raise over_window_limit(training, limit, windows, min((index + 1) * chunk_size, len(examples)),
                                    len(examples))
        chunks.append(chunk)
    skipped = sum(c.skipped_examples for c in chunks)
    if skipped:
        unanswerable = 0 if config.version_2_with_negative else sum(not e.answers for e in examples)
        hint = (f"; {unanswerable} of them have no answer: SQuAD 2.0 data trains on them with "
                f"version_2_with_negative") if unanswerable else ""
        logger.info("training: skipped %d of %d examples (no locatable answer, or answer longer than a window)%s",
                    skipped, len(examples), hint)
    return FeatureSet(tuple(chain.from_iterable(c.features for c in chunks)), skipped)


def over_window_limit(training: bool, limit: int, windows: int, counted: int, questions: int) -> ValueError:
    """The refusal of data over a window limit, with the windows its first `counted` questions made: cutting stops
    there, so of more questions it says how many were counted."""
    what, variable = ("training", LIMIT_NAMES[0]) if training else ("evaluation", LIMIT_NAMES[1])
    which = f"{questions:,} questions" if counted == questions else f"the first {counted:,} of {questions:,} questions"
    return ValueError(f"{what} data: {which} make {windows:,} windows; this server cuts at most {limit:,} windows "
                      f"from each {what} data source ({variable}): use fewer questions "
                      f"(max_{'train' if training else 'eval'}_samples) or shorter contexts")


def featurize_in_chunks(examples: Sequence[Example], tokenizer: PreTrainedTokenizerBase, config: QAConfig,
                        training: bool, chunk_size: int = CHUNK_SIZE) -> Iterator[FeatureSet]:
    """featurize over consecutive chunks of examples, so a caller that consumes (or packs) one chunk's windows at
    a time holds a bounded number of them, whatever the data size; example_index stays the position in examples."""
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be > 0, got {chunk_size}")
    for begin in range(0, len(examples), chunk_size):
        chunk = build_features(examples[begin:begin + chunk_size], tokenizer, config.max_seq_length,
                               config.doc_stride, config.max_query_length, training, config.version_2_with_negative,
                               config.partial_answer_labels == "clip")
        if begin:
            chunk = FeatureSet(tuple(dataclasses.replace(f, example_index=f.example_index + begin)
                                     for f in chunk.features), chunk.skipped_examples)
        yield chunk


def truncate_questions(questions: list[str], tokenizer: PreTrainedTokenizerBase, max_query_length: int) -> list[str]:
    """Cut questions to at most max_query_length tokens, so only the context is split into windows."""
    # A token covers a byte or more (byte-level BPE: 4 for some characters), bar one leading word marker (Ask hot path)
    long = [i for i, q in enumerate(questions) if len(q.encode("utf-8")) + 1 > max_query_length]
    cut = list(questions)
    while long:  # each pass shortens every question it cuts by a character at least, so this ends
        spans = tokenizer([cut[i] for i in long], add_special_tokens=False, return_offsets_mapping=True, **AS_TEXT)
        over = [(i, offsets) for i, offsets in zip(long, spans["offset_mapping"]) if len(offsets) > max_query_length]
        for i, offsets in over:
            # at the start of the first token past the limit: a token may share characters with the one before it
            # (a lone '▁' its word's first; the byte pieces of 'é'), which a cut after the last allowed token keeps;
            # a trailing space would be a token of its own (byte-level BPE's 'Ġ'), so it goes too
            cut[i] = cut[i][:min(offsets[max_query_length][0], len(cut[i]) - 1)].rstrip()
        long = [i for i, _ in over]
    return cut


def _label_features(examples: Sequence[Example], by_example: list[list[Feature]],
                    version_2_with_negative: bool = False, clip_partial: bool = False) -> FeatureSet:
    """Answer labels; an unanswerable question (no gold answers) keeps its windows, all pointing at CLS, only
    with version_2_with_negative; otherwise, as any question without a usable answer, it is skipped."""
    labelled: list[Feature] = []
    skipped = 0
    for example, group in zip(examples, by_example):
        if version_2_with_negative and not example.answers:
            labelled.extend(dataclasses.replace(f, start_position=f.cls_index, end_position=f.cls_index)
                            for f in group)
            continue
        answer = next((a for a in example.answers if a.start is not None), None)
        if answer is None:
            skipped += 1
            continue
        span = (answer.start, answer.start + len(answer.text))
        group = [label_window(f, span, clip_partial) for f in group]
        if all(f.start_position == f.cls_index for f in group):
            skipped += 1  # the answer is longer than the context room of a window
            continue
        labelled.extend(group)
    return FeatureSet(tuple(labelled), skipped)


def label_window(feature: Feature, span: tuple[int, int], clip_partial: bool = False) -> Feature:
    """Token labels of the answer's character span; unchanged (at its CLS) when the window does not hold all of
    it, unless clip_partial, which labels the part of the answer the window holds."""
    tokens = [(i, o) for i, o in enumerate(feature.offsets) if o is not None]
    if not tokens:
        return feature
    first, last = tokens[0][1][0], tokens[-1][1][1]
    holds_all = first <= span[0] and span[1] <= last
    if not (holds_all or (clip_partial and span[0] < last and first < span[1])):
        return feature
    span = (max(span[0], first), min(span[1], last))
    start = next(i for i, (s, e) in tokens if e > span[0])
    end = next(i for i, (s, e) in reversed(tokens) if s < span[1])
    if start > end:  # the span falls between two tokens: characters no token covers
        return feature
    return dataclasses.replace(feature, start_position=start, end_position=end)
