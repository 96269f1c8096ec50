"""Refusals said two ways: one check, train.py's words in str(), the web app's in web_wording."""

from __future__ import annotations

import pytest

from qa_core.evaluation import UnscorableData
from qa_core.run_files import RunRefused
from qa_core.training import TrainingError
from qa_core.wording import TwoWordings, web_wording


@pytest.mark.parametrize("kind, base", [(RunRefused, ValueError), (UnscorableData, ValueError),
                                        (TrainingError, RuntimeError)])
def test_each_refusal_keeps_its_base_and_both_wordings(kind: type[TwoWordings], base: type[Exception]) -> None:
    err = kind("resume with --resume", "press Resume")
    assert isinstance(err, base) and str(err) == "resume with --resume"
    assert web_wording(err) == "press Resume"


def test_other_errors_are_said_as_they_are() -> None:
    assert web_wording(ValueError("max_steps must be positive")) == "max_steps must be positive"
