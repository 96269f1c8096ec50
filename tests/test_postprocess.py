"""Span search over all windows of an example, cut from the original context by character offsets."""

from __future__ import annotations

import numpy as np

from qa_core.data import Answer, Example
from qa_core.features import Feature
from qa_core.postprocess import best_spans, postprocess_predictions, window_candidates

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
