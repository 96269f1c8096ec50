"""Load SQuAD-format question answering data into typed examples, with clear errors for bad records."""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

SAMPLE_PATH = Path(__file__).parent / "sample" / "sample-squad.json"


class DataError(ValueError):
    """A data file or record that cannot be used; the message names the file and the record."""


class LoadingCancelled(DataError):
    """Raised between records when the loading thread's stop check (see stop_loading_when) says stop."""


# Per thread of work, not per process: the web app's training job sets these around its training call, so
# every load_examples inside it (made by train_setup.py) refuses oversized files and stops when cancelled.
_MAX_FILE_BYTES: contextvars.ContextVar[int | None] = contextvars.ContextVar("max_file_bytes", default=None)
_SHOULD_STOP: contextvars.ContextVar[Callable[[], bool] | None] = contextvars.ContextVar("should_stop", default=None)
STOP_CHECK_EVERY = 1000  # records between two stop checks


@contextlib.contextmanager
def loading_limits(max_file_bytes: int | None = None,
                   should_stop: Callable[[], bool] | None = None) -> Iterator[None]:
    """Within this block, data files over max_file_bytes are refused before they are read, and loading stops
    with LoadingCancelled once should_stop() is true."""
    tokens = _MAX_FILE_BYTES.set(max_file_bytes), _SHOULD_STOP.set(should_stop)
    try:
        yield
    finally:
        _MAX_FILE_BYTES.reset(tokens[0])
        _SHOULD_STOP.reset(tokens[1])


def _check_stop(origin: str) -> None:
    should_stop = _SHOULD_STOP.get()
    if should_stop is not None and should_stop():
        raise LoadingCancelled(f"{origin}: loading cancelled")


def check_file_size(path: Path, max_bytes: int | None) -> None:
    """Refuse a file over max_bytes before reading a byte of it."""
    size = path.stat().st_size
    if max_bytes is not None and size > max_bytes:
        raise DataError(f"{path.name}: {size / 1e6:,.3g} MB is over this server's limit of "
                        f"{max_bytes / 1e6:,.3g} MB for data files")


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


@dataclass(frozen=True)
class LoadResult:
    examples: tuple[Example, ...]
    report: LoadReport


def load_examples(source: str, split: str = "train", limit: int | None = None,
                  answers_required: bool = True) -> LoadResult:
    """Read examples from 'sample', a SQuAD/flat JSON or JSONL file, or a hub data set ('name' or 'name:split').
    answers_required=False: questions without an 'answers' field load with none (questions to predict)."""
    if source == "sample":
        source = str(SAMPLE_PATH)
    path = Path(source)
    if path.exists():
        return _build(_read_file(path), str(path), limit, answers_required)
    if looks_like_a_path(source):
        raise DataError(f"{source}: no such data file")
    return _build(_read_hub(source, split), source, limit, answers_required)


def looks_like_a_path(source: str) -> bool:
    """A file name or a path into an existing folder; anything else may be a hub name like 'rajpurkar/squad'."""
    path = Path(source)
    return path.suffix in {".json", ".jsonl"} or source.startswith((".", "/", "~")) or (
        path.parent != Path(".") and path.parent.exists())


def _build(records: Iterable[tuple[str, dict[str, Any]]], origin: str, limit: int | None,
           answers_required: bool = True) -> LoadResult:
    examples: list[Example] = []
    seen: dict[str, str] = {}
    counts = {"repaired": 0, "unlocated": 0, "unanswerable": 0}
    for n, (where, record) in enumerate(records):
        if limit is not None and len(examples) >= limit:
            break
        if n % STOP_CHECK_EVERY == 0:
            _check_stop(origin)
        example = _parse_record(record, f"{origin}: {where}", counts, answers_required)
        if example.example_id in seen:
            raise DataError(f"{origin}: question id {example.example_id!r} appears twice "
                            f"({seen[example.example_id]} and {where})")
        seen[example.example_id] = where
        examples.append(example)
    if not examples:
        raise DataError(f"{origin}: contains no questions")
    report = LoadReport(origin, len(examples), counts["repaired"], counts["unlocated"], counts["unanswerable"])
    logger.info("loaded %s", report)
    return LoadResult(tuple(examples), report)


def _read_file(path: Path) -> list[tuple[str, dict[str, Any]]]:
    try:
        check_file_size(path, _MAX_FILE_BYTES.get())
        _check_stop(str(path))
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text (bad byte at offset {err.start})") from None
    except OSError as err:
        raise DataError(f"{path}: cannot be read ({err.strerror})") from None
    if path.suffix == ".jsonl":
        return _read_lines(text, path)
    return list(_iter_records(_loads(text, path, "file"), path))


