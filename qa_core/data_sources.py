"""Read a data source (the sample, SQuAD or flat JSON, JSON Lines, a hub data set) into named raw rows."""

from __future__ import annotations

import contextvars
import json
import sys
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qa_core.settings import limits_within

SAMPLE_PATH = Path(__file__).parent / "sample" / "sample-squad.json"

Rows = Iterator[tuple[str, dict[str, Any]]]  # (where the row is, the row: one question as the source holds it)


class DataError(ValueError):
    """A data file or record that cannot be used; the message names the file and the record."""


class LoadingCancelled(DataError):
    """Raised between records when the loading thread's stop check (see loading_limits) says stop."""


# (max_file_bytes, should_stop): the web app's training job sets them around its training call (loading_limits)
_LOADING_LIMITS: contextvars.ContextVar[tuple[int | None, Callable[[], bool] | None]] = contextvars.ContextVar(
    "loading_limits", default=(None, None))
STOP_CHECK_EVERY = 1000  # records between two stop checks


def loading_limits(max_file_bytes: int | None = None,
                   should_stop: Callable[[], bool] | None = None) -> AbstractContextManager[None]:
    """Within this block, data files over max_file_bytes are refused before they are read, and loading stops
    with LoadingCancelled once should_stop() is true: every load_examples inside it (train_setup's) does."""
    return limits_within(_LOADING_LIMITS, (max_file_bytes, should_stop))


def _check_stop(origin: str) -> None:
    should_stop = _LOADING_LIMITS.get()[1]
    if should_stop is not None and should_stop():
        raise LoadingCancelled(f"{origin}: loading cancelled")


def check_file_size(path: Path, max_bytes: int | None) -> None:
    """Refuse a file over max_bytes before reading a byte of it."""
    size = path.stat().st_size
    if max_bytes is not None and size > max_bytes:
        raise DataError(f"{path.name}: {size / 1e6:,.3g} MB is over this server's limit of "
                        f"{max_bytes / 1e6:,.3g} MB for data files")


def read_rows(source: str, split: str = "train") -> tuple[str, Rows]:
    """The name to report the source by, and its rows: 'sample', a SQuAD/flat JSON or JSONL file, or a hub data
    set ('name' or 'name:split'). Rows come with stop checks between them, within loading_limits."""
    source = local_name(source)
    path = Path(source)
    if path.exists():
        return str(path), _stopping(_read_file(path), str(path))
    if looks_like_a_path(source):
        raise DataError(f"{source}: no such data file")
    return source, _stopping(_read_hub(source, split), source)


def local_name(source: str) -> str:
    """'sample' as the bundled file's path; any other source as given."""
    return str(SAMPLE_PATH) if source == "sample" else source


def looks_like_a_path(source: str) -> bool:
    """A file name or a path into an existing folder; anything else may be a hub name like 'rajpurkar/squad'."""
    path = Path(source)
    return path.suffix.lower() in {".json", ".jsonl"} or source.startswith((".", "/", "~")) or (
        path.parent != Path(".") and path.parent.exists())


def _stopping(rows: Iterable[tuple[str, dict[str, Any]]], origin: str) -> Rows:
    for n, row in enumerate(rows):
        if n % STOP_CHECK_EVERY == 0:
            _check_stop(origin)
        yield row


def _read_file(path: Path) -> list[tuple[str, dict[str, Any]]]:
    if not path.is_file():  # a device's size says 0 and it never ends; a pipe waits for a writer
        raise DataError(f"{path}: not a regular file (a {file_kind(path)})")
    try:
        check_file_size(path, _LOADING_LIMITS.get()[0])
        _check_stop(str(path))
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text (bad byte at offset {err.start})") from None
    except OSError as err:
        raise DataError(f"{path}: cannot be read ({err.strerror})") from None
    if not text.strip():  # else 'not valid JSON (Expecting value, line 2 ...)' for an empty buffer saved
        raise DataError(f"{path}: the file is empty")
    if path.suffix.lower() == ".jsonl":
        return _read_lines(text, path)
    return list(_iter_rows(_loads(text, path, "file"), path))


