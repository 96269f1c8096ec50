"""What the calibration panel shows: how far a run's probabilities can be trusted, and what abstaining buys."""

from __future__ import annotations

from typing import TYPE_CHECKING

from qa_core.wording import count

if TYPE_CHECKING:  # types only: calibration and coverage compute with numpy, which these texts never need
    from qa_core.calibration import Calibration
    from qa_core.coverage import CoveragePoint


def calibration_text(calibration: Calibration, has_model: bool = True, evaluation: bool = False) -> str:
    """ECE before and after, the temperature, and what it was fitted on: a SQuAD 2.0 run's answers only; or why
    no temperature was fitted, with the ECE of the probabilities as the model gives them. has_model: whether the
    folder has a model the Ask tab answers with (an evaluation folder has none, nor a run stopped before its
    end, so no answer uses its fit); evaluation: an evaluation folder's, not a run's."""
    whose = "this evaluation's" if evaluation else "this run's"
    if calibration.questions == 0:  # a SQuAD 2.0 run that abstained everywhere: an ECE of 0.000 would say "perfect"
        left = f" ({count(calibration.abstentions, 'abstention')})" if calibration.abstentions else ""
        return (f"Nothing to measure: none of {whose} evaluation questions was answered{left}, so there is no "
                f"answer probability to check or calibrate")
    questions = f"{whose} {fitted_on(calibration)}"
    if calibration.unfitted is not None:
        ask = ("the Ask tab shows the probabilities as the model gives them, uncalibrated" if has_model else
               "this folder has no model to answer with")
        return (f"No temperature fitted: {calibration.unfitted}. Expected calibration error "
                f"{calibration.ece_before:.3f} on {questions}; {ask}")
    ask = ("the Ask tab shows probabilities at this temperature" if has_model else
           "this folder has no model to answer with, so no answer is shown at it")
    return (f"Expected calibration error {calibration.ece_before:.3f} before and {calibration.ece_after:.3f} after "
            f"temperature scaling (T = {calibration.temperature:.2f}, fitted on {questions}; {ask})")


def fitted_on(calibration: Calibration) -> str:
    """The questions a calibration measured: a SQuAD 2.0 run's answered ones, saying its abstentions are left out."""
    if not calibration.abstentions:
        return count(calibration.questions, "evaluation question")
    verb = "is" if calibration.abstentions == 1 else "are"
    return (f"{count(calibration.questions, 'answered evaluation question')}; its "
            f"{count(calibration.abstentions, 'abstention')} {verb} left out, having no answer probability")


def coverage_text(point: CoveragePoint) -> str:
    if point.answered == 0:  # "EM 0.0 · F1 0.0 on those" read as measured, on nothing
        return f"Answering only above {point.threshold:.2f}: no question answered, so there is no EM or F1 to measure"
    those = "it" if point.answered == 1 else "those"
    return (f"Answering only above {point.threshold:.2f}: {count(point.answered, 'question')} answered "
            f"({100 * point.coverage:.0f}%), EM {point.exact_match:.1f} · F1 {point.f1:.1f} on {those}")
