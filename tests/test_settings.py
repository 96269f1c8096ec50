"""Server settings from the QA_* environment variables."""

from __future__ import annotations

import pytest

from qa_core.settings import Settings, TrainLimits


def test_settings_from_the_environment(monkeypatch, tmp_path):
    for name in ("QA_PUBLIC", "QA_ENABLE_TRAINING", "QA_DISABLE_TRAINING", "QA_ALLOWED_MODELS", "QA_MAX_UPLOAD_MB",
                 "QA_MAX_UPLOADS_MB", "QA_MAX_TRAIN_STEPS", "QA_MAX_BATCH_SIZE", "QA_MAX_EPOCHS", "QA_MAX_SEQ_LENGTH", "QA_MAX_RUNS"):
        monkeypatch.delenv(name, raising=False)
    assert Settings.from_env().training_enabled and not Settings.from_env().public
    assert Settings.from_env().max_runs is None  # a local server keeps every run
    monkeypatch.setenv("QA_PUBLIC", "1")
    monkeypatch.setenv("QA_ALLOWED_MODELS", "org/a, org/b ,")
    monkeypatch.setenv("QA_MAX_UPLOAD_MB", "2")
    monkeypatch.setenv("QA_MAX_UPLOADS_MB", "20")
    public = Settings.from_env()
    assert public.public and not public.training_enabled  # public implies training off...
    assert public.allowed_models == ("org/a", "org/b") and public.max_upload_bytes == 2_000_000
    assert public.max_uploads_bytes == 20_000_000
    assert public.max_runs == 8
    monkeypatch.setenv("QA_MAX_RUNS", "3")
    assert Settings.from_env().max_runs == 3
    monkeypatch.setenv("QA_ENABLE_TRAINING", "1")
    assert Settings.from_env().training_enabled  # ...unless QA_ENABLE_TRAINING says otherwise
    assert Settings.from_env().train_limits == TrainLimits()
    monkeypatch.setenv("QA_MAX_TRAIN_STEPS", "50")
    monkeypatch.setenv("QA_MAX_EPOCHS", "2.5")
    assert Settings.from_env().train_limits == TrainLimits(max_steps=50, epochs=2.5)
    monkeypatch.setenv("QA_MAX_UPLOAD_MB", "lots")
    with pytest.raises(ValueError, match="QA_MAX_UPLOAD_MB='lots' is not a number"):
        Settings.from_env()


@pytest.mark.parametrize("value", ["nan", "1e999", "9" * 5000])
def test_a_limit_that_is_no_finite_number_is_refused_naming_its_variable(monkeypatch, value):
    """Found with a tester's 5,000-digit numbers: float() reads them as infinity, which int() refused as 'cannot
    convert float infinity to integer' (an OverflowError), naming no variable."""
    monkeypatch.setenv("QA_MAX_TRAIN_STEPS", value)
    with pytest.raises(ValueError, match=f"QA_MAX_TRAIN_STEPS='{value}' is not a finite number"):
        Settings.from_env()
