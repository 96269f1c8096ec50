"""The comparison panel's plain values: its pair table and the highlight of both runs' spans and gold."""

from __future__ import annotations

import pytest

from qa_core import compare, compare_views
from tests.test_compare import two_runs


def test_pair_table_filters_and_the_highlight_shows_both_spans_and_gold(tmp_path):
    result = compare.compare_runs(*two_runs(tmp_path))
    fixed = compare_views.pair_table(result, "fixed")
    assert list(fixed.columns) == compare_views.PAIR_COLUMNS
    assert fixed["id"].tolist() == ["q1"] and fixed["prediction B"].tolist() == ["Augustin Fresnel"]
    assert len(compare_views.pair_table(result)) == 4
    with pytest.raises(ValueError, match="outcome"):
        compare_views.pair_table(result, "improved")
    pieces = dict((label, text) for text, label in compare_views.pair_highlight(compare.find_pair(result, "q1")))
    assert pieces["B + gold"] == "Augustin " and pieces["A + B + gold"] == "Fresnel"
