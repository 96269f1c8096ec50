"""How an answer is shown: for programs, its headline, notes, score line, highlighted context and warnings."""

from __future__ import annotations

from dataclasses import replace

from qa_core import answer_views, errors_views, job_views
from qa_core.inference import AnswerResult
from qa_core.postprocess import Prediction, Span


def answer(span: tuple[int, int] | None, null_score: float | None = None) -> AnswerResult:
    context = "The lens was designed by Augustin Fresnel."
    spans = (Span(25, 41, "Augustin Fresnel", 4.0, 0.8), Span(34, 41, "Fresnel", 2.5, 0.2))
    text = context[span[0]:span[1]] if span else ""
    prediction = Prediction("query", text, span, 4.0 if span else (null_score or 0.0), spans, null_score)
    return AnswerResult("Who designed the lens?", context, prediction, 1)


def test_an_answer_for_programs_and_its_note():
    answered = answer_views.answer_json(answer((25, 41)), "run", 0.01234, temperature=1.5)
    assert (answered["answer"], answered["start"], answered["end"], answered["probability"]) == (
        "Augustin Fresnel", 25, 41, 0.8)
    assert answered["calibrated"] and answered["temperature"] == 1.5 and answered["milliseconds"] == 12.34
    assert [a["answer"] for a in answered["alternatives"]] == ["Augustin Fresnel", "Fresnel"]
    abstained = answer(None, null_score=7.0)
    shown = answer_views.answer_json(abstained, "run", 0.0)
    assert shown["abstained"] and shown["answer"] == "" and shown["start"] is None and not shown["calibrated"]
    assert answer_views.answer_note(abstained.prediction, 0.5) == ("The null score 7.00 less the best span's score "
                                                            "('Augustin Fresnel', 4.00): null odds 3.00 above "
                                                            "threshold 0.50.")
    assert answer_views.score_line(abstained.prediction, 1, 0.0123) == "score 7.00 (the null score) · 1 window · 12 ms"
    assert answer_views.score_line(answer((25, 41)).prediction, 2, 0.5) == (
        "score 4.00 · probability 80% · 2 windows · 500 ms")
    assert answer_views.score_line(answer((25, 41), null_score=1.0).prediction, 1, 0.0).startswith(
        "score 4.00 against a null score of 1.00 · probability 80%")


def test_a_negative_threshold_s_abstention_is_not_said_to_beat_the_span():
    """Found by trying a SQuAD 2.0 run whose best threshold is negative: it abstains on a null score below the best
    span's, which the note called 'beats the best span by -0.56'."""
    note = answer_views.answer_note(answer(None, null_score=3.5).prediction)
    assert "beats" not in note and "less the best span's score ('Augustin Fresnel', 4.00): null odds -0.50" in note


def test_an_abstention_s_score_is_its_null_score_as_predict_gives_it():
    """Found by trying /answer: an abstention's score and probability were those of the best span it passed over,
    where predict and the records give the null score, and the null score and odds were missing."""
    shown = answer_views.answer_json(answer(None, null_score=7.0), "run", 0.0)
    assert (shown["score"], shown["probability"], shown["null_score"], shown["null_odds"]) == (7.0, None, 7.0, 3.0)
    assert shown["alternatives"][0] == {"answer": "Augustin Fresnel", "start": 25, "end": 41, "score": 4.0,
                                        "probability": 0.8}  # the best span, passed over
    answered = answer_views.answer_json(answer((25, 41), null_score=1.0), "run", 0.0)
    assert (answered["score"], answered["probability"], answered["null_score"], answered["null_odds"]) == (
        4.0, 0.8, 1.0, -3.0)
    v1 = answer_views.answer_json(answer((25, 41)), "run", 0.0)
    assert v1["score"] == 4.0 and v1["null_score"] is None and v1["null_odds"] is None  # keys kept: one schema


def test_an_answer_says_why_its_run_has_no_temperature():
    """Too few evaluation questions to calibrate: the answer says so instead of passing for calibrated or plain."""
    why = "too few evaluation questions to calibrate (1 answered, 50 needed)"
    shown = answer_views.answer_json(answer((25, 41)), "run", 0.01, uncalibrated=why)
    assert not shown["calibrated"] and shown["temperature"] == 1.0 and shown["uncalibrated_reason"] == why
    assert answer_views.answer_json(answer((25, 41)), "run", 0.01, temperature=1.5)["uncalibrated_reason"] is None
    headline = answer_views.answer_headline(answer((25, 41)), uncalibrated=why)
    assert headline[1] == f"probability 80% (uncalibrated: {why})"


def test_counts_of_one_are_said_in_the_singular():
    """Found beside the calibration panel's 'its 1 abstentions': the other counted phrases the views write."""
    from qa_core.error_analysis import QuestionRecord
    from qa_core.settings import Settings, TrainLimits

    record = QuestionRecord("q", "Who?", "Ann came.", ("Ann",), ((0, 3),), "Ann", (0, 3), 1.0, 100.0, 100.0, ())
    assert errors_views.summary_text([record]).startswith("1 question · EM 100.0")
    assert answer_views.score_line(answer((25, 41)).prediction, 1, 0.0).endswith("· 1 window · 0 ms")
    limits = Settings(public=True, max_train_examples=1, train_limits=TrainLimits(max_steps=1, batch_size=1, epochs=1))
    note = job_views.limits_note(limits)
    assert "at most 1 step and 1 epoch a job, in batches of up to 1 window of up to 512 tokens" in note, note
    assert "1 question read from each" in note


def test_an_abstention_states_the_threshold_its_null_odds_were_above():
    """Found by a tester: 'above the threshold' gave no value, in the Ask tab as in the Errors tab, so a row sent from
    one to the other could not be told apart from a changed model."""
    abstained = replace(answer(None, null_score=7.0), null_threshold=-1.25)
    assert "null odds 3.00 above threshold -1.25" in answer_views.answer_headline(abstained)[1]
    # the Errors tab's words too
    assert answer_views.odds_against(3.0, -1.25) in answer_views.answer_headline(abstained)[1]
    assert answer_views.odds_against(-2.0, -1.25) == "null odds -2.00 not above threshold -1.25"


def test_highlight_marks_overlapping_spans():
    pieces = answer_views.highlight("the French engineer Augustin Fresnel",
                                    {"gold": [(0, 36)], "predicted": [(20, 36)]})
    assert pieces == [("the French engineer ", "gold"), ("Augustin Fresnel", "gold + predicted")]
    assert answer_views.highlight("abc", {}) == [("abc", None)]


def test_the_answer_and_its_context_take_their_texts_own_direction() -> None:
    """Found by a tester: an Arabic context was laid out left to right, its final full stop at the far right and
    marked apart from the answer. The browser sets each piece's direction from its first letter (dir="auto")."""
    context = "القاهرة هي عاصمة مصر. يمر نهر النيل عبر المدينة."
    block = answer_views.answer_html(context, (22, len(context)), context[22:], "probability 20%")
    assert '<div class="qa-headline" dir="auto">' in block and '<div class="qa-context" dir="auto"' in block
    assert '<div class="qa-detail">' in block  # the app's own words stay left to right


def test_a_span_across_a_paragraph_break_is_quoted_as_it_reads():
    """Found by a tester: the abstention's note and the explanation's quoted a span across paragraphs as a Python
    repr, '...rainforest.\\n\\nThe rainforest...'."""
    context = "It rained.\n\nThe forest grew."
    assert answer_views.explained_note(context, (3, 22)) == ("The model abstained on this question: these attributions "
                                                      "explain the best span it passed over, 'rained. The forest'. ")
