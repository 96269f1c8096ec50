"""Plotly figures for the web UI: per-token logits, loss curve, F1 histogram and grouped score bars."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from qa_core.inference import TokenLogits

VISIBLE_TOKENS = 80  # tokens shown at first; wider views make the token labels unreadable
PREDICTED_COLOR = "rgba(255, 165, 0, 0.30)"
GOLD_COLOR = "rgba(46, 160, 67, 0.25)"


def plot_text(text: str) -> str:
    """Plotly renders a subset of HTML in labels; escape user text so a tag shows as text."""
    return html.escape(text, quote=False)


def token_range(spans: Sequence[tuple[int, int]], chars: tuple[int, int]) -> tuple[int, int] | None:
    """First and last token index overlapping a character span, or None if no token does."""
    inside = [i for i, (s, e) in enumerate(spans) if s < chars[1] and e > chars[0]]
    return (inside[0], inside[-1]) if inside else None


def initial_view(count: int, focus: tuple[int, int] | None, width: int = VISIBLE_TOKENS) -> tuple[float, float]:
    """An x range of about `width` tokens centred on the focus span (or the start of the context)."""
    centre = (focus[0] + focus[1]) / 2 if focus else width / 2
    low = max(0.0, min(centre - width / 2, count - width))
    return low - 0.5, min(low + width, count) - 0.5


def logit_figure(logits: TokenLogits, predicted: tuple[int, int] | None = None,
                 gold: Sequence[tuple[int, int]] = ()) -> go.Figure:
    """Start and end logits per context token; the predicted span (and gold spans) shaded; zoomable over any length."""
    x = np.arange(len(logits.tokens))
    labels = [plot_text(t) for t in logits.tokens]
    figure = go.Figure()
    for name, values in (("start logit", logits.start_logits), ("end logit", logits.end_logits)):
        figure.add_trace(go.Scatter(x=x, y=values, name=name, mode="lines+markers", customdata=labels,
                                    hovertemplate="%{customdata}<br>" + name + " %{y:.2f}<extra></extra>"))
    focus = _shade(figure, logits.spans, predicted, PREDICTED_COLOR, "predicted")
    for span in gold:
        shaded = _shade(figure, logits.spans, span, GOLD_COLOR, "gold")
        focus = focus or shaded
    figure.update_layout(title="Start and end logits per context token", height=360, hovermode="x unified",
                         margin={"l": 40, "r": 10, "t": 40, "b": 10}, legend={"orientation": "h", "y": 1.12})
    figure.update_xaxes(tickmode="array", tickvals=x, ticktext=labels, tickangle=-60,
                        range=initial_view(len(x), focus), rangeslider={"visible": len(x) > VISIBLE_TOKENS})
    return figure


def _shade(figure: go.Figure, spans: Sequence[tuple[int, int]], chars: tuple[int, int] | None, color: str,
           label: str) -> tuple[int, int] | None:
    tokens = token_range(spans, chars) if chars else None
    if tokens:
        figure.add_vrect(x0=tokens[0] - 0.5, x1=tokens[1] + 0.5, fillcolor=color, line_width=0,
                         annotation_text=label, annotation_position="top left")
    return tokens


def loss_figure(losses: Sequence[tuple[int, float]], total_steps: int) -> go.Figure:
    """Running training loss against optimizer steps, with the x axis spanning the whole run."""
    figure = go.Figure(go.Scatter(x=[s for s, _ in losses], y=[v for _, v in losses], mode="lines+markers",
                                  name="loss"))
    figure.update_layout(title="Training loss", xaxis_title="step", yaxis_title="loss", height=300,
                         margin={"l": 40, "r": 10, "t": 40, "b": 40})
    figure.update_xaxes(range=[0, max(total_steps, 1)])
    return figure


def f1_histogram(f1_scores: Sequence[float]) -> go.Figure:
    """How many questions fall in each F1 band of 10 points."""
    figure = go.Figure(go.Histogram(x=list(f1_scores), xbins={"start": 0, "end": 100.001, "size": 10}))
    figure.update_layout(title="F1 per question", xaxis_title="F1", yaxis_title="questions", height=300,
                         bargap=0.05, margin={"l": 40, "r": 10, "t": 40, "b": 40})
    return figure


def group_figure(groups: Mapping[str, tuple[int, float, float]], title: str,
                 order: Sequence[str] | None = None) -> go.Figure:
    """EM and F1 bars per group, from error_analysis.group_scores; the bar label gives the question count."""
    names = [n for n in order if n in groups] if order else list(groups)
    counts = [f"n={groups[n][0]}" for n in names]
    figure = go.Figure([go.Bar(x=names, y=[groups[n][1] for n in names], name="EM"),
                        go.Bar(x=names, y=[groups[n][2] for n in names], name="F1", text=counts,
                               textposition="outside")])
    figure.update_layout(title=title, barmode="group", yaxis_range=[0, 110], height=300,
                         margin={"l": 40, "r": 10, "t": 40, "b": 40})
    return figure
