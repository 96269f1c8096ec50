"""The Errors tab's controls laid out (errors.py wires them to its handlers)."""

from __future__ import annotations

from typing import Any

import gradio as gr

from qa_core import errors_views, plots
from qa_core.error_analysis import QUESTION_WORDS, THRESHOLD_STEP, V2_ERRORS
from qa_core.errors_views import THRESHOLD_HELP

ERROR_COLORS = {"gold": "#7dd87d", "predicted": "#ffb347", "gold + predicted": "#7fb3ff",
                plots.PASSED_OVER: "#f3d9a4", f"gold + {plots.PASSED_OVER}": "#b9cf7a"}
# The legend shows every colour of the map: a SQuAD v1.1 run never abstains, so its map leaves those out.
ANSWERED_COLORS = {label: color for label, color in ERROR_COLORS.items() if plots.PASSED_OVER not in label}
PLOT_MIN_PX = 420  # a summary figure's narrowest: its eight labelled bar pairs and plotly's tool bar in one line


def summary_outputs() -> dict[str, Any]:
    """A run's summary line and its figures, by name as summarize returns them."""
    summary = {"summary": gr.Textbox(label="Summary", interactive=False, lines=2, max_lines=4,
                                      elem_id="errors-summary")}
    # Two figures a row: four in a row at 1400 px ran the n= labels of neighbouring bars into each other; one a
    # row where two would each be narrower than PLOT_MIN_PX (their labels ran together again at 600 px)
    with gr.Row():
        summary.update(words=gr.Plot(label="By question word", min_width=PLOT_MIN_PX, elem_id="errors-words"),
                       lengths=gr.Plot(label="By gold answer length", min_width=PLOT_MIN_PX,
                                       elem_id="errors-lengths"))
    with gr.Row():
        summary.update(histogram=gr.Plot(label="F1 per question", min_width=PLOT_MIN_PX,
                                         elem_id="errors-histogram"),
                       answerable=gr.Plot(label="HasAns / NoAns", visible=False, min_width=PLOT_MIN_PX,
                                          elem_id="errors-answerable"))
    return summary


def threshold_controls() -> tuple[gr.Slider, dict[str, Any]]:
    """The SQuAD 2.0 threshold slider, and buttons that put it exactly where the run was evaluated or at the
    evaluation's best-F1 threshold (where the Ask tab answers with a run's model), which its steps may miss; hidden
    for v1.1 runs, the second where the evaluation has no best-F1 threshold."""
    with gr.Row(visible=False, elem_id="errors-threshold-row") as row:
        # min_width: on a phone the buttons go under the slider, which kept a third of the width beside them
        threshold = gr.Slider(-10, 10, 0, step=THRESHOLD_STEP, visible=False, scale=4, min_width=320,
                              label="Null-score threshold (SQuAD 2.0)", info=THRESHOLD_HELP, elem_id="errors-threshold")
        with gr.Column(scale=1, min_width=160):
            presets = {"row": row,
                       "evaluated": gr.Button("As evaluated", size="sm", elem_id="errors-threshold-evaluated"),
                       "best": gr.Button("Best F1", size="sm", elem_id="errors-threshold-best")}
    return threshold, presets


def filter_controls() -> dict[str, Any]:
    """The question table's filters by name, in the order filter_table takes them, in two rows: nine controls in one
    row at 1400 px cut the Sort choice short ("F1, lowe…") and gave the F1 sliders sideways scroll bars."""
    with gr.Row(elem_id="errors-filters"):
        with gr.Column(scale=1, min_width=160):  # a Checkbox's own min_width left it 69 px beside a slider on a phone
            controls = {"only_wrong": gr.Checkbox(label="Only wrong answers")}
        controls.update(f1_min=gr.Slider(0, 100, 0, step=1, label="F1 from", scale=2, min_width=240),
                        f1_max=gr.Slider(0, 100, 100, step=1, label="F1 to", scale=2, min_width=240))
    with gr.Row(elem_id="errors-filters-more"):
        controls.update(word=gr.Dropdown(["all", *QUESTION_WORDS, "other"], value="all", label="Question word"),
                        # said in its info: a quarter of the row cut the placeholder that said it
                        search=gr.Textbox(label="Search", info="in the question, gold and prediction",
                                          placeholder="words"),
                        sort=gr.Dropdown(list(errors_views.SORTS), value=errors_views.SORTS[0], label="Sort",
                                         min_width=200, elem_id="errors-sort"),
                        kind=gr.Dropdown(list(V2_ERRORS), value=V2_ERRORS[0], label="SQuAD 2.0 errors",
                                         visible=False, elem_id="errors-kind"))
    return controls


def question_outputs() -> dict[str, Any]:
    """The selected question, its context with the gold and predicted spans, its logit plot, and the page's
    state of what is selected and shown, by name as the row handlers return them."""
    return {"question": gr.Textbox(label="Selected question", interactive=False, max_lines=6,
                                   elem_id="errors-question"),
            "detail": gr.HighlightedText(label="Context: gold and predicted answers", color_map=ANSWERED_COLORS,
                                         show_legend=True, elem_id="errors-detail"),
            "plot": gr.Plot(label="Start and end logits per token", elem_id="errors-plot"),
            "selected": gr.State(""), "shown": gr.State(None)}


def attribution_outputs() -> dict[str, Any]:
    """Why this answer?'s note and plot, and the page's state of the row it explained."""
    return {"attribution_note": gr.Textbox(label="Attributions", interactive=False, lines=3, max_lines=6,
                                           elem_id="errors-why-note"),
            "attribution": gr.Plot(label="Attributions per token", elem_id="errors-why"),
            "explained": gr.State(None)}
