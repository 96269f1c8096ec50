"""The comparison panel's plain values: its pair table and the highlight of both runs' spans and gold."""

from __future__ import annotations

from dataclasses import replace

import pytest

from qa_core import compare, compare_views, errors_views
from qa_core.error_analysis import read_records, write_records
from qa_core.run_files import RECORDS_FILE
from tests.test_compare import two_runs


def test_pair_table_filters_and_the_highlight_shows_both_spans_and_gold(tmp_path):
    result = compare.compare_runs(*two_runs(tmp_path))
    fixed = compare_views.pair_table(result, "fixed")
    assert list(fixed.columns) == compare_views.PAIR_COLUMNS
    assert fixed["id"].tolist() == ["q1"] and fixed["answer B"].tolist() == ["Augustin Fresnel"]
    assert len(compare_views.pair_table(result)) == 4
    with pytest.raises(ValueError, match="outcome"):
        compare_views.pair_table(result, "improved")
    pieces = dict((label, text) for text, label in compare_views.pair_highlight(compare.find_pair(result, "q1")))
    assert pieces["B + gold"] == "Augustin " and pieces["A + B + gold"] == "Fresnel"


def test_an_abstention_reads_as_in_the_question_table(tmp_path):
    """Found by trying the app: a SQuAD 2.0 run's abstentions were blank cells here and '(no answer)' in the table."""
    run_a, run_b = two_runs(tmp_path)
    records = read_records(run_b / RECORDS_FILE)
    abstained = replace(records[3], prediction="", span=None, null_odds=2.0, best_span=records[3].span)
    write_records(run_b / RECORDS_FILE, [*records[:3], abstained])
    table = compare_views.pair_table(compare.compare_runs(run_a, run_b))
    assert table.set_index("id").loc["q3", "answer B"] == "(no answer)"
    assert table.set_index("id").loc["q3", "answer A"] == "lens"


def test_an_unanswerable_question_reads_as_in_the_question_table(tmp_path):
    """Found by trying the app: a SQuAD 2.0 question without an answer had a blank gold cell here and
    '(unanswerable)' in the question table."""
    for run in two_runs(tmp_path):
        records = read_records(run / RECORDS_FILE)
        write_records(run / RECORDS_FILE, [*records[:3], replace(records[3], gold_answers=(), gold_spans=())])
    table = compare_views.pair_table(compare.compare_runs(tmp_path / "a", tmp_path / "b")).set_index("id")
    shown = errors_views.record_table(read_records(tmp_path / "a" / RECORDS_FILE)).set_index("id")
    assert table.loc["q3", "gold"] == shown.loc["q3", "gold"] == "(unanswerable)"
    assert table.loc["q1", "gold"] == shown.loc["q1", "gold"] == "Augustin Fresnel"
