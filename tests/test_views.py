"""What the UI and its JSON API show as plain values: answers, status lines, tables and highlighted pieces."""

from __future__ import annotations

from dataclasses import replace

from qa_core import views
from qa_core.inference import AnswerResult
from qa_core.postprocess import Prediction, Span


def answer(span: tuple[int, int] | None, null_score: float | None = None) -> AnswerResult:
    context = "The lens was designed by Augustin Fresnel."
    spans = (Span(25, 41, "Augustin Fresnel", 4.0, 0.8), Span(34, 41, "Fresnel", 2.5, 0.2))
    text = context[span[0]:span[1]] if span else ""
    prediction = Prediction("query", text, span, 4.0 if span else (null_score or 0.0), spans, null_score)
    return AnswerResult("Who designed the lens?", context, prediction, 1)


def test_an_answer_for_programs_and_its_note():
    answered = views.answer_json(answer((25, 41)), "run", 0.01234, temperature=1.5)
    assert (answered["answer"], answered["start"], answered["end"], answered["probability"]) == (
        "Augustin Fresnel", 25, 41, 0.8)
    assert answered["calibrated"] and answered["temperature"] == 1.5 and answered["milliseconds"] == 12.34
    assert [a["answer"] for a in answered["alternatives"]] == ["Augustin Fresnel", "Fresnel"]
    abstained = answer(None, null_score=7.0)
    shown = views.answer_json(abstained, "run", 0.0)
    assert shown["abstained"] and shown["answer"] == "" and shown["start"] is None and not shown["calibrated"]
    assert views.answer_note(abstained.prediction, 0.5) == ("The null score 7.00 less the best span's score "
                                                            "('Augustin Fresnel', 4.00): null odds 3.00 above "
                                                            "threshold 0.50.")
    assert views.score_line(abstained.prediction, 1, 0.0123) == "score 7.00 (the null score) · 1 window · 12 ms"
    assert views.score_line(answer((25, 41)).prediction, 2, 0.5) == (
        "score 4.00 · probability 80% · 2 windows · 500 ms")
    assert views.score_line(answer((25, 41), null_score=1.0).prediction, 1, 0.0).startswith(
        "score 4.00 against a null score of 1.00 · probability 80%")


def test_a_negative_threshold_s_abstention_is_not_said_to_beat_the_span():
    """Found by trying a SQuAD 2.0 run whose best threshold is negative: it abstains on a null score below the best
    span's, which the note called 'beats the best span by -0.56'."""
    note = views.answer_note(answer(None, null_score=3.5).prediction)
    assert "beats" not in note and "less the best span's score ('Augustin Fresnel', 4.00): null odds -0.50" in note


def test_an_abstention_s_score_is_its_null_score_as_predict_gives_it():
    """Found by trying /answer: an abstention's score and probability were those of the best span it passed over,
    where predict and the records give the null score, and the null score and odds were missing."""
    shown = views.answer_json(answer(None, null_score=7.0), "run", 0.0)
    assert (shown["score"], shown["probability"], shown["null_score"], shown["null_odds"]) == (7.0, None, 7.0, 3.0)
    assert shown["alternatives"][0] == {"answer": "Augustin Fresnel", "start": 25, "end": 41, "score": 4.0,
                                        "probability": 0.8}  # the best span, passed over
    answered = views.answer_json(answer((25, 41), null_score=1.0), "run", 0.0)
    assert (answered["score"], answered["probability"], answered["null_score"], answered["null_odds"]) == (
        4.0, 0.8, 1.0, -3.0)
    v1 = views.answer_json(answer((25, 41)), "run", 0.0)
    assert v1["score"] == 4.0 and v1["null_score"] is None and v1["null_odds"] is None  # keys kept: one schema


def test_an_answer_says_why_its_run_has_no_temperature():
    """Too few evaluation questions to calibrate: the answer says so instead of passing for calibrated or plain."""
    why = "too few evaluation questions to calibrate (1 answered, 50 needed)"
    shown = views.answer_json(answer((25, 41)), "run", 0.01, uncalibrated=why)
    assert not shown["calibrated"] and shown["temperature"] == 1.0 and shown["uncalibrated_reason"] == why
    assert views.answer_json(answer((25, 41)), "run", 0.01, temperature=1.5)["uncalibrated_reason"] is None
    assert views.answer_headline(answer((25, 41)), uncalibrated=why)[1] == f"probability 80% (uncalibrated: {why})"


def test_counts_of_one_are_said_in_the_singular():
    """Found beside the calibration panel's 'its 1 abstentions': the other counted phrases views.py writes."""
    from qa_core.error_analysis import QuestionRecord
    from qa_core.settings import Settings, TrainLimits

    record = QuestionRecord("q", "Who?", "Ann came.", ("Ann",), ((0, 3),), "Ann", (0, 3), 1.0, 100.0, 100.0, ())
    assert views.summary_text([record]).startswith("1 question · EM 100.0")
    assert views.score_line(answer((25, 41)).prediction, 1, 0.0).endswith("· 1 window · 0 ms")
    limits = Settings(public=True, max_train_examples=1, train_limits=TrainLimits(max_steps=1, batch_size=1, epochs=1))
    note = views.limits_note(limits)
    assert "at most 1 step and 1 epoch a job, in batches of up to 1 window of up to 512 tokens" in note, note
    assert "1 question read from each" in note


