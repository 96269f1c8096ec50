"""Calibration: temperature scaling of stored probabilities, reliability bins, ECE, coverage and the stored fit."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from qa_core import calibration, calibration_views, charts, coverage
from qa_core.error_analysis import QuestionRecord, write_records
from qa_core.postprocess import Prediction, Span
from qa_core.run_files import NULL_ODDS_FILE, RECORDS_FILE


def record(n: int, probabilities: tuple[float, ...], right: bool, f1: float | None = None) -> QuestionRecord:
    texts = ("paris", "lyon", "nice", "metz", "caen")
    alternatives = tuple(zip(texts, probabilities))
    return QuestionRecord(f"q{n}", "Where?", "paris lyon nice metz caen", ("paris",), ((0, 5),),
                          texts[0] if probabilities else "", (0, 5) if probabilities else None, 1.0,
                          100.0 if right else 0.0, (100.0 if right else 0.0) if f1 is None else f1, alternatives)


def write_evaluated(folder: Path, records: list[QuestionRecord]) -> calibration.Calibration:
    """The records and their calibration.json, as every evaluation writes them (evaluation.write_eval_outputs)."""
    write_records(folder / RECORDS_FILE, records)
    fitted = calibration.fit_calibration(records)
    calibration.write_calibration(folder, fitted)
    return fitted


def overconfident_records(count: int = 2000, true_temperature: float = 2.0) -> list[QuestionRecord]:
    """Answers right with probability q, stored with q sharpened by 1/true_temperature (overconfident)."""
    rng = np.random.default_rng(0)
    records = []
    for n in range(count):
        true = np.array([rng.uniform(0.2, 0.9), 0.0, 0.0])
        true[1] = (1 - true[0]) * 0.6
        true[2] = 1 - true[0] - true[1]  # the remainder beyond the stored top 2
        stored = calibration.scale_probabilities(true, 1 / true_temperature)
        records.append(record(n, tuple(stored[:2]), bool(rng.random() < true[0])))
    return records


def test_temperature_one_changes_nothing_and_others_keep_the_order():
    p = np.array([0.5, 0.2, 0.1, 0.2])
    np.testing.assert_allclose(calibration.scale_probabilities(p, 1.0), p)
    flatter, sharper = calibration.scale_probabilities(p, 3.0), calibration.scale_probabilities(p, 0.3)
    assert flatter[0] < 0.5 < sharper[0]
    for scaled in (flatter, sharper):
        assert scaled.sum() == pytest.approx(1.0) and np.argmax(scaled) == 0
    with pytest.raises(ValueError, match="temperature"):
        calibration.scale_probabilities(p, 0.0)


def test_confidence_is_the_first_alternative_and_zero_without_one():
    records = [record(0, (0.6, 0.3), True), record(1, (), False)]
    np.testing.assert_allclose(calibration.confidences(records), [0.6, 0.0])


def test_reliability_bins_and_ece_on_known_values():
    confidence = np.array([0.95, 0.95, 0.15, 1.0])
    exact = np.array([1.0, 0.0, 0.0, 1.0])
    bins = calibration.reliability_bins(confidence, exact, exact * 0.5, bins=10)
    assert [b.questions for b in bins] == [0, 1, 0, 0, 0, 0, 0, 0, 0, 3]  # 1.0 falls in the last bin
    top = bins[-1]
    assert top.mean_probability == pytest.approx((0.95 + 0.95 + 1.0) / 3)
    assert top.exact_fraction == pytest.approx(2 / 3) and top.mean_f1 == pytest.approx(1 / 3)
    expected = 3 / 4 * abs(2 / 3 - 2.9 / 3) + 1 / 4 * abs(0 - 0.15)
    assert calibration.expected_calibration_error(bins) == pytest.approx(expected)


def test_fit_recovers_an_overconfidence_temperature_and_lowers_ece():
    records = overconfident_records()
    fitted = calibration.fit_calibration(records)
    assert 1.6 < fitted.temperature < 2.5
    assert fitted.ece_after < fitted.ece_before
    assert fitted.questions == len(records) and len(fitted.bins_after) == calibration.BINS


def test_calibration_is_stored_in_the_run_and_rescales_ask_predictions(tmp_path):
    assert calibration.read_calibration(tmp_path) is None and calibration.run_calibration(tmp_path) is None
    fitted = write_evaluated(tmp_path, overconfident_records(400))
    assert calibration.read_calibration(tmp_path) == fitted
    assert calibration.run_calibration(tmp_path).temperature == fitted.temperature
    spans = (Span(0, 5, "paris", 3.0, 0.7), Span(6, 10, "lyon", 2.0, 0.2))
    prediction = Prediction("q", "paris", (0, 5), 3.0, spans)
    rescaled = calibration.rescale_prediction(prediction, fitted.temperature)
    assert [s.text for s in rescaled.alternatives] == ["paris", "lyon"]
    assert rescaled.alternatives[0].probability < 0.7  # a temperature above 1 tempers the confidence
    assert calibration.rescale_prediction(prediction, 1.0) == prediction
    (tmp_path / calibration.CALIBRATION_FILE).write_text("{}", encoding="utf-8")
    with pytest.raises(ValueError, match="calibration.json"):
        calibration.read_calibration(tmp_path)


@pytest.mark.parametrize("temperature", [0.5, 3.0])
def test_spans_outside_the_first_five_texts_are_scaled_as_their_share_of_the_rest(temperature):
    """The first five distinct texts are scaled with the rest of the mass, as their record was fitted; a text's
    second place and the spans after the fifth text share the rest's scaled mass by the same rule, best first."""
    probabilities = (0.4, 0.2, 0.1, 0.08, 0.06, 0.05, 0.04)  # 0.07 of the mass in spans never listed
    texts = ("t0", "t1", "t0", "t3", "t4", "t5", "t6")  # t0 twice: its second place is not one of the five
    spans = tuple(Span(i, i + 1, t, 10.0 - i, p) for i, (t, p) in enumerate(zip(texts, probabilities)))
    scaled = [s.probability for s in calibration.rescale_prediction(Prediction("q", "t0", (0, 1), 10.0, spans),
                                                                    temperature).alternatives]
    five = np.array([0.4, 0.2, 0.08, 0.06, 0.05])
    expected = calibration.scale_probabilities(np.append(five, 1 - five.sum()), temperature)
    assert [scaled[i] for i in (0, 1, 3, 4, 5)] == pytest.approx(expected[:-1])
    rest = expected[-1]
    assert scaled[2] == pytest.approx(rest * (0.1 / (1 - five.sum())) ** (1 / temperature))
    assert scaled[6] / scaled[2] == pytest.approx((0.04 / 0.1) ** (1 / temperature))


