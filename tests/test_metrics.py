"""The official SQuAD v1.1 metric: normalization, token F1, max over gold answers (the scoring command: test_score.py)."""

from __future__ import annotations

import json

import pytest

from qa_core.metrics import SquadV2Metrics, compute_exact, compute_f1, compute_metrics, normalize_answer


@pytest.mark.parametrize("raw, normalized", [
    ("The Eiffel Tower!", "eiffel tower"),
    ("  an   apple,  a pear ", "apple pear"),
    ("Theatre of the Absurd", "theatre of absurd"),  # 'the' inside a word stays
    ("U.S.A.", "usa"),
    ("Zürich's café", "zürichs café"),
    ("", ""),
])
def test_normalize_answer(raw: str, normalized: str) -> None:
    assert normalize_answer(raw) == normalized


def test_exact_match_ignores_case_articles_and_punctuation() -> None:
    assert compute_exact("the Keeper.", "Keeper") == 1.0
    assert compute_exact("keeper's", "keeper") == 0.0


@pytest.mark.parametrize("prediction, gold, f1", [
    ("stone cottage", "a stone cottage", 1.0),
    ("the old stone cottage", "stone cottage", 0.8),  # p = 2/3, r = 1
    ("cottage", "stone cottage", 2 / 3),
    ("harbour", "stone cottage", 0.0),
    ("", "stone cottage", 0.0),
    ("the", "a", 0.0),  # both normalize to nothing: no tokens, F1 0 as in v1.1
    ("red red", "red", 2 / 3),  # counts, not sets
])
def test_token_f1(prediction: str, gold: str, f1: float) -> None:
    assert compute_f1(prediction, gold) == pytest.approx(f1)


def test_metrics_take_the_best_gold_and_count_missing_as_zero() -> None:
    golds = {"a": ["the keeper", "keeper of the lamp"], "b": ["stone cottage"], "c": ["evening"]}
    metrics = compute_metrics({"a": "keeper of the lamp", "b": "cottage", "x": "ignored"}, golds)
    assert metrics.exact_match == pytest.approx(100 / 3)
    assert metrics.f1 == pytest.approx(100 * (1 + 2 / 3) / 3)
    assert metrics.count == 3


def test_squad2_metrics_come_back_from_their_dict() -> None:
    """eval_metrics.json holds to_dict's keys: from_dict gives the same figures back, a slice the script left
    out stays None, and a missing or non-numeric figure is named."""
    full = SquadV2Metrics(55.0, 56.5, 40, (40.0, 43.4, 17), (66.1, 66.1, 23), (60.0, -0.11), (61.2, -0.11))
    assert SquadV2Metrics.from_dict(json.loads(json.dumps(full.to_dict()))) == full
    answerable_only = SquadV2Metrics(50.0, 60.0, 4, has_ans=(50.0, 60.0, 4))
    assert SquadV2Metrics.from_dict(answerable_only.to_dict()) == answerable_only
    with pytest.raises(ValueError, match="total"):
        SquadV2Metrics.from_dict({"exact": 50.0, "f1": 50.0})
    with pytest.raises(ValueError, match="HasAns_f1"):
        SquadV2Metrics.from_dict({**full.to_dict(), "HasAns_f1": "high"})


def test_nothing_to_score_is_refused_in_words_by_both_versions():
    """Found in review: v2.0 scoring of no questions divided by zero where v1.1's says why."""
    with pytest.raises(ValueError, match="no gold answers"):
        compute_metrics({}, {})
    from qa_core.metrics import compute_metrics_v2

    with pytest.raises(ValueError, match="no questions to score"):
        compute_metrics_v2({}, {})
