"""What an evaluation used besides the model (eval_settings.json): data, threshold, windows, span search."""
# Its readers (the model card, the Errors tab's logit plots and explanations) take these rather than the run's
# training config, which a later `train.py evaluate` into the run folder, or into a folder of its own, need not
# have used.

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qa_core.data import fingerprint
from qa_core.run_files import EVAL_SETTINGS_FILE

if TYPE_CHECKING:
    from qa_core.config import QAConfig
    from qa_core.data import Example

logger = logging.getLogger(__name__)

# The settings that cut an evaluation's contexts into windows and searched them for spans: the model's logits for
# a record, run again with other values, are not those the record was scored from.
WINDOW_SETTINGS = ("max_seq_length", "doc_stride", "max_query_length", "n_best_size", "max_answer_length")


@dataclass(frozen=True)
class Evaluated:
    """An evaluation of a model: the data it scored, that data's fingerprint, the null odds threshold a SQuAD 2.0
    evaluation abstained above (None: a SQuAD v1.1 one), and its WINDOW_SETTINGS ({}: not known)."""

    data: str
    fingerprint: str | None = None
    threshold: float | None = None
    window_settings: dict[str, int] = field(default_factory=dict)


def evaluated_data(config: QAConfig, examples: Sequence[Example]) -> Evaluated:
    """What an evaluation with this config (fitted to the model: the windows it really cut) of these examples used."""
    threshold = config.null_score_diff_threshold if config.version_2_with_negative else None
    return Evaluated(config.validation_file or "", fingerprint(examples), threshold,
                     {name: getattr(config, name) for name in WINDOW_SETTINGS})


def write_evaluated(folder: Path, evaluated: Evaluated) -> None:
    """eval_settings.json, by QAConfig's names (a null threshold: a SQuAD v1.1 evaluation)."""
    content = {"validation_file": evaluated.data, "data_fingerprint": evaluated.fingerprint,
               "null_score_diff_threshold": evaluated.threshold, **evaluated.window_settings}
    (folder / EVAL_SETTINGS_FILE).write_text(json.dumps(content, ensure_ascii=False, indent=1), encoding="utf-8")


def read_evaluated(folder: Path) -> Evaluated | None:
    """What the evaluation in the folder used; None for a folder from before it was recorded, or a file that does
    not read as one (said in the log): its readers then fall back on the run's config, as they did before."""
    path = folder / EVAL_SETTINGS_FILE
    if not path.is_file():
        return None
    try:
        return parse_evaluated(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as err:  # json.JSONDecodeError is a ValueError
        logger.warning("%s: unreadable (%s); read as an evaluation that recorded nothing", path, err)
        return None


def parse_evaluated(saved: Any) -> Evaluated:
    """eval_settings.json's contents as Evaluated; ValueError naming the value of a wrong type."""
    if not isinstance(saved, Mapping) or not isinstance(saved.get("validation_file"), str):
        raise ValueError(f"no validation_file in {str(saved)[:80]!r}")
    printed, threshold = saved.get("data_fingerprint"), saved.get("null_score_diff_threshold")
    if printed is not None and not isinstance(printed, str):
        raise ValueError(f"data_fingerprint {printed!r} is not a string")
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))):
        raise ValueError(f"null_score_diff_threshold {threshold!r} is not a number")
    window_settings = {name: saved[name] for name in WINDOW_SETTINGS if name in saved}
    if wrong := {k: v for k, v in window_settings.items() if isinstance(v, bool) or not isinstance(v, int) or v < 1}:
        raise ValueError(f"{wrong} are not positive whole numbers")
    return Evaluated(saved["validation_file"], printed, None if threshold is None else float(threshold),
                     window_settings)
