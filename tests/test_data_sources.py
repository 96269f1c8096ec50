"""Reading data sources into rows: the sample, SQuAD and flat JSON, JSON Lines, and one clear error per kind of
unreadable file (the loading limits a web job sets: test_hosting.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qa_core.data_sources import SAMPLE_PATH, STOP_CHECK_EVERY, DataError, LoadingCancelled, loading_limits, \
    read_rows

CONTEXT = "The harbour lamp was lit every evening by the keeper, who lived in a stone cottage."
RECORD = {"id": "r1", "context": CONTEXT, "question": "Who?", "answers": {"text": ["the keeper"], "answer_start": [41]}}


def rows(source: str | Path) -> list[tuple[str, dict]]:
    return list(read_rows(str(source))[1])


def test_each_record_is_named_by_where_it_is(tmp_path: Path) -> None:
    squad = {"data": [{"title": "t", "paragraphs": [{"context": CONTEXT, "qas": [
        {"id": "a", "question": "Who?", "answers": []}, {"id": "b", "question": "Where?", "answers": []}]}]}]}
    (tmp_path / "squad.json").write_text(json.dumps(squad))
    (tmp_path / "flat.json").write_text(json.dumps([RECORD]))
    (tmp_path / "flat.jsonl").write_text("\n" + json.dumps(RECORD) + "\n\n")
    read = rows(tmp_path / "squad.json")
    assert [where for where, _ in read] == ["data[0].paragraphs[0].qas[0]", "data[0].paragraphs[0].qas[1]"]
    assert read[1][1] == {"id": "b", "question": "Where?", "answers": [], "context": CONTEXT, "title": "t"}
    assert rows(tmp_path / "flat.json") == [("record 0", RECORD)]
    assert rows(tmp_path / "flat.jsonl") == [("line 2", RECORD)]
    origin, _ = read_rows("sample")
    assert origin == str(SAMPLE_PATH)


def test_bom_unicode_and_emoji(tmp_path: Path) -> None:
    context = "Der Leuchtturm von Zürich 🌊 steht am See; 灯台は湖にあります。"
    data = {"data": [{"title": "ü", "paragraphs": [{"context": context, "qas": [
        {"id": "u", "question": "Wo steht er? 🤔", "answers": [{"text": "am See", "answer_start": context.find("am See")}]}]}]}]}
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(data, ensure_ascii=False).encode("utf-8"))
    [(_, record)] = rows(path)
    assert record["context"] == context and record["question"] == "Wo steht er? 🤔" and record["title"] == "ü"


def test_loading_stops_between_records_when_cancelled(tmp_path: Path) -> None:
    (tmp_path / "many.jsonl").write_text("".join(json.dumps({**RECORD, "id": f"r{n}"}) + "\n"
                                                 for n in range(STOP_CHECK_EVERY + 1)))
    checks: list[int] = []
    with loading_limits(should_stop=lambda: checks.append(1) or len(checks) > 2):
        _, read = read_rows(str(tmp_path / "many.jsonl"))  # the file is read: one check before
        assert len([next(read) for _ in range(STOP_CHECK_EVERY)]) == STOP_CHECK_EVERY  # one check at the first
        with pytest.raises(LoadingCancelled, match=r"many\.jsonl: loading cancelled"):
            next(read)
    assert len(checks) == 3


def test_not_json(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text("{not json")
    with pytest.raises(DataError, match=r"x\.json.*not valid JSON.*line 1"):
        rows(path)


@pytest.mark.parametrize("name, text", [("x.json", "\n"), ("x.json", ""), ("x.jsonl", " \r\n\n"),
                                        ("x.json", "\ufeff\n")])
def test_an_empty_file_is_called_empty_not_invalid(tmp_path: Path, name: str, text: str) -> None:
    """A file holding only a newline (an editor's save of an empty buffer) is empty, not bad JSON at line 2."""
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError) as refused:
        rows(path)
    assert str(refused.value) == f"{path}: the file is empty"


@pytest.mark.parametrize("line, kind", [("[1, 2]", "list"), ('"text"', "str"), ("null", "NoneType"), ("7", "int")])
def test_a_jsonl_line_that_is_no_object_is_named(tmp_path: Path, line: str, kind: str) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps(RECORD) + "\n" + line + "\n")
    with pytest.raises(DataError, match=rf"x\.jsonl: line 2 is a {kind}, expected an object \(one record a line\)"):
        rows(path)


def test_an_article_without_paragraphs_is_named_as_one_not_as_a_record(tmp_path: Path) -> None:
    """Found by a tester: an article whose "paragraphs" key was misspelled read as a flat question record, and was
    refused as "record 1: missing field 'id'"."""
    paragraphs = [{"context": CONTEXT, "qas": [{"id": "a", "question": "Who?", "answers": []}]}]
    path = tmp_path / "squad.json"
    path.write_text(json.dumps({"data": [{"title": "t", "paragraphs": paragraphs},
                                         {"title": "u", "paragraph": paragraphs}]}))
    with pytest.raises(DataError) as caught:
        rows(path)
    assert str(caught.value) == (f"{path}: data[1]: missing field 'paragraphs' (an article of SQuAD JSON; it has "
                                 f"'title', 'paragraph')")
    no_id = {key: value for key, value in RECORD.items() if key != "id"}  # a record still, missing its id later
    (tmp_path / "flat.json").write_text(json.dumps({"data": [no_id]}))
    assert rows(tmp_path / "flat.json") == [("record 0", no_id)]