def test_coverage_curve_matches_counting_by_hand():
    records = [record(0, (0.9,), True), record(1, (0.7,), False, 50.0), record(2, (0.4,), True), record(3, (), False)]
    curve = coverage.coverage_curve(records)
    assert curve[0].threshold == 0.0 and curve[0].coverage == 1.0 and curve[0].exact_match == 50.0
    point = coverage.coverage_at(records, 0.7)
    assert (point.answered, point.coverage, point.exact_match, point.f1) == (2, 0.5, 50.0, 75.0)
    assert coverage.coverage_at(records, 0.95).answered == 0
    assert all(a.coverage >= b.coverage for a, b in zip(curve, curve[1:]))
    with pytest.raises(ValueError, match="threshold"):
        coverage.coverage_at(records, 1.5)


def test_reliability_and_coverage_figures():
    records = overconfident_records(300)
    fitted = calibration.fit_calibration(records)
    figure = charts.reliability_figure(fitted.bins_before, fitted.ece_before, calibrated=fitted.bins_after)
    assert [t.name for t in figure.data] == ["fraction exactly right", "mean F1 / 100", "perfect calibration",
                                             "after temperature scaling"]
    assert f"{fitted.ece_before:.3f}" in figure.layout.title.text
    chosen = coverage.coverage_at(records, 0.5, fitted.temperature)
    curve = charts.coverage_figure(coverage.coverage_curve(records, fitted.temperature), chosen)
    assert [t.name for t in curve.data] == ["EM", "F1", "threshold 0.50"]
    assert list(curve.data[2].x) == [chosen.coverage, chosen.coverage]
    assert min(curve.data[0].x) > 0  # a threshold above every probability answers nothing: no score to draw
    for shown in (figure, curve):  # a phone shows about 40 characters of a title, and a legend beside the
        # plot left it a fifth of the width: the title fits, the legend's rows sit below the plot (above, they
        # wrapped over the title)
        assert all(len(re.sub("<[^>]+>", "", line)) <= 40 for line in shown.layout.title.text.split("<br>"))
        assert shown.layout.legend.orientation == "h" and shown.layout.legend.y < 0


