"""What a model's run folder says to answer with: the config it was trained with, the null threshold found best."""

from __future__ import annotations

import logging
from pathlib import Path

from qa_core.config import QAConfig
from qa_core.run_files import read_eval_metrics, read_run_info, run_folder

logger = logging.getLogger(__name__)


def config_for_model(source: str, config: QAConfig = QAConfig()) -> QAConfig:
    """The config to answer with a model folder: a run evaluated with version_2_with_negative answers SQuAD 2.0
    style, abstaining above the threshold its evaluation found best for F1 (best_f1_thresh); a run's model/
    folder reads its run's evaluation."""
    threshold = (read_eval_metrics(run_folder(Path(source))) or {}).get("best_f1_thresh")
    if not isinstance(threshold, (int, float)) or isinstance(threshold, bool):
        return config
    return config.replace(version_2_with_negative=True, null_score_diff_threshold=float(threshold))


def run_config(source: str) -> QAConfig:
    """The settings a model was trained with when `source` is a run folder (run.json's config), with the
    null-score threshold its evaluation found best (config_for_model); QAConfig's defaults otherwise.
    `source` may be the run folder or its model/ folder."""
    folder = run_folder(Path(source))
    try:
        saved = read_run_info(folder).config
    except ValueError:
        return config_for_model(source)
    try:
        config = QAConfig.from_saved(saved)
    except (TypeError, ValueError) as err:  # written by an older version: answer with the defaults
        logger.warning("%s: run config not usable for answering (%s); using the defaults", folder.name, err)
        config = QAConfig()
    return config_for_model(source, config)
