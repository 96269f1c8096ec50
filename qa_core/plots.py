"""Plotly figures for the web UI: logits, loss, training history, group scores, comparison, calibration, saliency."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from qa_core.calibration import ReliabilityBin
from qa_core.coverage import CoveragePoint
from qa_core.progress import ProgressEvent
from qa_core.wording import count

if TYPE_CHECKING:  # types only: attributions imports captum (and matplotlib), inference imports torch
    from qa_core.attributions import Attribution
    from qa_core.compare import SliceRow
    from qa_core.inference import TokenLogits

VISIBLE_TOKENS = 80  # tokens shown at first; wider views make the token labels unreadable
TOKEN_FONT = 11  # px: at 1400 px every one of VISIBLE_TOKENS token labels still fits
INVISIBLE = ("\u200b", "\u200c")  # zero-width space and non-joiner: binary digits that tell repeated tokens apart
PREDICTED_COLOR = "rgba(255, 165, 0, 0.30)"
GOLD_COLOR = "rgba(46, 160, 67, 0.25)"
# Where a SQuAD 2.0 answer abstained: the best span, which the model passed over (the Ask tab dashes it too).
PASSED_OVER = "best span (abstained)"
PASSED_OVER_COLOR = "rgba(200, 120, 0, 0.9)"
# The logit figure's height, and its top margin (Gradio widens a titled figure's to 100 px) holding, placed from the
# top below plotly's tool bar: the title, the legend's row, and the predicted or passed-over span's label standing on
# the plot area (inside it, the label sat on the top gridline and over the span's peak logits).
LOGIT_PX = 360
LOGIT_TOP = {"margin": {"l": 40, "r": 10, "t": 100, "b": 10},
             "legend": {"orientation": "h", "yref": "container", "yanchor": "top", "y": 1 - 52 / LOGIT_PX}}
LOGIT_TITLE = {"text": "Start and end logits per context token", "yref": "container", "yanchor": "top",
               "y": 1 - 32 / LOGIT_PX}
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
# Plotly's RdBu runs from red (-1) to blue (+1); the Ask and Errors tabs both print this legend beside the map.
ATTRIBUTION_COLORSCALE = "RdBu"
ATTRIBUTION_LEGEND = "blue tokens push the answer's start/end logit up, red ones down"


def plot_text(text: str) -> str:
    """Plotly renders a subset of HTML in labels; escape user text so a tag shows as text."""
    return html.escape(text, quote=False)


def token_hovers(labels: Sequence[str], tokens: Sequence[str]) -> list[str]:
    """Each token's text for its hover, with the model's vocabulary piece beside it where that differs (##ing,
    ĠThe, ▁The): the axis reads as the text, the hover still shows how the model cut it."""
    if len(labels) != len(tokens):
        return list(labels)
    return [label if plot_text(token) == label else f"{label} ({plot_text(token)})"
            for label, token in zip(labels, tokens)]


def token_axis_labels(labels: Sequence[str]) -> list[str]:
    """Token labels (escaped by plot_text) as the categories of an x axis. Plotly thins the tick labels of a
    category axis to its width (one per ~13 px at TOKEN_FONT), so a phone shows every few tokens' labels and a wide
    screen every one, where fixed tick arrays overlapped on a phone. Categories must differ: a repeated token gets
    its repeat count appended in zero-width characters, which draw nothing."""
    seen: dict[str, int] = {}
    categories = []
    for label in labels:
        repeat = seen.get(label, 0)
        seen[label] = repeat + 1
        categories.append(label + "".join(INVISIBLE[int(bit)] for bit in f"{repeat:b}") if repeat else label)
    return categories


def token_xaxis(figure: go.Figure, labels: Sequence[str], focus: tuple[int, int] | None) -> None:
    """The token axis of the logit and attribution figures: categories (thinned to fit), a view of about
    VISIBLE_TOKENS tokens around the focus, a range slider for longer texts, room made for the slanted labels."""
    figure.update_xaxes(type="category", tickangle=-60, tickfont={"size": TOKEN_FONT}, automargin=True,
                        range=initial_view(len(labels), focus),
                        rangeslider={"visible": len(labels) > VISIBLE_TOKENS})


def token_range(offsets: Sequence[tuple[int, int]], chars: tuple[int, int]) -> tuple[int, int] | None:
    """First and last token index overlapping a character span, or None if no token does."""
    inside = [i for i, (s, e) in enumerate(offsets) if s < chars[1] and e > chars[0]]
    return (inside[0], inside[-1]) if inside else None


def initial_view(tokens: int, focus: tuple[int, int] | None, width: int = VISIBLE_TOKENS) -> tuple[float, float]:
    """An x range of about `width` of the `tokens` tokens, centred on the focus span (or the start of the context)."""
    centre = (focus[0] + focus[1]) / 2 if focus else width / 2
    low = max(0.0, min(centre - width / 2, tokens - width))
    return low - 0.5, min(low + width, tokens) - 0.5


def logit_figure(logits: TokenLogits, predicted: tuple[int, int] | None = None,
                 gold: Sequence[tuple[int, int]] = (), passed_over: tuple[int, int] | None = None) -> go.Figure:
    """Start and end logits per context token; the predicted span, the gold spans and (where a SQuAD 2.0 answer
    abstained) the best span passed over, framed in dashes, marked; zoomable over any length."""
    labels = [plot_text(t) for t in logits.labels or logits.tokens]
    x = token_axis_labels(labels)
    hovers = token_hovers(labels, logits.tokens)
    figure = go.Figure()
    for name, values in (("start logit", logits.start_logits), ("end logit", logits.end_logits)):
        figure.add_trace(go.Scatter(x=x, y=values, name=name, mode="lines+markers", customdata=hovers,
                                    hovertemplate="%{customdata}<br>" + name + " %{y:.2f}<extra></extra>"))
    answer = token_range(logits.offsets, predicted) if predicted else None
    passed = token_range(logits.offsets, passed_over) if passed_over else None
    golds = merged_ranges([r for r in (token_range(logits.offsets, span) for span in gold) if r])
    focus = answer or passed or (golds[0] if golds else None)
    view = initial_view(len(x), focus)
    if answer:
        _band(figure, answer, "predicted", f"top {label_side(answer, view)}", fillcolor=PREDICTED_COLOR, line_width=0)
    if passed:
        _band(figure, passed, PASSED_OVER, f"top {label_side(passed, view)}",
              line={"color": PASSED_OVER_COLOR, "width": 2, "dash": "dash"})
    for n, tokens in enumerate(golds):  # labelled once: SQuAD lists the same answer several times
        # at the bottom: a gold span often starts where the predicted one does, whose label is at the top
        _band(figure, tokens, "gold" if n == 0 else "", f"bottom {label_side(tokens, view)}", fillcolor=GOLD_COLOR,
              line_width=0)
    figure.update_layout(title=LOGIT_TITLE, height=LOGIT_PX, hovermode="x unified", **LOGIT_TOP)
    token_xaxis(figure, x, focus)
    return figure


def label_side(tokens: tuple[int, int], view: tuple[float, float]) -> str:
    """The edge of a band its label starts from: left in the left half of the x view, else right, so that the label
    reads into the plot instead of off its edge."""
    return "left" if tokens[0] + tokens[1] <= view[0] + view[1] else "right"


def _band(figure: go.Figure, tokens: tuple[int, int], label: str, where: str, **style: object) -> None:
    labelled = {"annotation_text": label, "annotation_position": where} if label else {}
    if label and where.startswith("top"):  # standing on the plot area's top edge, above it (LOGIT_TOP)
        labelled["annotation"] = {"yanchor": "bottom"}
    figure.add_vrect(x0=tokens[0] - 0.5, x1=tokens[1] + 0.5, **labelled, **style)


def merged_ranges(ranges: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Token ranges with the overlapping ones joined, in order."""
    joined: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if joined and start <= joined[-1][1]:
            joined[-1] = (joined[-1][0], max(end, joined[-1][1]))
        else:
            joined.append((start, end))
    return joined


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


