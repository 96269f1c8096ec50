"""What the Errors tab shows besides a SQuAD 2.0 run's threshold: its caveat and its question table's note."""

from __future__ import annotations

from qa_core import errors_views
from qa_core.checkpoints import write_run_info
from qa_core.run_files import RunInfo


def test_a_run_evaluated_on_its_training_data_says_so(tmp_path) -> None:
    write_run_info(tmp_path / "same", RunInfo("finished", {"train_file": "sample", "validation_file": "sample"}))
    write_run_info(tmp_path / "held", RunInfo("finished", {"train_file": "a.json", "validation_file": "b.json"}))
    assert "its own training data" in errors_views.evaluation_caveat(str(tmp_path / "same"))
    assert errors_views.evaluation_caveat(str(tmp_path / "held")) == ""
    assert errors_views.evaluation_caveat(str(tmp_path / "missing")) == ""



def test_the_question_table_says_how_many_questions_its_filters_let_through():
    """Found by a tester: filters that matched nothing left an empty table under a summary of 120 questions."""
    assert errors_views.matched_note(120, 120) == ""
    assert errors_views.matched_note(12, 120) == "12 of 120 questions match the filters"
    assert errors_views.matched_note(0, 1_200) == "None of 1,200 questions match the filters"