def test_a_narrow_band_of_confidences_still_draws_the_curve():
    """Every probability within a hundredth: on a fixed grid of thresholds every step answered all questions or
    none, so the curve was one point at full coverage, which a line does not draw."""
    records = [record(n, (0.503 + 0.0002 * n, 0.1), n % 3 == 0) for n in range(20)]
    figure = charts.coverage_figure(coverage.coverage_curve(records), coverage.coverage_at(records, 0.505))
    coverages = sorted(set(figure.data[0].x))
    assert len(coverages) == 20 and coverages[0] == pytest.approx(1 / 20) and coverages[-1] == 1.0


def test_a_threshold_above_every_confidence_puts_no_point_at_zero():
    """No question answered has no EM or F1: the chosen point is not drawn at (0, 0) as if it scored 0."""
    records = [record(n, (0.2 + 0.001 * n,), n % 2 == 0) for n in range(10)]
    chosen = coverage.coverage_at(records, 0.5)
    assert chosen.answered == 0
    figure = charts.coverage_figure(coverage.coverage_curve(records), chosen)
    assert (0.0, 0.0) not in {(x, y) for trace in figure.data for x, y in zip(trace.x, trace.y)}
    assert any("threshold 0.50" in a.text and "no question" in a.text for a in figure.layout.annotations)


def v2_record(n: int, probability: float, answered: bool, answerable: bool) -> QuestionRecord:
    """A SQuAD 2.0 record whose best span 'paris' has this probability, answered or abstained, on a question with
    'paris' as its answer or with none; scored as evaluate-v2.0.py scores it."""
    score = 100.0 if answered == answerable else 0.0
    return QuestionRecord(f"q{n}", "Where?", "paris lyon", ("paris",) if answerable else (),
                          ((0, 5),) if answerable else (), "paris" if answered else "", (0, 5) if answered else None,
                          1.0, score, score, (("paris", probability), ("lyon", 1 - probability)),
                          null_odds=-1.0 if answered else 1.0, best_span=(0, 5),
                          span_exact=100.0 * answerable, span_f1=100.0 * answerable)


def test_a_squad2_run_calibrates_its_answers_and_leaves_its_abstentions_out():
    """An abstention scores 100 on an unanswerable question, but the probability it carries is its best span's,
    which it did not give: counted, ten right abstentions at 0.95 made answers right half the time look right
    three times in four."""
    answers = [v2_record(n, 0.95, True, n % 2 == 0) for n in range(10)]  # half of them answer the unanswerable
    abstentions = [v2_record(10 + n, 0.95, False, False) for n in range(10)]
    fitted = calibration.fit_calibration(answers + abstentions)
    top = fitted.bins_before[-1]
    assert (top.questions, top.exact_fraction) == (10, 0.5)
    assert (fitted.questions, fitted.abstentions) == (10, 10)
    assert fitted.temperature == calibration.fit_calibration(answers).temperature
    figure = charts.reliability_figure(fitted.bins_before, fitted.ece_before, fitted.bins_after, fitted.abstentions)
    assert "10 abstentions left out" in figure.layout.title.text
    assert "answered" in figure.layout.xaxis.title.text
    assert "10 answered evaluation questions" in calibration_views.calibration_text(fitted)
    point = coverage.coverage_at(answers + abstentions, 0.0)  # an abstention is never answered
    assert (point.answered, point.coverage, point.exact_match) == (10, 0.5, 50.0)
    everything = calibration.fit_calibration(abstentions)  # nothing answered: nothing to fit, probabilities kept
    assert (everything.temperature, everything.questions, everything.abstentions) == (1.0, 0, 10)
    assert calibration.fit_calibration(answers).abstentions == 0
    with pytest.raises(ValueError, match="no evaluation records"):
        calibration.fit_calibration([])
    mixed = calibration.replace(fitted, abstentions=None)  # a calibration.json from before abstentions were left out
    assert calibration.current_calibration(mixed, answers + abstentions) == fitted
    assert calibration.current_calibration(mixed, answers) == mixed  # a run without abstentions keeps its file