def compare_slices_figure(slices: Sequence[SliceRow], metric: str = "f1") -> go.Figure:
    """EM or F1 of runs A and B side by side for every slice group, grouped by slice family. The bars lie flat,
    the groups down the y axis: their labels then read across at any width (standing bars of 12 groups
    squeezed them into overlapping slants on a phone), and the figure grows with the number of groups."""
    if metric not in ("f1", "exact_match"):
        raise ValueError(f"metric must be 'f1' or 'exact_match', got {metric!r}")
    y = [[s.slice for s in slices], [s.group for s in slices]]
    label, field = ("F1", "f1") if metric == "f1" else ("EM", "exact")
    figure = go.Figure()
    for run in ("a", "b"):
        values = [getattr(s, f"{field}_{run}") for s in slices]
        figure.add_trace(go.Bar(y=y, x=values, orientation="h", name=f"{label} run {run.upper()}",
                                text=[f"n={s.questions}" for s in slices] if run == "b" else None,
                                textposition="outside", constraintext="none", textfont={"size": BAR_TEXT}))
    figure.update_layout(title=f"{label} per slice, run A vs run B", barmode="group", xaxis_range=[0, 115],
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
    title = "Reliability" + (f" (ECE {ece:.3f})" if ece is not None else "")  # the axes say what against what
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
    if abstentions:
        figure.update_layout(margin={"t": 60})  # room for the title's second line
    return figure


def attribution_figure(attribution: Attribution, abstained: bool = False) -> go.Figure:
    """A heat map of start and end attributions over the window's tokens, each row scaled to [-1, 1] (the hover
    gives the raw value); the answer tokens framed, the view opening on them. abstained: a SQuAD 2.0 answer that
    abstained, whose explained span is the best one it passed over, and is labelled so."""
    values = np.vstack([attribution.start_attributions, attribution.end_attributions])  # (2, tokens)
    scaled = values / np.maximum(np.abs(values).max(axis=1, keepdims=True), 1e-12)
    labels = [plot_text(t) for t in attribution.labels or attribution.tokens]
    x = token_axis_labels(labels)
    figure = go.Figure(go.Heatmap(z=scaled, x=x, y=["start", "end"], customdata=values,
                                  colorscale=ATTRIBUTION_COLORSCALE, zmid=0, zmin=-1, zmax=1,
                                  text=[token_hovers(labels, attribution.tokens)] * 2,
                                  hovertemplate="%{text}<br>%{y}: %{customdata:.4g}<extra></extra>"))
    focus = (attribution.start_token, attribution.end_token)
    figure.add_vrect(x0=focus[0] - 0.5, x1=focus[1] + 0.5, line_width=2, line_color="black",
                     annotation_text=PASSED_OVER if abstained else "answer", annotation_position="top left",
                     annotation={"bgcolor": "rgba(255, 255, 255, 0.85)"})  # readable over a dark cell
    steps = f", {count(attribution.steps, 'step')}" if attribution.steps else ""
    # The method on a line of its own: a phone shows about 40 characters of a title
    figure.update_layout(title=f"Attributions<br><sup>{attribution.method}{steps}, {attribution.seconds:.2f} s</sup>",
                         height=270, margin={"l": 40, "r": 10, "t": 50, "b": 10}, yaxis_autorange="reversed")
    token_xaxis(figure, x, focus)
    return figure
