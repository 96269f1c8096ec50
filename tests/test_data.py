"""Loading SQuAD-format data into examples: layouts, repairs, and one clear error per kind of bad record
(reading files and hub data sets: test_data_sources.py)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from qa_core.data import DataError, load_examples
from tests.conftest import write_squad

CONTEXT = "The harbour lamp was lit every evening by the keeper, who lived in a stone cottage."


def qa(qid: str, question: str = "Who lit the lamp?", text: str = "the keeper", start: int | None = None) -> dict:
    return {"id": qid, "question": question,
            "answers": [{"text": text, "answer_start": CONTEXT.find(text) if start is None else start}]}


def test_sample_loads() -> None:
    result = load_examples("sample")
    assert len(result.examples) >= 30
    assert result.report.repaired_answers == result.report.unlocated_answers == 0
    for example in result.examples:
        for answer in example.answers:
            assert example.context[answer.start:answer.start + len(answer.text)] == answer.text


def test_squad_v1_layout(tmp_path: Path) -> None:
    path = write_squad(tmp_path / "d.json", [{"context": CONTEXT, "qas": [qa("a"), qa("b", "Where?", "a stone cottage")]}])
    examples = load_examples(str(path)).examples
    assert [e.example_id for e in examples] == ["a", "b"]
    assert examples[1].answers[0].start == CONTEXT.find("a stone cottage")
    assert examples[0].title == "t"


def test_v2_unanswerable_is_kept_without_answers(tmp_path: Path) -> None:
    impossible = {"id": "x", "question": "Why?", "answers": [], "is_impossible": True}
    path = write_squad(tmp_path / "d.json", [{"context": CONTEXT, "qas": [qa("a"), impossible]}])
    result = load_examples(str(path))
    assert result.examples[1].answers == () and result.report.unanswerable == 1


def test_flat_json_and_jsonl(tmp_path: Path) -> None:
    record = {"id": "r1", "title": "t", "context": CONTEXT, "question": "Who?",
              "answers": {"text": ["the keeper"], "answer_start": [CONTEXT.find("the keeper")]}}
    (tmp_path / "flat.json").write_text(json.dumps({"data": [record]}))
    (tmp_path / "flat.jsonl").write_text(json.dumps(record) + "\n\n")
    assert load_examples(str(tmp_path / "flat.json")).examples[0].answers[0].text == "the keeper"
    assert load_examples(str(tmp_path / "flat.jsonl")).examples[0].example_id == "r1"


def test_shifted_answer_is_repaired_to_nearest_occurrence(tmp_path: Path) -> None:
    path = write_squad(tmp_path / "d.json", [{"context": CONTEXT, "qas": [qa("a", start=CONTEXT.find("the keeper") + 2)]}])
    result = load_examples(str(path))
    assert result.examples[0].answers[0].start == CONTEXT.find("the keeper")
    assert result.report.repaired_answers == 1


def test_answer_not_in_context_is_counted_not_fatal(tmp_path: Path) -> None:
    path = write_squad(tmp_path / "d.json", [{"context": CONTEXT, "qas": [qa("a", text="the lighthouse", start=3)]}])
    result = load_examples(str(path))
    assert result.examples[0].answers[0].start is None and result.report.unlocated_answers == 1


def test_limit(tmp_path: Path) -> None:
    path = write_squad(tmp_path / "d.json", [{"context": CONTEXT, "qas": [qa("a"), qa("b"), qa("c")]}])
    assert len(load_examples(str(path), limit=2).examples) == 2
    with pytest.raises(ValueError, match="limit must be >= 0 or None"):
        load_examples(str(path), limit=-1)


def _bad(tmp_path: Path, qas: list[dict], context: object = CONTEXT) -> str:
    return str(write_squad(tmp_path / "bad.json", [{"context": context, "qas": qas}]))


@pytest.mark.parametrize("record, message", [
    ({"question": "Who?", "answers": []}, "missing field 'id'"),
    ({"id": [1, 2], "question": "Who?", "answers": []}, r"field 'id' must be text or an integer, got list \[1, 2\]"),
    ({"id": "q1", "question": "Who?", "answers": [], "is_impossible": "false"},
     "'is_impossible' must be true or false, got 'false'"),
    ({"id": "q1", "answers": [{"text": "the keeper", "answer_start": 41}]}, "missing field 'question'"),
    ({"id": "q1", "question": "   ", "answers": [{"text": "the keeper", "answer_start": 41}]}, "'question' is empty"),
    ({"id": "q1", "question": "Who?"}, "missing field 'answers'"),
    ({"id": "q1", "question": "Who?", "answers": "the keeper"},
     r"field 'answers' must be a list of answers, or \{'text': \[...\], 'answer_start': \[...\]\}, got str"),
    ({"id": "q1", "question": "Who?", "answers": [{"text": "the keeper"}]}, r"answer 0 \('the keeper'\): missing "
                                                                             r"field 'answer_start'"),
    ({"id": "q1", "question": "Who?", "answers": [{"text": "the keeper", "answer_start": "41"}]}, "must be an integer"),
    ({"id": "q1", "question": "Who?", "answers": [{"text": "the keeper", "answer_start": 4000}]}, "outside the context"),
    ({"id": "q1", "question": "Who?", "answers": [{"text": "the keeper", "answer_start": -1}]}, "outside the context"),
    ({"id": "q1", "question": "Who?", "answers": [{"text": "", "answer_start": 0}]}, "non-empty text"),
    ({"id": "q1", "question": "Who \udcff?", "answers": []},
     r"field 'question' is not valid Unicode \(an unpaired surrogate at character 4\)"),
    ({"id": "q1", "question": "Who?", "answers": [{"text": "the \ud800keeper", "answer_start": 41}]},
     r"answer 'the \\ud800keeper' is not valid Unicode \(an unpaired surrogate at character 4\)"),
])
def test_bad_record_names_file_and_record(tmp_path: Path, record: dict, message: str) -> None:
    path = _bad(tmp_path, [record])
    with pytest.raises(DataError, match=message) as caught:
        load_examples(path)
    assert path in str(caught.value)
    if record.get("id") == "q1":
        assert "'q1'" in str(caught.value)


@pytest.mark.parametrize("context, message", [(None, "missing field 'context'"), ("", "field 'context' is empty"),
                                              (["x"], "field 'context' must be text, got list"),
                                              ("Fresnel \ud800 designed the lens.",  # a lone UTF-16 half
                                               "field 'context' is not valid Unicode (an unpaired surrogate at "
                                               "character 8)")])
def test_a_bad_context_is_named_at_its_paragraph(tmp_path: Path, context: object, message: str) -> None:
    """Found by trying the CLI: a paragraph without 'context' was named as its first question,
    'data[0].paragraphs[0].qas[0] (id 'q1')', though the field belongs to the paragraph."""
    path = _bad(tmp_path, [qa("q1"), qa("q2")], context=context)
    with pytest.raises(DataError) as caught:
        load_examples(path)
    assert str(caught.value) == f"{path}: data[0].paragraphs[0]: {message}"


def test_a_title_that_is_not_valid_unicode_is_refused(tmp_path: Path) -> None:
    """Found by a tester: a lone surrogate loaded, and failed only when the evaluation's files were written."""
    path = write_squad(tmp_path / "bad.json", [{"context": CONTEXT, "qas": [qa("q1")]}], title="Lamp \udcff")
    with pytest.raises(DataError, match=r"\(id 'q1'\): field 'title' is not valid Unicode \(an unpaired surrogate at "
                                        r"character 5\)"):
        load_examples(str(path))


