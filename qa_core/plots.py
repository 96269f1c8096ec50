"""Plotly figures over a context's tokens for the web UI: start/end logits and attributions (charts.py: the rest)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go

from qa_core.wording import count

if TYPE_CHECKING:  # types only: attributions imports captum (and matplotlib), inference imports torch
    from qa_core.attributions import Attribution
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
    elif label:  # inside the plot area, over the logit lines: readable on a background of its own
        labelled["annotation"] = {"bgcolor": "rgba(255, 255, 255, 0.85)"}
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