def test_answers_ignore_a_squad2_calibration_fitted_with_abstentions_mixed_in(tmp_path):
    """A calibration.json from before abstentions were left out holds a temperature fitted on them: the Ask tab and
    /answer answer with the model's own probabilities until the run is evaluated again."""
    count = calibration.MIN_CALIBRATION_QUESTIONS  # enough answers to fit a temperature on, 7 in 10 right
    answers = [v2_record(n, 0.55 + 0.4 * (n % 9) / 8, True, n % 10 < 7) for n in range(count)]
    abstentions = [v2_record(count + n, 0.95, False, False) for n in range(10)]
    fitted = write_evaluated(tmp_path, answers + abstentions)
    (tmp_path / NULL_ODDS_FILE).write_text("{}", encoding="utf-8")  # what a SQuAD 2.0 evaluation writes
    assert fitted.unfitted is None and calibration.answer_calibration(str(tmp_path))[0] == fitted.temperature != 1.0
    calibration.write_calibration(tmp_path, calibration.replace(fitted, abstentions=None, temperature=3.0))
    assert calibration.answer_calibration(str(tmp_path))[0] is None
    (tmp_path / NULL_ODDS_FILE).unlink()  # a SQuAD v1.1 run: its older file stays usable
    assert calibration.answer_calibration(str(tmp_path))[0] == 3.0


def test_too_few_answered_questions_fit_no_temperature(tmp_path):
    """A SQuAD 2.0 run that answered 1 question of 60 stored a temperature of e^-3 fitted on that one answer
    (ECE 0 after), and /answer then gave every answer probability 1.0 as 'calibrated'."""
    answers = [v2_record(0, 0.6, True, True)]
    abstentions = [v2_record(1 + n, 0.95, False, False) for n in range(59)]
    fitted = calibration.fit_calibration(answers + abstentions)
    assert (fitted.temperature, fitted.questions, fitted.abstentions) == (1.0, 1, 59)
    assert fitted.ece_after == fitted.ece_before and fitted.bins_after == fitted.bins_before
    assert "too few" in fitted.unfitted and f"{calibration.MIN_CALIBRATION_QUESTIONS} needed" in fitted.unfitted
    shown = calibration_views.calibration_text(fitted)
    assert shown.startswith("No temperature fitted: too few") and "T = " not in shown
    write_records(tmp_path / RECORDS_FILE, answers + abstentions)
    (tmp_path / NULL_ODDS_FILE).write_text("{}", encoding="utf-8")
    calibration.write_calibration(tmp_path, fitted)
    assert calibration.read_calibration(tmp_path) == fitted
    assert calibration.answer_calibration(str(tmp_path)) == (None, fitted.unfitted)


def test_a_calibration_file_from_before_the_minimum_is_read_as_unfitted(tmp_path):
    """The file that run stored, without the unfitted field: its temperature at the grid's edge is not applied."""
    bins = [{"low": 0.9, "high": 1.0, "questions": 1, "mean_probability": 0.6, "exact_fraction": 1.0, "mean_f1": 1.0}]
    old = {"temperature": float(np.exp(-3.0)), "ece_before": 0.4, "ece_after": 0.0, "questions": 1,
           "bins_before": bins, "bins_after": [{**bins[0], "mean_probability": 1.0}], "abstentions": 59}
    (tmp_path / calibration.CALIBRATION_FILE).write_text(json.dumps(old), encoding="utf-8")
    stored = calibration.read_calibration(tmp_path)
    assert (stored.temperature, stored.ece_after, stored.questions) == (1.0, 0.4, 1)
    assert stored.bins_after == stored.bins_before and "too few" in stored.unfitted
    assert calibration.answer_calibration(str(tmp_path))[0] is None


