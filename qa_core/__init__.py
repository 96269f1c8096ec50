"""Extractive question answering on SQuAD-format data: load, featurize, fine-tune, evaluate, answer."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# The public API, name -> module. Loaded on first use, so `import qa_core` (and the CLI's --help) stays free of
# torch and transformers.
_EXPORTS = {
    "QAConfig": "qa_core.config",
    "configure_process": "qa_core.runtime",
    "load_examples": "qa_core.data",
    "Example": "qa_core.data",
    "Answer": "qa_core.data",
    "DataError": "qa_core.data",
    "load_model": "qa_core.modeling",
    "LoadedModel": "qa_core.modeling",
    "ModelNotFoundError": "qa_core.modeling",
    "answer_question": "qa_core.inference",
    "answer_examples": "qa_core.inference",
    "AnswerResult": "qa_core.inference",
    "run_config": "qa_core.run_settings",
    "run_evaluation": "qa_core.evaluation",
    "EvalResult": "qa_core.evaluation",
    "compute_metrics": "qa_core.metrics",
    "Metrics": "qa_core.metrics",
    "train": "qa_core.training",
    "TrainResult": "qa_core.training",
    "render_model_card": "qa_core.model_card",
    "push_run": "qa_core.model_card",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:  # for type checkers: the names __getattr__ loads (ruff does not read the starred __all__)
    from qa_core.config import QAConfig  # noqa: F401
    from qa_core.data import Answer, DataError, Example, load_examples  # noqa: F401
    from qa_core.evaluation import EvalResult, run_evaluation  # noqa: F401
    from qa_core.inference import AnswerResult, answer_examples, answer_question  # noqa: F401
    from qa_core.metrics import Metrics, compute_metrics  # noqa: F401
    from qa_core.model_card import push_run, render_model_card  # noqa: F401
    from qa_core.modeling import LoadedModel, ModelNotFoundError, load_model  # noqa: F401
    from qa_core.run_settings import run_config  # noqa: F401
    from qa_core.runtime import configure_process  # noqa: F401
    from qa_core.training import TrainResult, train  # noqa: F401


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'qa_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