def _read_lines(text: str, path: Path) -> list[tuple[str, dict[str, Any]]]:
    """JSON Lines: one record, an object, a line. One JSON document under a .jsonl name is named as such, not as
    a bad first line or a record missing every field; .json is advised only for what a .json file may hold."""
    whole = _one_document(text)
    if isinstance(whole, list) or (isinstance(whole, dict) and "data" in whole):
        raise DataError(f"{path}: holds one JSON document, not JSON Lines; name it .json")
    lines = json_lines(text)
    if isinstance(whole, dict) and sum(bool(line.strip()) for line in lines) > 1:
        raise DataError(f"{path}: holds one record over several lines; JSON Lines need each record on one line")
    records = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        record = _loads(line, path, f"line {n}")
        if not isinstance(record, dict):
            raise DataError(f"{path}: line {n} is a {type(record).__name__}, expected an object (one record a line)")
        records.append((f"line {n}", record))
    return records


def json_lines(text: str) -> list[str]:
    """The lines of a JSON Lines text: cut at line feeds only (a '\\r' before one dropped), since JSON strings may
    hold U+2028, U+2029 and U+0085 unescaped, where str.splitlines would cut a record."""
    return [line.removesuffix("\r") for line in text.split("\n")]


def file_kind(path: Path) -> str:
    """What a path that is no regular file is, for a refusal."""
    if path.is_dir():
        return "folder"
    if path.is_fifo():
        return "named pipe"
    return "socket" if path.is_socket() else "device"


def read_json(text: str, path: Path, where: str) -> Any:
    """The JSON text of `path` (`where` in it: "file", "line 3"); DataError naming it where it nests too deeply or
    holds a number too long for int(). A json.JSONDecodeError is left to the caller to word."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise
    except RecursionError:  # the reader recurses once per list or object it is inside
        raise _too_deep(path, where) from None
    except ValueError:  # the one other: an integer of more digits than int() reads (sys.get_int_max_str_digits)
        raise _long_number(text, path, where) from None


def _loads(text: str, path: Path, where: str) -> Any:
    try:
        return read_json(text, path, where)
    except json.JSONDecodeError as err:
        # a .json file holding JSON Lines fails after its first record
        hint = "; JSON Lines (one record a line) need a .jsonl name" if where == "file" and \
            err.msg == "Extra data" else ""
        raise DataError(f"{path}: {where} is not valid JSON ({err.msg}, line {err.lineno} column {err.colno})"
                        f"{hint}") from None


def _one_document(text: str) -> Any:
    """A .jsonl file's text as one JSON document, or None where it is none: its lines are then read one by one,
    and each named where it cannot be."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def _too_deep(path: Path, where: str) -> DataError:
    return DataError(f"{path}: {where} nests lists or objects too deeply to be read")


@dataclass(frozen=True)
class _LongNumber:
    """An integer of a JSON text too long for int(): its digits counted, so that where it is can be named."""

    digits: int

    @staticmethod
    def read(digits: str) -> int | _LongNumber:
        try:
            return int(digits)
        except ValueError:
            return _LongNumber(len(digits.lstrip("-")))


def _long_number(text: str, path: Path, where: str) -> DataError:
    """The first integer of `text` too long for int(), named by its record (and question id) and field, as data.py
    names a bad record's field; `where`: what `text` is ("file", "line 3")."""
    try:
        document = json.loads(text, parse_int=_LongNumber.read)
    except RecursionError:  # deeper on than the number
        return _too_deep(path, where)
    stack: list[tuple[str, str, Any]] = [("" if where == "file" else where, "", document)]
    while stack:  # depth first, in the file's order; no recursion: the document may nest nearly as deep as it can
        record, field, value = stack.pop()
        if isinstance(value, _LongNumber):
            # the whole text may be the number: then it is named as what the text is
            named = ": ".join(part for part in (str(path), record, field) if part) if record or field else \
                f"{path}: {where}"
            return DataError(f"{named} is a number of {value.digits:,} digits; data files may hold numbers of up "
                             f"to {sys.get_int_max_str_digits():,} digits")
        stack.extend(reversed(_children(record, field, value)))
    return DataError(f"{path}: {where} holds a number too long to read")


def _children(record: str, field: str, value: Any) -> list[tuple[str, str, Any]]:
    """A JSON value's items as (record, field under it, item): a question (an object with an id) is a record,
    named by where it is and its id, and so is each item of a top-level list, as _iter_rows names them."""
    question = value.get("id") if isinstance(value, dict) else None
    if isinstance(question, (str, int)) and not isinstance(question, bool):
        record, field = f"{': '.join(part for part in (record, field) if part) or 'record'} (id {question!r})", ""
    if isinstance(value, dict):
        return [(record, f"{field}.{key}" if field else key, item) for key, item in value.items()]
    if isinstance(value, list) and not record and not field:
        return [(f"record {n}", "", item) for n, item in enumerate(value)]
    if isinstance(value, list):
        return [(record, f"{field}[{n}]", item) for n, item in enumerate(value)]
    return []


