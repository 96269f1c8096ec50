"""The Errors tab's calibration panel: how far a run's probabilities can be trusted, what a threshold would buy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from qa_core import calibration_views, charts
from qa_core.coverage import coverage_at, coverage_curve
from qa_core.run_files import has_model, is_evaluation_folder
from qa_core.service import QAService
from qa_core.ui.common import ANALYSES, PRIVATE, Outputs, by_name, in_turns

DEFAULT_THRESHOLD = 0.5


class CalibrationHandlers:
    """Reliability diagram with ECE before and after temperature scaling; coverage against EM/F1."""

    def __init__(self, service: QAService) -> None:
        self.service = service

    def show(self, run: str | None, threshold: float) -> Outputs:
        try:
            calibration = self.service.calibration(run)
        except (ValueError, OSError) as err:
            return {"calibration": self.service.for_caller(err), "reliability": None, "coverage": None, "readout": ""}
        # an evaluation folder, or a run stopped before its end, holds no model: the Ask tab never answers at its fit
        folder = self.service.checked_run(run)
        return {"calibration": calibration_views.calibration_text(calibration, has_model(folder),
                                                                  is_evaluation_folder(Path(folder))),
                # no 'after temperature scaling' line where no temperature was fitted: it would be the bars again
                "reliability": charts.reliability_figure(calibration.bins_before, calibration.ece_before,
                                                         () if calibration.unfitted else calibration.bins_after,
                                                         calibration.abstentions),
                **self.pick(run, threshold)}

    def pick(self, run: str | None, threshold: float) -> Outputs:
        """The threshold picker moved: the curve with the chosen point, and its coverage, EM and F1."""
        try:
            records, calibration = self.service.records(run), self.service.calibration(run)
            chosen = coverage_at(records, float(threshold), calibration.temperature)
        except (ValueError, OSError) as err:
            return {"coverage": None, "readout": self.service.for_caller(err)}
        return {"coverage": charts.coverage_figure(coverage_curve(records, calibration.temperature), chosen,
                                                   calibration.abstentions),
                "readout": calibration_views.coverage_text(chosen)}


def build_calibration_panel(service: QAService, run: gr.Dropdown) -> dict[str, Any]:
    ui = CalibrationHandlers(service)
    with gr.Accordion("Trust the score: calibration", open=False, elem_id="calibration-panel"):
        shown = {"calibration": gr.Textbox(label="Calibration", interactive=False, elem_id="calibration-text")}
        with gr.Row():
            shown.update(reliability=gr.Plot(label="Reliability diagram", elem_id="calibration-reliability"),
                         coverage=gr.Plot(label="Coverage against EM/F1", elem_id="calibration-coverage"))
        threshold = gr.Slider(0, 1, DEFAULT_THRESHOLD, step=0.01, label="Answer above confidence t",
                              info="the answer probability after temperature scaling", elem_id="calibration-threshold")
        shown["readout"] = gr.Textbox(label="At this threshold", interactive=False, elem_id="calibration-readout")
    picked = {"coverage": shown["coverage"], "readout": shown["readout"]}
    # both read the run's records: in turns with the answers (in_turns)
    run.change(by_name(in_turns(service, ui.show), shown), [run, threshold], list(shown.values()),
               api_name="ui_calibration", **ANALYSES, **PRIVATE)
    threshold.change(by_name(in_turns(service, ui.pick), picked), [run, threshold], list(picked.values()),
                     api_name="ui_calibration_threshold", show_progress="hidden", **ANALYSES, **PRIVATE)
    return {"threshold": threshold, "handlers": ui}