def test_a_fit_at_the_edge_of_the_searched_temperatures_is_not_applied():
    """Answers all right at 0.6 keep lowering the log loss as T falls: the grid search stops at its edge, e^-3,
    a temperature the records do not pin down (the optimum lies beyond what was searched)."""
    records = [record(n, (0.6, 0.3), True) for n in range(calibration.MIN_CALIBRATION_QUESTIONS)]
    assert calibration.fit_temperature(records) == pytest.approx(np.exp(calibration.LOG_TEMPERATURES[0]))
    fitted = calibration.fit_calibration(records)
    assert fitted.temperature == 1.0 and "edge" in fitted.unfitted
    assert calibration.fit_calibration(overconfident_records()).unfitted is None
    # the flat edge is kept: all wrong at 0.9, flattening keeps helping, and e^3 beats showing 0.9 (found in review)
    wrong = [record(n, (0.9, 0.05), False) for n in range(calibration.MIN_CALIBRATION_QUESTIONS)]
    kept = calibration.fit_calibration(wrong)
    assert kept.unfitted is None and kept.temperature == pytest.approx(np.exp(calibration.LOG_TEMPERATURES[-1]))


def test_calibration_texts_count_in_the_singular_and_say_when_nothing_was_answered():
    """Found by trying the panel: 'its 1 abstentions'; and a run that answered nothing got an ECE of 0.000 'on this
    run's 0 answered evaluation questions' and 'EM 0.0 · F1 0.0' on 0 questions answered, as if measured."""
    one = [v2_record(0, 0.9, True, True), v2_record(1, 0.9, False, False)]
    shown = calibration_views.calibration_text(calibration.fit_calibration(one))
    assert "1 answered evaluation question;" in shown and "its 1 abstention is left out" in shown, shown
    assert calibration_views.coverage_text(coverage.coverage_at(one, 0.5)).startswith(
        "Answering only above 0.50: 1 question answered (50%)")
    figure = charts.reliability_figure((), 0.0, (), 1)
    assert "1 abstention left out" in figure.layout.title.text
    drawn = charts.coverage_figure((), coverage.coverage_at(one, 0.5), 1)
    assert "1 abstention never answered" in drawn.layout.title.text
    none = [v2_record(n, 0.9, False, False) for n in range(3)]
    shown = calibration_views.calibration_text(calibration.fit_calibration(none))
    assert shown.startswith("Nothing to measure: none of this run's evaluation questions was answered (3 abstentions)")
    assert "0.000" not in shown and "0 answered" not in shown
    # found by a tester: the diagram beside that text said "Reliability (ECE 0.000)", the coverage axis -1 to 4
    assert "ECE" not in charts.reliability_figure((), 0.0, (), 3).layout.title.text
    assert list(charts.coverage_figure((), coverage.coverage_at(none, 0.5), 3).layout.yaxis.range) == [0, 100]
    assert calibration_views.coverage_text(coverage.coverage_at(none, 0.5)) == (
        "Answering only above 0.50: no question answered, so there is no EM or F1 to measure")


def test_an_evaluation_folder_s_calibration_does_not_speak_for_the_ask_tab(tmp_path):
    """Found by trying the panel on a `train.py evaluate --output_dir` folder: it said the Ask tab shows
    probabilities at its temperature, but that folder has no model the Ask tab could answer with."""
    from qa_core.settings import Settings
    from qa_core.service import QAService
    from qa_core.ui.calibration_panel import CalibrationHandlers

    folder = tmp_path / "eval-only"
    folder.mkdir()
    write_evaluated(folder, overconfident_records(200))
    shown = CalibrationHandlers(QAService(Settings(tmp_path, training_enabled=False, fast_inference=False))).show(
        "eval-only", 0.5)["calibration"]
    assert "T = " in shown and "Ask tab" not in shown and "this folder has no model" in shown, shown
    assert "the Ask tab shows probabilities at this temperature" in calibration_views.calibration_text(
        calibration.read_calibration(folder))  # a run with its model