# A flat question record's fields: an object under 'data' with none of them is a SQuAD article, even without its
# 'paragraphs'.
RECORD_FIELDS = frozenset({"id", "question", "context", "answers"})


def _iter_rows(data: Any, path: Path) -> Rows:
    """Flatten the SQuAD layout (data -> paragraphs -> qas) or pass flat rows through."""
    items = data.get("data") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise DataError(f"{path}: expected SQuAD JSON ({{'data': [...]}}) or a list of records, "
                        f"got {type(data).__name__} without a 'data' list")
    for i, item in enumerate(items):
        if isinstance(item, dict) and ("paragraphs" in item or not RECORD_FIELDS & item.keys()):
            yield from _iter_article(item, f"data[{i}]", path)
        elif isinstance(item, dict):
            yield f"record {i}", item
        else:
            raise DataError(f"{path}: data[{i}] is a {type(item).__name__}, expected an object")


def _iter_article(article: dict[str, Any], where: str, path: Path) -> Rows:
    if "paragraphs" not in article:  # its key misspelled ("paragraph"), say: named as what it is, an article
        fields = ", ".join(repr(key) for key in article) or "no field"
        raise DataError(f"{path}: {where}: missing field 'paragraphs' (an article of SQuAD JSON; it has {fields})")
    paragraphs = article["paragraphs"]
    if not isinstance(paragraphs, list):
        raise DataError(f"{path}: {where}.paragraphs must be a list")
    for p, paragraph in enumerate(paragraphs):
        if not isinstance(paragraph, dict) or not isinstance(paragraph.get("qas"), list):
            raise DataError(f"{path}: {where}.paragraphs[{p}] needs 'context' and a 'qas' list")
        if paragraph["qas"]:  # checked here, where it is: the field belongs to the paragraph, not to a question
            text_field(paragraph, "context", f"{path}: {where}.paragraphs[{p}]")
        for q, qa in enumerate(paragraph["qas"]):
            if not isinstance(qa, dict):
                raise DataError(f"{path}: {where}.paragraphs[{p}].qas[{q}] must be an object")
            record = {**qa, "context": paragraph.get("context"), "title": article.get("title", "")}
            yield f"{where}.paragraphs[{p}].qas[{q}]", record


def text_field(record: dict[str, Any], name: str, where: str) -> str:
    """A record's field that must hold some text, refused naming `where` it is missing, not text, or blank."""
    value = record.get(name)
    if value is None:
        raise DataError(f"{where}: missing field {name!r}")
    if not isinstance(value, str):
        raise DataError(f"{where}: field {name!r} must be text, got {type(value).__name__}")
    if not value.strip():
        raise DataError(f"{where}: field {name!r} is empty")
    check_unicode(value, f"{where}: field {name!r}", DataError)
    return value


def question_field(record: dict[str, Any], where: str) -> str:
    """A record's question, refused as text_field refuses, and where it has only invisible characters: tokenizers
    drop them, so it would ask nothing (a context of them is kept: it holds no answer, and SQuAD 2.0 abstains)."""
    question = text_field(record, "question", where)
    if not any(is_visible(c) for c in question):
        raise DataError(f"{where}: field 'question' has only invisible characters")
    return question


def is_visible(char: str) -> bool:
    """Whether a character shows: not a space, a control or a format character (zero-width, direction marks).
    Unassigned ones count as visible: a newer Unicode than this Python's may have assigned them."""
    return not char.isspace() and unicodedata.category(char) not in ("Cc", "Cf", "Zs")


def check_unicode(text: str, name: str, error: type[ValueError] = ValueError) -> None:
    """Refuse text that is not valid Unicode: an unpaired surrogate (a JSON escape such as \\ud800, or a byte that
    is not UTF-8 in a command-line argument, which Python reads as one) makes tokenizers raise a TypeError, and
    no UTF-8 file can hold it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise error(f"{name} is not valid Unicode (an unpaired surrogate at character {err.start})") from None


def _read_hub(name: str, default_split: str) -> Rows:
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