def test_duplicate_id(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="'a' appears twice"):
        load_examples(_bad(tmp_path, [qa("a"), qa("a")]))


def test_unlocated_answers_are_named_in_the_log(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Found by trying the CLI: the log said only 'unlocated_answers=1', never which question to fix."""
    lost = [qa(f"q{n}", text="the lighthouse", start=3) for n in range(7)]
    one = {**qa("q7", text="the lighthouse", start=3), "answers": [{"text": "the lighthouse", "answer_start": 3}] * 2}
    path = write_squad(tmp_path / "d.json", [{"context": CONTEXT, "qas": [qa("fine"), *lost, one]}])
    with caplog.at_level(logging.INFO, logger="qa_core.data"):
        assert load_examples(str(path)).report.unlocated_answers == 9  # answers; 8 questions
    named = [r.getMessage() for r in caplog.records if "nowhere in" in r.getMessage()]
    assert named == [f"{path}: 8 questions have an answer whose text is nowhere in their context (kept for scoring, "
                     f"not trained on): 'q0', 'q1', 'q2', 'q3', 'q4' and 3 more"], named
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="qa_core.data"):
        load_examples(str(write_squad(tmp_path / "one.json", [{"context": CONTEXT, "qas": [lost[0]]}])))
    assert [r.getMessage() for r in caplog.records if "nowhere in" in r.getMessage()] == [
        f"{tmp_path / 'one.json'}: 1 question has an answer whose text is nowhere in its context (kept for scoring, "
        f"not trained on): 'q0'"]


def test_is_impossible_that_disagrees_with_the_answers_is_counted_and_named(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Found by a tester: answers of a question marked is_impossible were dropped without a word; the answers decide,
    as in evaluate-v2.0.py, and the log names the questions whose mark disagrees (either way)."""
    marked = [{**qa(f"m{n}"), "is_impossible": True} for n in range(6)]
    unmarked = {"id": "u", "question": "Why?", "answers": [], "is_impossible": False}
    agreed = [{"id": "x", "question": "Why?", "answers": [], "is_impossible": True}, {**qa("y"), "is_impossible": False}]
    path = write_squad(tmp_path / "d.json", [{"context": CONTEXT, "qas": [*marked, unmarked, *agreed, qa("z")]}])
    with caplog.at_level(logging.INFO, logger="qa_core.data"):
        result = load_examples(str(path))
    assert [bool(e.answers) for e in result.examples] == [True] * 6 + [False, False, True, True]
    assert result.report.impossible_disagreed == 7 and result.report.unanswerable == 2
    named = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert named == [f"{path}: 7 questions have an is_impossible that disagrees with their answers; the answers "
                     f"decide, as in evaluate-v2.0.py (answerable when an answer is listed): 'm0', 'm1', 'm2', 'm3', "
                     f"'m4' and 2 more"], named
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="qa_core.data"):
        load_examples(str(write_squad(tmp_path / "one.json", [{"context": CONTEXT, "qas": [marked[0]]}])))
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        f"{tmp_path / 'one.json'}: 1 question has an is_impossible that disagrees with its answers; the answers "
        f"decide, as in evaluate-v2.0.py (answerable when an answer is listed): 'm0'"]


