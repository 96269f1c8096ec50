"""Plotly charts of runs and their records: loss, history, group scores, F1, comparisons, calibration, coverage."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from qa_core.calibration import ReliabilityBin
from qa_core.coverage import CoveragePoint
from qa_core.progress import ProgressEvent
from qa_core.wording import count

if TYPE_CHECKING:
    from qa_core.compare import SliceRow

# Bar charts: the legend in a row above the plot, not in a column beside it (which took a third of a phone's
# width, more for the calibration plots), and tick labels given the room they need.
BAR_LEGEND = {"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "left", "x": 0}
BAR_LAYOUT = {"legend": BAR_LEGEND, "margin": {"l": 40, "r": 10, "t": 60, "b": 40}}
# The calibration plots have four legend entries, which wrap into rows on a phone: below the axis title they push
# the plot up instead of running over the figure's title.
BELOW_LAYOUT = {"legend": {"orientation": "h", "yanchor": "top", "y": -0.28, "xanchor": "left", "x": 0},
                "margin": {"l": 40, "r": 10, "t": 40, "b": 40}}
BAR_TEXT = 10  # px: the n= labels keep this size (Plotly shrank them to the bar's width: unreadable on a phone)
SLICE_PX = 34  # px of height per slice group in the comparison (two bars and their labels)
F1_BAND = 10  # F1 points per bar of the F1 histogram


def loss_figure(losses: Sequence[tuple[int, float]], total_steps: int) -> go.Figure:
    """Running training loss against optimizer steps, with the x axis spanning the whole run."""
    figure = go.Figure(go.Scatter(x=[s for s, _ in losses], y=[v for _, v in losses], mode="lines+markers",
                                  name="loss"))
    figure.update_layout(title="Training loss", xaxis_title="step", yaxis_title="loss", height=300,
                         margin={"l": 40, "r": 10, "t": 40, "b": 40})
    figure.update_xaxes(range=[0, max(total_steps, 1)])
    return figure


def history_figure(events: Sequence[ProgressEvent]) -> go.Figure:
    """A run's history (progress.read_history): loss and learning rate per step, evaluation EM/F1 per epoch."""
    steps = [e for e in events if e.kind == "step" and e.loss is not None]
    evals = [e for e in events if e.kind == "eval" and e.metrics]
    figure = make_subplots(rows=2, cols=1, vertical_spacing=0.18, specs=[[{"secondary_y": True}], [{}]],
                           subplot_titles=("Training loss and learning rate", "Evaluation per epoch"))
    figure.add_trace(go.Scatter(x=[e.step for e in steps], y=[e.loss for e in steps], name="loss",
                                mode="lines+markers"), row=1, col=1)
    figure.add_trace(go.Scatter(x=[e.step for e in steps], y=[e.learning_rate for e in steps], name="learning rate",
                                mode="lines", line={"dash": "dot"}), row=1, col=1, secondary_y=True)
    for key, name in (("exact_match", "EM"), ("f1", "F1")):
        figure.add_trace(go.Scatter(x=[e.epoch for e in evals], y=[e.metrics.get(key) for e in evals], name=name,
                                    mode="lines+markers"), row=2, col=1)
    figure.update_xaxes(title_text="step", row=1, col=1)
    figure.update_xaxes(title_text="epoch", row=2, col=1)
    figure.update_yaxes(title_text="loss", row=1, col=1, secondary_y=False)
    figure.update_yaxes(title_text="learning rate", row=1, col=1, secondary_y=True, exponentformat="e")
    figure.update_yaxes(title_text="score", range=[0, 105], row=2, col=1)
    figure.update_layout(height=520, margin={"l": 50, "r": 50, "t": 50, "b": 40},
                         legend={"orientation": "h", "y": -0.12})
    return figure


