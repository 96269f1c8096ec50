"""The upload budget of a public server: what it refuses, and what its refusals tell the uploader."""

from __future__ import annotations

import asyncio
from pathlib import Path

from qa_core.ui.upload_budget import UploadBudget


def test_an_upload_larger_than_the_whole_budget_is_not_told_to_try_again_later(tmp_path: Path) -> None:
    """A host may let one file (QA_MAX_UPLOAD_MB) be larger than all uploads together (QA_MAX_UPLOADS_MB): such
    a file can never fit, so waiting for the sweep is no advice."""
    budget = UploadBudget(tmp_path, max_bytes=1_000_000, sweep_age_s=3600)
    declared = asyncio.run(budget.admit(1, 2_000_000))
    assert declared is not None and "try again later" not in declared
    assert "2.0 MB" in declared and "1.0 MB" in declared and "QA_MAX_UPLOADS_MB" in declared
    assert asyncio.run(budget.admit(2, 0)) is None  # no length declared: counted as it arrives
    sent = budget.receive(2, 1_500_000)
    assert sent is not None and "try again later" not in sent and "QA_MAX_UPLOADS_MB" in sent


def test_an_upload_that_would_fit_an_empty_budget_is_told_to_try_again_later(tmp_path: Path) -> None:
    budget = UploadBudget(tmp_path, max_bytes=1_000_000, sweep_age_s=3600)
    assert asyncio.run(budget.admit(1, 600_000)) is None
    budget.receive(1, 600_000)
    budget.end(1)
    refused = asyncio.run(budget.admit(2, 600_000))
    assert refused is not None and "try again later" in refused and "1.0 MB" in refused