def test_an_abstention_states_the_threshold_its_null_odds_were_above():
    """Found by a tester: 'above the threshold' gave no value, in the Ask tab as in the Errors tab, so a row sent from
    one to the other could not be told apart from a changed model."""
    abstained = replace(answer(None, null_score=7.0), null_threshold=-1.25)
    assert "null odds 3.00 above threshold -1.25" in views.answer_headline(abstained)[1]
    assert views.odds_against(3.0, -1.25) in views.answer_headline(abstained)[1]  # the Errors tab's words too
    assert views.odds_against(-2.0, -1.25) == "null odds -2.00 not above threshold -1.25"


def test_the_job_line_says_what_its_eta_counts_and_names_the_status_once():
    """Found by trying the app: "ETA 6m 34s (evaluations included)" at step 1, before any evaluation had run (the
    estimate counts them only once one has); "ETA 0s" while the last evaluation ran; "cancelled · cancelled; …"."""
    from qa_core.jobs import JobSnapshot

    running = JobSnapshot(2, "running", "runs/x", step=1, total_steps=60, windows_per_s=9.0, eta_s=394.0)
    assert "ETA 6m 34s (training steps only until an evaluation has run)" in views.job_text(running)
    evaluated = replace(running, step=30, metrics={"exact_match": 10.0, "f1": 20.0})
    assert "ETA 6m 34s (evaluations included)" in views.job_text(evaluated)
    last = replace(evaluated, step=60, eta_s=0.0)
    assert "ETA" not in views.job_text(last) and "last step done" in views.job_text(last)
    cancelled = JobSnapshot(2, "cancelled", "runs/x", message="cancelled; resumable from its checkpoint")
    assert views.job_text(cancelled).splitlines()[0] == "Job 2: cancelled · resumable from its checkpoint"


def test_highlight_marks_overlapping_spans():
    pieces = views.highlight("the French engineer Augustin Fresnel", {"gold": [(0, 36)], "predicted": [(20, 36)]})
    assert pieces == [("the French engineer ", "gold"), ("Augustin Fresnel", "gold + predicted")]
    assert views.highlight("abc", {}) == [("abc", None)]


def test_a_run_evaluated_on_its_training_data_says_so(tmp_path) -> None:
    from qa_core import views
    from qa_core.checkpoints import write_run_info
    from qa_core.run_files import RunInfo

    write_run_info(tmp_path / "same", RunInfo("finished", {"train_file": "sample", "validation_file": "sample"}))
    write_run_info(tmp_path / "held", RunInfo("finished", {"train_file": "a.json", "validation_file": "b.json"}))
    assert "its own training data" in views.evaluation_caveat(str(tmp_path / "same"))
    assert views.evaluation_caveat(str(tmp_path / "held")) == ""
    assert views.evaluation_caveat(str(tmp_path / "missing")) == ""


def test_the_answer_and_its_context_take_their_texts_own_direction() -> None:
    """Found by a tester: an Arabic context was laid out left to right, its final full stop at the far right and
    marked apart from the answer. The browser sets each piece's direction from its first letter (dir="auto")."""
    context = "القاهرة هي عاصمة مصر. يمر نهر النيل عبر المدينة."
    block = views.answer_html(context, (22, len(context)), context[22:], "probability 20%")
    assert '<div class="qa-headline" dir="auto">' in block and '<div class="qa-context" dir="auto"' in block
    assert '<div class="qa-detail">' in block  # the app's own words stay left to right


def test_a_job_still_loading_says_so_rather_than_step_0_of_0():
    """Found by a tester: a resumed job said "Step 0/0 · epoch 0.00" while its model and data loaded (a new job
    too): no step count is known before the job's first progress event."""
    from qa_core.jobs import JobSnapshot

    loading = JobSnapshot(3, "starting", "runs/x", message="loading the model and the data", elapsed_s=4.0)
    for snapshot in (loading, replace(loading, status="cancelling")):
        assert views.job_text(snapshot).splitlines()[2] == "loading… · elapsed 4s", views.job_text(snapshot)
    failed = replace(loading, status="failed", message="failed: bad data")
    assert views.job_text(failed).splitlines()[2] == "elapsed 4s"  # ended before its first step: no steps to count
    resumed = replace(loading, status="running", step=40, total_steps=60, epoch=1.5)
    assert views.job_text(resumed).splitlines()[2] == "Step 40/60 · epoch 1.50 · elapsed 4s"


def test_a_span_across_a_paragraph_break_is_quoted_as_it_reads():
    """Found by a tester: the abstention's note and the explanation's quoted a span across paragraphs as a Python
    repr, '...rainforest.\\n\\nThe rainforest...'."""
    context = "It rained.\n\nThe forest grew."
    assert views.explained_note(context, (3, 22)) == ("The model abstained on this question: these attributions "
                                                      "explain the best span it passed over, 'rained. The forest'. ")


def test_the_question_table_says_how_many_questions_its_filters_let_through():
    """Found by a tester: filters that matched nothing left an empty table under a summary of 120 questions."""
    assert views.matched_note(120, 120) == ""
    assert views.matched_note(12, 120) == "12 of 120 questions match the filters"
    assert views.matched_note(0, 1_200) == "None of 1,200 questions match the filters"