def _read_lines(text: str, path: Path) -> list[tuple[str, dict[str, Any]]]:
    """JSON Lines: one record, an object, a line. One JSON document under a .jsonl name is named as such, not as
    a bad first line or a record missing every field; .json is advised only for what a .json file may hold."""
    with contextlib.suppress(json.JSONDecodeError):
        whole = json.loads(text)
        if isinstance(whole, list) or (isinstance(whole, dict) and "data" in whole):
            raise DataError(f"{path}: holds one JSON document, not JSON Lines; name it .json")
        if isinstance(whole, dict) and len(text.strip().splitlines()) > 1:
            raise DataError(f"{path}: holds one record over several lines; JSON Lines need each record on one line")
    records = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        record = _loads(line, path, f"line {n}")
        if not isinstance(record, dict):
            raise DataError(f"{path}: line {n} is a {type(record).__name__}, expected an object (one record a line)")
        records.append((f"line {n}", record))
    return records


def _loads(text: str, path: Path, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        # a .json file holding JSON Lines fails after its first record
        hint = "; JSON Lines (one record a line) need a .jsonl name" if where == "file" and \
            err.msg == "Extra data" else ""
        raise DataError(f"{path}: {where} is not valid JSON ({err.msg}, line {err.lineno} column {err.colno})"
                        f"{hint}") from None


def _iter_records(data: Any, path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Flatten the SQuAD layout (data -> paragraphs -> qas) or pass flat records through."""
    items = data.get("data") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise DataError(f"{path}: expected SQuAD JSON ({{'data': [...]}}) or a list of records, "
                        f"got {type(data).__name__} without a 'data' list")
    for i, item in enumerate(items):
        if isinstance(item, dict) and "paragraphs" in item:
            yield from _iter_article(item, f"data[{i}]", path)
        elif isinstance(item, dict):
            yield f"record {i}", item
        else:
            raise DataError(f"{path}: data[{i}] is a {type(item).__name__}, expected an object")


def _iter_article(article: dict[str, Any], where: str, path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    paragraphs = article["paragraphs"]
    if not isinstance(paragraphs, list):
        raise DataError(f"{path}: {where}.paragraphs must be a list")
    for p, paragraph in enumerate(paragraphs):
        if not isinstance(paragraph, dict) or not isinstance(paragraph.get("qas"), list):
            raise DataError(f"{path}: {where}.paragraphs[{p}] needs 'context' and a 'qas' list")
        for q, qa in enumerate(paragraph["qas"]):
            if not isinstance(qa, dict):
                raise DataError(f"{path}: {where}.paragraphs[{p}].qas[{q}] must be an object")
            record = {**qa, "context": paragraph.get("context"), "title": article.get("title", "")}
            yield f"{where}.paragraphs[{p}].qas[{q}]", record


def _read_hub(name: str, default_split: str) -> Iterator[tuple[str, dict[str, Any]]]:
    dataset_name, _, split = name.partition(":")
    try:
        import datasets
    except ImportError:
        raise DataError(f"{name}: not a local file, and loading hub data sets needs `pip install datasets`") from None
    try:
        rows = datasets.load_dataset(dataset_name, split=split or default_split)
    except Exception as err:  # the hub client raises many types; all mean "could not get it"
        raise DataError(f"{name}: not a local file, and the hub data set could not be loaded ({err})") from None
    return ((f"row {i}", row) for i, row in enumerate(rows))


def _parse_record(record: dict[str, Any], where: str, counts: dict[str, int], answers_required: bool = True) -> Example:
    example_id = _id_field(record, where)
    where = f"{where} (id {example_id!r})"
    question, context = _text_field(record, "question", where), _text_field(record, "context", where)
    title = record.get("title") or ""
    # SQuAD 2.0 marks unanswerable questions with is_impossible; its hub copy (rajpurkar/squad_v2) only leaves their
    # answer lists empty, which the official v2.0 script also reads as "no answer".
    impossible = record.get("is_impossible")
    if impossible is None:  # absent (v1.1, flat records) or null
        impossible = False
    if not isinstance(impossible, bool):  # the string "false" is truthy: it would make the question unanswerable
        raise DataError(f"{where}: field 'is_impossible' must be true or false, got {impossible!r}")
    if not answers_required and record.get("answers") is None and not impossible:  # a question yet to be answered
        return Example(str(example_id), question, context, (), str(title))
    pairs = [] if impossible else _answer_pairs(record, where)
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


def _text_field(record: dict[str, Any], name: str, where: str) -> str:
    value = record.get(name)
    if value is None:
        raise DataError(f"{where}: missing field {name!r}")
    if not isinstance(value, str):
        raise DataError(f"{where}: field {name!r} must be text, got {type(value).__name__}")
    if not value.strip():
        raise DataError(f"{where}: field {name!r} is empty")
    return value


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


def fingerprint(examples: Iterable[Example]) -> str:
    """A short hash of the examples' content, to tell whether a run saw the same data."""
    digest = hashlib.sha256()
    for e in examples:
        digest.update(json.dumps([e.example_id, e.question, e.context, [a.text for a in e.answers]]).encode())
    return digest.hexdigest()[:16]
