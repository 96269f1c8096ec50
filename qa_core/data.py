"""Parse the rows data_sources.py reads into typed examples, with clear errors for bad rows."""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from qa_core.data_sources import DataError, check_unicode, question_field, read_rows, text_field

logger = logging.getLogger(__name__)
QUESTIONS_NAMED = 5  # questions a warning about the data names (answer not in context, ...); the rest are counted


@dataclass(frozen=True)
class Answer:
    text: str
    start: int | None  # character offset into the context; None when the text is nowhere in it


@dataclass(frozen=True)
class Example:
    """One question about one context, with its gold answers (empty for unanswerable questions)."""

    example_id: str
    question: str
    context: str
    answers: tuple[Answer, ...]
    title: str = ""


@dataclass(frozen=True)
class LoadReport:
    source: str
    examples: int
    repaired_answers: int  # answer_start moved to the nearest occurrence of the answer text
    unlocated_answers: int  # answer text not in the context: kept for scoring, unusable for training
    unanswerable: int  # SQuAD v2.0 questions without an answer, kept with no gold answers
    impossible_disagreed: int = 0  # questions whose is_impossible disagrees with their answers (the answers decide)


@dataclass(frozen=True)
class LoadResult:
    examples: tuple[Example, ...]
    report: LoadReport


def load_examples(source: str, split: str = "train", limit: int | None = None,
                  answers_required: bool = True) -> LoadResult:
    """Read examples from 'sample', a SQuAD/flat JSON or JSONL file, or a hub data set ('name' or 'name:split').
    answers_required=False: questions without an 'answers' field load with none (questions to predict)."""
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0 or None (all), got {limit}")
    origin, rows = read_rows(source, split)
    examples: list[Example] = []
    seen: dict[str, str] = {}
    counts = {"repaired": 0, "unlocated": 0, "unanswerable": 0}
    disagreed: list[str] = []
    for where, row in itertools.islice(rows, limit):
        example = _parse_row(row, f"{origin}: {where}", counts, disagreed, answers_required)
        if example.example_id in seen:
            raise DataError(f"{origin}: question id {example.example_id!r} appears twice "
                            f"({seen[example.example_id]} and {where})")
        seen[example.example_id] = where
        examples.append(example)
    if not examples:
        raise DataError(f"{origin}: contains no questions")
    report = LoadReport(origin, len(examples), counts["repaired"], counts["unlocated"], counts["unanswerable"],
                        len(disagreed))
    logger.info("loaded %s", report)
    _name_unlocated(origin, [e.example_id for e in examples if any(a.start is None for a in e.answers)])
    _name_disagreed(origin, disagreed)
    return LoadResult(tuple(examples), report)


def _first_named(ids: list[str]) -> str:
    """The first QUESTIONS_NAMED ids, then how many more there are."""
    more = f" and {len(ids) - QUESTIONS_NAMED} more" if len(ids) > QUESTIONS_NAMED else ""
    return ", ".join(repr(i) for i in ids[:QUESTIONS_NAMED]) + more


def _name_unlocated(origin: str, ids: list[str]) -> None:
    """Name the first questions whose answer text is not in their context, so they can be found and fixed."""
    if not ids:
        return
    which = "1 question has an answer whose text is nowhere in its" if len(ids) == 1 else \
        f"{len(ids)} questions have an answer whose text is nowhere in their"
    logger.warning("%s: %s context (kept for scoring, not trained on): %s", origin, which, _first_named(ids))


def _name_disagreed(origin: str, ids: list[str]) -> None:
    """Name the first questions whose is_impossible disagrees with their answers: the data contradicts itself."""
    if not ids:
        return
    which = "1 question has an is_impossible that disagrees with its" if len(ids) == 1 else \
        f"{len(ids)} questions have an is_impossible that disagrees with their"
    logger.warning("%s: %s answers; the answers decide, as in evaluate-v2.0.py (answerable when an answer is "
                   "listed): %s", origin, which, _first_named(ids))


