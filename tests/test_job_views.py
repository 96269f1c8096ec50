"""How the training job is shown: its status lines."""

from __future__ import annotations

from dataclasses import replace

from qa_core import job_views


def test_the_job_line_says_what_its_eta_counts_and_names_the_status_once():
    """Found by trying the app: "ETA 6m 34s (evaluations included)" at step 1, before any evaluation had run (the
    estimate counts them only once one has); "ETA 0s" while the last evaluation ran; "cancelled · cancelled; …"."""
    from qa_core.jobs import JobSnapshot

    running = JobSnapshot(2, "running", "runs/x", step=1, total_steps=60, windows_per_s=9.0, eta_s=394.0)
    assert "ETA 6m 34s (training steps only until an evaluation has run)" in job_views.job_text(running)
    evaluated = replace(running, step=30, metrics={"exact_match": 10.0, "f1": 20.0})
    assert "ETA 6m 34s (evaluations included)" in job_views.job_text(evaluated)
    last = replace(evaluated, step=60, eta_s=0.0)
    assert "ETA" not in job_views.job_text(last) and "last step done" in job_views.job_text(last)
    cancelled = JobSnapshot(2, "cancelled", "runs/x", message="cancelled; resumable from its checkpoint")
    assert job_views.job_text(cancelled).splitlines()[0] == "Job 2: cancelled · resumable from its checkpoint"


def test_a_job_still_loading_says_so_rather_than_step_0_of_0():
    """Found by a tester: a resumed job said "Step 0/0 · epoch 0.00" while its model and data loaded (a new job
    too): no step count is known before the job's first progress event."""
    from qa_core.jobs import JobSnapshot

    loading = JobSnapshot(3, "starting", "runs/x", message="loading the model and the data", elapsed_s=4.0)
    for snapshot in (loading, replace(loading, status="cancelling")):
        assert job_views.job_text(snapshot).splitlines()[2] == "loading… · elapsed 4s", job_views.job_text(snapshot)
    failed = replace(loading, status="failed", message="failed: bad data")
    assert job_views.job_text(failed).splitlines()[2] == "elapsed 4s"  # ended before its first step: no steps to count
    resumed = replace(loading, status="running", step=40, total_steps=60, epoch=1.5)
    assert job_views.job_text(resumed).splitlines()[2] == "Step 40/60 · epoch 1.50 · elapsed 4s"