LONG = "9" * 5000  # more digits than Python reads a number of (sys.get_int_max_str_digits)


def _with_long_number(path: Path, text: str) -> str:
    """A data file whose number 987654321 is replaced by a 5,000-digit one (json.dumps cannot write it)."""
    path.write_text(text.replace("987654321", LONG), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("layout, where", [
    ("squad", "data[0].paragraphs[0].qas[1] (id 'q1'): answers[0].answer_start"),
    ("flat", "record 1 (id 'q1'): answers.answer_start[0]"),
    ("jsonl", "line 2 (id 'q1'): answers.answer_start[0]"),
])
def test_a_number_too_long_to_read_is_named_with_its_record_and_field(tmp_path: Path, layout: str,
                                                                      where: str) -> None:
    """Found by a tester: a 5,000-digit answer_start refused the file with Python's 'Exceeds the limit (4300 digits)
    for integer string conversion ... use sys.set_int_max_str_digits()', naming neither the file nor the record."""
    if layout == "squad":
        text = json.dumps({"data": [{"title": "t", "paragraphs": [{"context": CONTEXT, "qas": [
            qa("q0"), qa("q1", start=987654321)]}]}]})
        path = _with_long_number(tmp_path / "long.json", text)
    else:
        records = [{"id": f"q{n}", "question": "Who?", "context": CONTEXT,
                    "answers": {"text": ["the keeper"], "answer_start": [41 if n == 0 else 987654321]}} for n in (0, 1)]
        path = _with_long_number(tmp_path / f"long.{'json' if layout == 'flat' else 'jsonl'}",
                                 json.dumps(records) if layout == "flat" else "".join(json.dumps(r) + "\n"
                                                                                      for r in records))
    with pytest.raises(DataError) as caught:
        load_examples(path)
    assert str(caught.value) == f"{path}: {where} is a number of 5,000 digits; data files may hold numbers of " \
                                f"up to 4,300 digits"