def _parse_row(record: dict[str, Any], where: str, counts: dict[str, int], disagreed: list[str],
               answers_required: bool = True) -> Example:
    example_id = _id_field(record, where)
    where = f"{where} (id {example_id!r})"
    question, context = question_field(record, where), text_field(record, "context", where)
    title = record.get("title") or ""
    check_unicode(str(title), f"{where}: field 'title'", DataError)
    # SQuAD 2.0 marks unanswerable questions with is_impossible; its hub copy (rajpurkar/squad_v2) only leaves their
    # answer lists empty. The official v2.0 script reads answerability from the answers alone, so they decide here
    # too (scores equal its own); a mark that disagrees with them is counted and named.
    impossible = record.get("is_impossible")
    if impossible is not None and not isinstance(impossible, bool):  # the string "false" is truthy
        raise DataError(f"{where}: field 'is_impossible' must be true or false, got {impossible!r}")
    if record.get("answers") is None and (impossible or not answers_required):  # none to read: no answer / to predict
        if impossible:
            counts["unanswerable"] += 1
        return Example(str(example_id), question, context, (), str(title))
    pairs = _answer_pairs(record, where)
    if impossible is not None and impossible == bool(pairs):
        disagreed.append(str(example_id))
    if not pairs:
        counts["unanswerable"] += 1
        return Example(str(example_id), question, context, (), str(title))
    answers = tuple(_locate(context, text, start, where, counts) for text, start in pairs)
    return Example(str(example_id), question, context, answers, str(title))


def _id_field(record: dict[str, Any], where: str) -> str | int:
    example_id = record.get("id")
    if example_id is None or example_id == "":
        raise DataError(f"{where}: missing field 'id'")
    if isinstance(example_id, bool) or not isinstance(example_id, (str, int)):
        raise DataError(f"{where}: field 'id' must be text or an integer, got {type(example_id).__name__} "
                        f"{json.dumps(example_id)}")
    return example_id


def _answer_pairs(record: dict[str, Any], where: str) -> list[tuple[Any, Any]]:
    answers = record.get("answers")
    if isinstance(answers, dict):  # flat layout of Hugging Face datasets: {"text": [...], "answer_start": [...]}
        texts, starts = answers.get("text"), answers.get("answer_start")
        if not isinstance(texts, list) or not isinstance(starts, list) or len(texts) != len(starts):
            raise DataError(f"{where}: 'answers' needs lists 'text' and 'answer_start' of equal length")
        return list(zip(texts, starts))
    if isinstance(answers, list):
        if not all(isinstance(a, dict) for a in answers):
            raise DataError(f"{where}: each answer must be an object with 'text' and 'answer_start'")
        for n, answer in enumerate(answers):
            if "answer_start" not in answer:
                raise DataError(f"{where}: answer {n} ({answer.get('text')!r}): missing field 'answer_start'")
        return [(a.get("text"), a["answer_start"]) for a in answers]
    if answers is None:
        raise DataError(f"{where}: missing field 'answers'")
    raise DataError(f"{where}: field 'answers' must be a list of answers, or {{'text': [...], 'answer_start': "
                    f"[...]}}, got {type(answers).__name__}")


def _locate(context: str, text: Any, start: Any, where: str, counts: dict[str, int]) -> Answer:
    """Check one gold answer; when its text is not at answer_start, move it to the nearest occurrence."""
    if not isinstance(text, str) or not text.strip():
        raise DataError(f"{where}: answer 'text' must be non-empty text, got {text!r}")
    check_unicode(text, f"{where}: answer {text!r}", DataError)
    if isinstance(start, bool) or not isinstance(start, int):
        raise DataError(f"{where}: answer_start must be an integer, got {start!r}")
    if not 0 <= start < len(context):
        raise DataError(f"{where}: answer_start {start} is outside the context (length {len(context)})")
    if context.startswith(text, start):
        return Answer(text, start)
    nearest = _nearest_occurrence(context, text, start)
    if nearest is None:
        counts["unlocated"] += 1
        return Answer(text, None)
    counts["repaired"] += 1
    return Answer(text, nearest)


def _nearest_occurrence(context: str, text: str, start: int) -> int | None:
    found, position = [], context.find(text)
    while position != -1:
        found.append(position)
        position = context.find(text, position + 1)
    return min(found, key=lambda p: abs(p - start), default=None)


def gold_texts(examples: Iterable[Example]) -> dict[str, list[str]]:
    """{example_id: its gold answers' texts}, as the official scripts take them (an empty list: unanswerable)."""
    return {e.example_id: [a.text for a in e.answers] for e in examples}


def fingerprint(examples: Iterable[Example]) -> str:
    """A short hash of the examples' content, to tell whether a run saw the same data."""
    digest = hashlib.sha256()
    for e in examples:
        digest.update(json.dumps([e.example_id, e.question, e.context, [a.text for a in e.answers]]).encode())
    return digest.hexdigest()[:16]
