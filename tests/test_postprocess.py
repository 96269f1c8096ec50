"""Span search over all windows of an example, cut from the original context by character offsets."""

from __future__ import annotations

import numpy as np
import pytest

from qa_core.config import QAConfig
from qa_core.data import Answer, Example
from qa_core.features import Feature, Offsets
from qa_core import postprocess
from qa_core.postprocess import Span, SpanSearch, best_spans, postprocess_predictions, snap_to_words, window_candidates

CONTEXT = "Bells rang at dawn in Zürich; the keeper woke."
# offsets of: [CLS] q [SEP] Bells rang at dawn in Zürich ; the keeper woke . [SEP]
OFFSETS = (None, None, None, (0, 5), (6, 10), (11, 13), (14, 18), (19, 21), (22, 28), (28, 29), (30, 33), (34, 40),
           (41, 45), (45, 46), None)


def logits(peaks: dict[int, float], length: int = len(OFFSETS)) -> np.ndarray:
    values = np.zeros(length, dtype=np.float32)
    for index, value in peaks.items():
        values[index] = value
    return values


def test_best_span_is_cut_from_the_original_text() -> None:
    spans = best_spans(CONTEXT, [(OFFSETS, logits({8: 5}), logits({8: 5}))])
    assert spans[0].text == "Zürich" and (spans[0].start, spans[0].end) == (22, 28)
    assert abs(sum(s.probability for s in spans) - 1) < 1e-6


def test_end_before_start_and_too_long_spans_are_rejected() -> None:
    candidates = window_candidates(OFFSETS, logits({10: 9, 3: 1}), logits({4: 9, 11: 2}), 20, 30)
    assert all(start <= end for start, end, _ in candidates)
    best = max(candidates, key=lambda c: c[2])
    assert CONTEXT[best[0]:best[1]] == "the keeper"  # 10->11 (11) beats 3->4 (10); the reversed 10->4 (18) is invalid
    short = window_candidates(OFFSETS, logits({3: 9}), logits({12: 9}), 20, max_answer_length=3)
    assert all(e - s < 25 for s, e, _ in short)


def test_windows_offsets_packed_or_plain_give_the_same_candidates() -> None:
    start, end = logits({3: 2, 6: 4, 8: 4}), logits({4: 3, 8: 4, 12: 1})
    plain = window_candidates(OFFSETS, start, end, 20, 30)
    assert window_candidates(Offsets(OFFSETS), start, end, 20, 30) == plain
    assert all(type(value) is int for s, e, _ in plain for value in (s, e))  # dict keys and slices of the context
    assert [score for *_, score in plain] == sorted((score for *_, score in plain), reverse=True)


def test_logits_outside_the_context_are_never_chosen() -> None:
    spans = best_spans(CONTEXT, [(OFFSETS, logits({0: 99, 1: 99, 5: 1}), logits({0: 99, 14: 99, 5: 1}))])
    assert spans[0].text == "at"


def test_the_best_span_can_come_from_any_window() -> None:
    example = Example("e", "q", CONTEXT, (Answer("the keeper", 30),))
    first = Feature(0, "e", (0,) * 15, (0,) * 15, OFFSETS[:9] + (None,) * 6)
    second = Feature(0, "e", (0,) * 15, (0,) * 15, (None,) * 3 + OFFSETS[6:])
    start = np.stack([logits({3: 1}), logits({7: 8})])  # second window: index 7 -> offsets[10] 'the'
    end = np.stack([logits({3: 1}), logits({8: 8})])
    prediction = postprocess_predictions([example], [first, second], start, end)["e"]
    assert prediction.text == "the keeper" and prediction.span == (30, 40)
    assert prediction.alternatives[0].text == "the keeper"


def test_a_window_without_context_tokens_gives_an_empty_prediction() -> None:
    example = Example("e", "q", CONTEXT, ())
    feature = Feature(0, "e", (0, 0), (0, 0), (None, None))
    prediction = postprocess_predictions([example], [feature], np.zeros((1, 2)), np.zeros((1, 2)))["e"]
    assert prediction.text == "" and prediction.span is None


@pytest.mark.parametrize("context, start, end, expected", [
    ("French engineer Augustin Fresnel built it.", 16, 28, "Augustin Fresnel"),  # ends inside a word
    ("It was in Marlow.", 10, 13, "Marlow"),  # 'Mar'
    ("It was in Marlow.", 13, 16, "Marlow"),  # '##low': starts inside
    ("Marlow", 0, 3, "Marlow"),  # context start and end
    ("Franco-Prussian war", 7, 15, "Prussian"),  # a hyphen is a word boundary
    ("(Zürich), 1890", 1, 4, "Zürich"),  # letters beyond ASCII; punctuation stops it
    ("about 1,000 men", 6, 7, "1,000"),  # digits joined by a separator are one number
    ("about 1,000 men", 8, 11, "1,000"),
    ("it cost 3.5 marks.", 8, 9, "3.5"),
    ("at 1990. Then", 3, 5, "1990"),  # a full stop after a number ends it
    ("Zoë sang", 0, 2, "Zoë"),
    ("Zoe\u0308 sang", 0, 3, "Zoe\u0308"),  # a combining mark belongs to its letter
    ("Москва стоит", 0, 3, "Москва"),
    ("東京タワーは高い", 0, 2, "東京"),  # no spaces: each character is its own word, nothing swallowed
    ("ภาษาไทย", 0, 1, "ภ"),  # Thai: no snapping across letters ...
    ("กิน", 0, 1, "กิ"),  # ... but a vowel mark stays with its consonant
    ("x" * 100 + " y", 10, 20, "x" * 10),  # a 100-letter run is no word: the token boundary stays
    ("cafe\u0301 au lait", 0, 4, "cafe\u0301"),  # ASCII letters, then a combining mark: not cut before the mark
    ("naïve art", 0, 2, "naïve"),  # an ASCII letter beside one beyond ASCII
    ("ab東京", 0, 1, "ab"),  # an ASCII word ends where an unspaced script begins
    ("don't go", 0, 2, "don"),  # an apostrophe is no letter
])
def test_spans_snap_to_whole_words(context: str, start: int, end: int, expected: str) -> None:
    s, e = snap_to_words(context, start, end)
    assert context[s:e] == expected


def test_alternatives_that_snap_to_the_same_span_are_merged() -> None:
    context = "It was in Marlow."
    offsets = (None, None, (0, 2), (3, 6), (7, 9), (10, 13), (13, 16), (16, 17), None)  # ... Mar ##low .
    start, end = logits({5: 6, 6: 5}), logits({5: 6, 6: 5})  # 'Mar' 12, 'Mar##low' 11, '##low' 10
    spans = best_spans(context, [(offsets, start, end)])
    assert spans[0].text == "Marlow" and spans[0].score == 12
    assert [s.text for s in spans].count("Marlow") == 1
    raw = best_spans(context, [(offsets, start, end)], SpanSearch(whole_words=False))
    assert raw[0].text == "Mar" and {"Marlow", "low"} <= {s.text for s in raw}


def test_the_default_span_search_is_the_default_config_s() -> None:
    assert SpanSearch() == SpanSearch.from_config(QAConfig())


def test_an_answer_keeps_its_spans_through_its_fifth_distinct_text():
    texts = ("a", "a", "b", "c", "a", "d", "e", "f")
    spans = tuple(Span(i, i + 1, t, -i, 0.1) for i, t in enumerate(texts))
    assert postprocess.leading_spans(spans, 5) == spans[:7]
    assert postprocess.leading_spans(spans[:4], 5) == spans[:4]  # fewer texts than asked: every span