def test_a_run_stopped_before_its_model_is_called_a_run_not_an_evaluation(tmp_path):
    """Found in review: the panel told a folder without a model for an evaluation folder, so a cancelled run
    with the records of an epoch's evaluation was called 'this evaluation's'. It is a run without a model."""
    from qa_core.checkpoints import write_run_info
    from qa_core.config import QAConfig
    from qa_core.settings import Settings
    from qa_core.run_files import RunInfo
    from qa_core.service import QAService
    from qa_core.ui.calibration_panel import CalibrationHandlers

    folder = tmp_path / "stopped"
    write_run_info(folder, RunInfo("cancelled", QAConfig(output_dir=str(folder)).to_dict()))
    write_evaluated(folder, overconfident_records(200))
    shown = CalibrationHandlers(QAService(Settings(tmp_path, training_enabled=False, fast_inference=False))).show(
        "stopped", 0.5)["calibration"]
    assert "this run's" in shown and "this evaluation's" not in shown and "this folder has no model" in shown, shown


def favour_word(loaded, word: str) -> None:
    """Make the model's start and end logits far higher on the word's tokens than anywhere else, so that its
    best spans are that word at each of its places: one text, repeated."""
    word_id = loaded.tokenizer.convert_tokens_to_ids(word)

    def favour(module, args, kwargs, output):
        on_word = (kwargs["input_ids"] == word_id).float() * 10.0  # (batch, seq)
        output.start_logits = output.start_logits + on_word
        output.end_logits = output.end_logits + on_word
        return output

    loaded.model.register_forward_hook(favour, with_kwargs=True)


@pytest.mark.parametrize("temperature", [0.5, 2.0])
def test_an_answer_shows_the_probability_its_record_is_fitted_on(tiny_loaded, temperature):
    """A context repeating one word gives top spans repeating one text. The run's temperature is fitted on each
    record's first five distinct texts and the rest; the Ask tab's answer must scale the same vector, or the
    probability it shows is not the one the fit calibrated."""
    from qa_core.config import QAConfig
    from qa_core.data import Answer, Example
    from qa_core.error_analysis import build_record
    from qa_core.inference import answer_question, question_windows, run_model
    from qa_core.postprocess import SpanSearch, distinct_texts, predict_example

    question, context = "Which city?", "Paris, Paris and Paris again; then Lyon, Nice, Metz, Caen and Paris."
    favour_word(tiny_loaded, "paris")
    answered = answer_question(tiny_loaded, question, context).prediction
    example, config, features = question_windows(tiny_loaded, question, context, QAConfig())
    start, end = run_model(tiny_loaded.model, features, 8, batch_format=tiny_loaded.batch_format)
    evaluated = predict_example(example, list(zip(features, start, end)), SpanSearch.from_config(config))
    record_ = build_record(Example("q", question, context, (Answer("Paris", 0),)), evaluated)
    assert len(distinct_texts(answered.alternatives)) == len(record_.alternatives) == 5
    shown = calibration.rescale_prediction(answered, temperature).alternatives[0].probability
    assert shown == pytest.approx(calibration.confidences([record_], temperature)[0])


def worse_after_scaling() -> list[QuestionRecord]:
    """Half right at 0.45 and all right at 0.3: the log loss is lowest at the flattest temperature searched, which
    moves the 0.3 answers further from their 100% (a reviewer saw ECE rise after scaling on a small run)."""
    return [record(n, (0.45, 0.275), n % 2 == 0) for n in range(40)] + \
        [record(n, (0.3, 0.35), True) for n in range(40, 80)]


def test_a_temperature_that_raises_the_calibration_error_is_not_applied(tmp_path):
    """Found in review: the Ask tab said "calibrated" at a temperature whose ECE was worse than none."""
    fitted = calibration.fit_calibration(worse_after_scaling())
    assert fitted.temperature == 1.0 and fitted.ece_after == fitted.ece_before
    assert "did not lower" in fitted.unfitted
    assert calibration_views.calibration_text(fitted).startswith("No temperature fitted: scaling")
    stored = calibration.replace(fitted, temperature=20.0, ece_after=fitted.ece_before + 0.04, unfitted=None)
    calibration.write_calibration(tmp_path, stored)  # a file an earlier version wrote
    assert calibration.answer_calibration(str(tmp_path)) == (None, calibration.read_calibration(tmp_path).unfitted)
    assert "did not lower" in calibration.read_calibration(tmp_path).unfitted