def f1_histogram(f1_scores: Sequence[float]) -> go.Figure:
    """How many questions fall in each F1 band of F1_BAND points, the last band closed (90 to 100): plotly's own
    bins are half-open, which gave the exactly right answers a bar from 100 to 110, past the axis' end."""
    counts, edges = np.histogram(np.asarray(f1_scores, dtype=float), bins=100 // F1_BAND, range=(0, 100))
    bands = [f"{low:g}–{high:g}" for low, high in zip(edges, edges[1:])]
    figure = go.Figure(go.Bar(x=(edges[:-1] + F1_BAND / 2).tolist(), y=counts.tolist(), width=F1_BAND,
                              marker={"line": {"width": 1, "color": "white"}},  # bands apart, as a histogram's gap
                              customdata=bands, hovertemplate="F1 %{customdata}: %{y}<extra></extra>"))
    # room on the right for the axis' last label, 100, which sits on the plot's edge (plotly hid it in 10 px)
    figure.update_layout(title="F1 per question", xaxis_title="F1", yaxis_title="questions", height=300,
                         margin={"l": 40, "r": 24, "t": 40, "b": 40})
    figure.update_xaxes(range=[0, 100], dtick=F1_BAND * 2)
    return figure


def group_figure(groups: Mapping[str, tuple[int, float, float]], title: str,
                 order: Sequence[str] | None = None) -> go.Figure:
    """EM and F1 bars per group, from error_analysis.group_scores; the bar label gives the question count."""
    names = [n for n in order if n in groups] if order else list(groups)
    counts = [f"n={groups[n][0]}" for n in names]
    figure = go.Figure([go.Bar(x=names, y=[groups[n][1] for n in names], name="EM"),
                        go.Bar(x=names, y=[groups[n][2] for n in names], name="F1", text=counts,
                               textposition="outside", constraintext="none", textfont={"size": BAR_TEXT})])
    figure.update_layout(title=title, barmode="group", yaxis_range=[0, 110], height=300, **BAR_LAYOUT)
    figure.update_xaxes(automargin=True)
    return figure


def compare_slices_figure(slices: Sequence[SliceRow]) -> go.Figure:
    """F1 of runs A and B side by side for every slice group, grouped by slice family. The bars lie flat, the
    groups down the y axis: their labels then read across at any width (standing bars of 12 groups squeezed them
    into overlapping slants on a phone), and the figure grows with the number of groups."""
    y = [[s.slice for s in slices], [s.group for s in slices]]
    figure = go.Figure()
    for run in ("a", "b"):
        values = [getattr(s, f"f1_{run}") for s in slices]
        figure.add_trace(go.Bar(y=y, x=values, orientation="h", name=f"F1 run {run.upper()}",
                                text=[f"n={s.questions}" for s in slices] if run == "b" else None,
                                textposition="outside", constraintext="none", textfont={"size": BAR_TEXT}))
    figure.update_layout(title="F1 per slice, run A vs run B", barmode="group", xaxis_range=[0, 115],
                         height=120 + SLICE_PX * len(slices), **BAR_LAYOUT)
    figure.update_yaxes(automargin=True, autorange="reversed")  # the first slice on top
    return figure


def reliability_figure(bins: Sequence[ReliabilityBin], ece: float | None = None,
                       calibrated: Sequence[ReliabilityBin] = (), abstentions: int | None = None) -> go.Figure:
    """Fraction exactly right and mean F1 per probability bin against the diagonal of perfect calibration;
    calibrated (bins after temperature scaling) adds their fraction exactly right as a line. abstentions: a
    SQuAD 2.0 run's, which the bins leave out (calibration.answered_records); the title and axis say so."""
    used = [b for b in bins if b.questions]
    centres = [(b.low + b.high) / 2 for b in used]
    hover = [f"{count(b.questions, 'question')}, mean probability {b.mean_probability:.2f}" for b in used]
    figure = go.Figure([
        go.Bar(x=centres, y=[b.exact_fraction for b in used], width=[b.high - b.low for b in used],
               name="fraction exactly right", customdata=hover, opacity=0.7,
               hovertemplate="%{customdata}<br>exactly right %{y:.2f}<extra></extra>"),
        go.Scatter(x=centres, y=[b.mean_f1 for b in used], name="mean F1 / 100", mode="lines+markers"),
        go.Scatter(x=[0, 1], y=[0, 1], name="perfect calibration", mode="lines", line={"dash": "dot"})])
    scaled = [b for b in calibrated if b.questions]
    if scaled:
        figure.add_trace(go.Scatter(x=[b.mean_probability for b in scaled], y=[b.exact_fraction for b in scaled],
                                    name="after temperature scaling", mode="lines+markers"))
    # the axes say what against what; no bins, no error to state (an ECE of 0.000 would read as perfect)
    title = "Reliability" + (f" (ECE {ece:.3f})" if ece is not None and used else "")
    axis = "answer probability"
    if abstentions:
        title = f"{title}<br><sup>{count(abstentions, 'abstention')} left out</sup>"
        axis = "answer probability (answered)"
    figure.update_layout(title=title, xaxis_title=axis, yaxis_title="fraction", height=380,
                         xaxis_range=[0, 1], yaxis_range=[0, 1.05], **BELOW_LAYOUT)
    if abstentions:
        figure.update_layout(margin={"t": 60})  # room for the title's second line
    return figure


def coverage_figure(points: Sequence[CoveragePoint], chosen: CoveragePoint | None = None,
                    abstentions: int | None = None) -> go.Figure:
    """EM and F1 of the answered questions against coverage, as the confidence threshold rises. A threshold that
    leaves no question answered has no score: such points are left out, and a chosen one is said in words
    (drawn, it sat at (0, 0) as if it scored 0). abstentions: a SQuAD 2.0 run's, never answered at any
    threshold (coverage.coverage_curve); the title says so."""
    points = [p for p in points if p.answered]
    x = [p.coverage for p in points]
    hover = [f"threshold {p.threshold:.3f}, {p.answered:,} answered" for p in points]
    # markers too: a curve of one point (every confidence the same) draws no line
    figure = go.Figure([go.Scatter(x=x, y=[getattr(p, name) for p in points], name=label, mode="lines+markers",
                                   marker={"size": 4}, customdata=hover,
                                   hovertemplate="%{customdata}<br>" + label + " %{y:.1f}<extra></extra>")
                        for name, label in (("exact_match", "EM"), ("f1", "F1"))])
    if chosen is not None and chosen.answered:
        figure.add_trace(go.Scatter(x=[chosen.coverage, chosen.coverage], y=[chosen.exact_match, chosen.f1],
                                    mode="markers", marker={"size": 11, "symbol": "diamond"},
                                    name=f"threshold {chosen.threshold:.2f}"))
    elif chosen is not None:
        figure.add_annotation(text=f"threshold {chosen.threshold:.2f} answers no question", x=0, y=1.0,
                              xref="paper", yref="paper", xanchor="left", showarrow=False,
                              bgcolor="rgba(255, 255, 255, 0.85)")  # readable over the curve
    title = "Coverage against EM and F1" + (f"<br><sup>{count(abstentions, 'abstention')} never answered</sup>"
                                            if abstentions else "")
    figure.update_layout(title=title, xaxis_title="coverage (answered share)",
                         yaxis_title="score on answered", height=380, xaxis_range=[0, 1.02], **BELOW_LAYOUT)
    if not points:  # nothing answered: the scores' own range, not plotly's -1 to 4 around no data
        figure.update_layout(yaxis_range=[0, 100])
    if abstentions:
        figure.update_layout(margin={"t": 60})  # room for the title's second line
    return figure