def test_json_lines_and_json_named_the_other_way_say_so(tmp_path: Path) -> None:
    lines = tmp_path / "lines.json"
    lines.write_text(json.dumps(RECORD) + "\n" + json.dumps({**RECORD, "id": "r2"}) + "\n")
    with pytest.raises(DataError, match=r"lines\.json: file is not valid JSON \(Extra data, line 2 column 1\); "
                                        r"JSON Lines \(one record a line\) need a \.jsonl name"):
        rows(lines)
    squad = {"data": [{"paragraphs": [{"context": CONTEXT, "qas": [{"id": "q1", "question": "Who?", "answers": []}]}]}]}
    for text in (json.dumps(squad), json.dumps(squad, indent=1)):
        (tmp_path / "squad.jsonl").write_text(text)
        with pytest.raises(DataError, match=r"squad\.jsonl: holds one JSON document, not JSON Lines; name it "
                                            r"\.json"):
            rows(tmp_path / "squad.jsonl")


def test_one_record_over_several_lines_of_a_jsonl_file_is_not_sent_to_a_json_name(tmp_path: Path) -> None:
    """A pretty-printed record is no SQuAD JSON either: 'name it .json' would only trade one refusal for another."""
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps(RECORD, indent=1))
    with pytest.raises(DataError, match=r"one\.jsonl: holds one record over several lines; JSON Lines need each "
                                        r"record on one line") as refused:
        rows(path)
    assert ".json" not in str(refused.value).replace("one.jsonl", "")


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.json"
    path.write_bytes('{"data": [{"title": "caf\xe9"}]}'.encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1\.json: not UTF-8"):
        rows(path)


def test_wrong_layout(tmp_path: Path) -> None:
    path = tmp_path / "w.json"
    path.write_text(json.dumps({"rows": 3}))
    with pytest.raises(DataError, match=r"w\.json: expected SQuAD JSON"):
        rows(path)


def test_missing_file() -> None:
    with pytest.raises(DataError, match="no such data file"):
        rows("nowhere/train.json")


DEEP = "[" * 200_000 + "]" * 200_000  # far deeper than Python's JSON reader recurses


@pytest.mark.parametrize("name, text, where", [("deep.json", DEEP, "file"),
                                               ("deep.jsonl", json.dumps(RECORD) + "\n" + DEEP + "\n", "line 2")])
def test_a_file_nested_too_deeply_is_named_not_a_recursion_error(tmp_path: Path, name: str, text: str,
                                                                  where: str) -> None:
    """Found by a tester: the reader's RecursionError escaped every handler of bad data (a bare Error badge on the
    Train tab, a traceback from train.py, the upload left on disk)."""
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(DataError) as caught:
        rows(path)
    assert str(caught.value) == f"{path}: {where} nests lists or objects too deeply to be read"


def test_json_lines_split_only_at_line_feeds(tmp_path: Path) -> None:
    """Found by a data audit: a record whose text holds U+2028, U+2029 or U+0085 unescaped (valid JSON, as
    json.dumps(ensure_ascii=False) writes them) was cut there: "holds one record over several lines"."""
    records = [{**RECORD, "id": f"r{n}", "context": CONTEXT + separator + "More."}
               for n, separator in enumerate(("\u2028", "\u2029", "\u0085"))]
    (tmp_path / "one.jsonl").write_text(json.dumps(records[0], ensure_ascii=False) + "\n", encoding="utf-8")
    (tmp_path / "many.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\r\n" for r in records),
                                         encoding="utf-8")
    assert rows(tmp_path / "one.jsonl") == [("line 1", records[0])]
    assert rows(tmp_path / "many.jsonl") == [(f"line {n}", r) for n, r in enumerate(records, 1)]


@pytest.mark.parametrize("name", ["UP.JSONL", "data.JsonL"])
def test_a_json_lines_name_in_capitals_is_read_as_json_lines(tmp_path: Path, name: str) -> None:
    """Found by a data audit: data.JSONL (the upload accepts it) was parsed as one JSON document and refused with
    "JSON Lines ... need a .jsonl name"; missing, it was taken for a hub data set's name."""
    (tmp_path / name).write_text(json.dumps(RECORD) + "\n" + json.dumps({**RECORD, "id": "r2"}) + "\n")
    assert [where for where, _ in rows(tmp_path / name)] == ["line 1", "line 2"]
    with pytest.raises(DataError, match="no such data file"):
        rows("MISSING.JSONL")


@pytest.mark.parametrize("source", ["/dev/zero", "fifo"])
def test_a_device_or_a_pipe_is_refused_before_a_byte_is_read(tmp_path: Path, source: str) -> None:
    """Found by a data audit: /dev/zero as a data file was read until memory ran out (its size says 0), a named
    pipe waited forever."""
    import os

    if source == "fifo":
        source = str(tmp_path / "pipe.json")
        os.mkfifo(source)
    with pytest.raises(DataError, match="not a regular file"):
        rows(source)


@pytest.mark.parametrize("text", ["\u200b\u200b", "\x00", "\u200e \ufeff"])
def test_a_question_of_invisible_characters_is_refused_as_a_blank_one_is(tmp_path: Path, text: str) -> None:
    """Found by a data audit: a file's question of zero-width spaces or NUL passed the blank check and was trained
    and scored on, where /answer refuses it ("no words this model reads")."""
    (tmp_path / "flat.json").write_text(json.dumps([{**RECORD, "question": text}]))
    with pytest.raises(DataError, match=r"record 0.*'question' has only invisible characters"):
        from qa_core.data import load_examples

        load_examples(str(tmp_path / "flat.json"))
