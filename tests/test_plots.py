"""Plotly figures: token labels, span shading, long contexts, escaping of user text."""

from __future__ import annotations

import numpy as np

from qa_core import plots
from qa_core.inference import TokenLogits


def logits_of(words: list[str]) -> TokenLogits:
    spans, position = [], 0
    for word in words:
        spans.append((position, position + len(word)))
        position += len(word) + 1
    rng = np.random.default_rng(0)
    return TokenLogits(tuple(words), tuple(spans), rng.normal(size=len(words)), rng.normal(size=len(words)))


def test_token_range_maps_characters_to_tokens():
    spans = ((0, 3), (4, 9), (10, 12))
    assert plots.token_range(spans, (4, 12)) == (1, 2)
    assert plots.token_range(spans, (5, 6)) == (1, 1)
    assert plots.token_range(spans, (20, 25)) is None


def test_logit_figure_labels_tokens_and_marks_spans():
    logits = logits_of(["the", "lens", "was", "designed", "by", "fresnel"])
    figure = plots.logit_figure(logits, predicted=(25, 32), gold=[(22, 32)])
    assert [t.name for t in figure.data] == ["start logit", "end logit"]
    assert list(figure.data[0].x) == list(logits.tokens) and figure.layout.xaxis.type == "category"
    shapes = figure.layout.shapes
    assert len(shapes) == 2  # predicted and gold
    assert (shapes[0].x0, shapes[0].x1) == (4.5, 5.5)
    assert (shapes[1].x0, shapes[1].x1) == (3.5, 5.5)


def test_span_labels_stand_above_the_plot_and_read_into_it():
    """Found by a tester: the label of the span passed over sat inside the plot on its top gridline (over the span's
    peak logits); it stands on the plot area's top edge, below the legend's row. A band in the right half of the
    view is labelled from its right edge: its label ran off the figure at the context's end."""
    logits = logits_of(["the", "lens", "was", "designed", "by", "fresnel"])
    for figure, label in ((plots.logit_figure(logits, None, passed_over=(25, 32)), plots.PASSED_OVER),
                          (plots.logit_figure(logits, (25, 32)), "predicted")):
        (shown,) = [a for a in figure.layout.annotations if a.text == label]
        assert (shown.yref, shown.y, shown.yanchor) == ("y domain", 1, "bottom")
        assert (shown.x, shown.xanchor) == (5.5, "right")
        assert figure.layout.legend.yref == "container"  # in the top margin, above the label
    (gold,) = plots.logit_figure(logits, None, gold=[(0, 3)]).layout.annotations
    assert (gold.x, gold.xanchor, gold.yanchor) == (-0.5, "left", "bottom")


def test_long_context_keeps_every_token_but_opens_on_the_answer():
    logits = logits_of([f"w{i}" for i in range(5000)])
    start = logits.offsets[3000][0]
    figure = plots.logit_figure(logits, predicted=(start, logits.offsets[3001][1]))
    assert len(figure.data[0].x) == 5000
    low, high = figure.layout.xaxis.range
    assert low < 3000 < high and high - low <= plots.VISIBLE_TOKENS
    assert figure.layout.xaxis.rangeslider.visible


def test_user_text_is_escaped_in_labels():
    figure = plots.logit_figure(logits_of(["<script>", "&", "ok"]))
    assert list(figure.data[0].x[:2]) == ["&lt;script&gt;", "&amp;"]


def test_repeated_tokens_are_distinct_categories_that_read_the_same():
    """Plotly thins a category axis's labels to fit a phone's width; a repeated token must stay its own point."""
    tokens = ["the", "lens", "the", "the", "by"] + ["the"] * 6
    labels = plots.token_axis_labels(tokens)
    assert len(set(labels)) == len(tokens)
    assert [label.strip("".join(plots.INVISIBLE)) for label in labels] == tokens


def test_initial_view_stays_inside_the_tokens():
    assert plots.initial_view(10, None) == (-0.5, 9.5)
    low, high = plots.initial_view(1000, (995, 999), width=80)
    assert high == 999.5 and low == 919.5


def test_the_attribution_legend_matches_the_colour_scale():
    from plotly.colors import sample_colorscale, unlabel_rgb

    from qa_core.attributions import Attribution

    attribution = Attribution(("a", "b"), ((0, 1), (2, 3)), np.array([1.0, -1.0]), np.array([-1.0, 1.0]), 0, 0, 0,
                              1, "gradient × input", 0, 0.1)
    heatmap = plots.attribution_figure(attribution).data[0]
    top, bottom = (unlabel_rgb(sample_colorscale([list(c) for c in heatmap.colorscale], [x])[0]) for x in (1.0, 0.0))
    # +1 (the token pushes the logit up) is drawn blue, -1 red; the legend must say the same
    assert top[2] > top[0] and bottom[0] > bottom[2]
    assert plots.ATTRIBUTION_LEGEND.startswith("blue") and "up, red" in plots.ATTRIBUTION_LEGEND


def test_overlapping_golds_are_labelled_once_and_a_passed_over_span_is_dashed():
    """Found by trying the app: four overlapping gold answers each drew and labelled a band ('gold' 'gold'); an
    abstained row marked only the gold, not the span the model passed over."""
    logits = logits_of(["the", "lens", "was", "designed", "by", "augustin", "fresnel"])
    figure = plots.logit_figure(logits, None, gold=[(25, 41), (28, 41), (28, 41), (33, 41)], passed_over=(0, 8))
    texts = [a.text for a in figure.layout.annotations]
    assert texts.count("gold") == 1 and texts.count(plots.PASSED_OVER) == 1
    # found by a tester: the gold label, inside the plot area, was drawn over the logit lines without a background
    (gold_label,) = [a for a in figure.layout.annotations if a.text == "gold"]
    assert gold_label.bgcolor is not None
    golds = [s for s in figure.layout.shapes if s.fillcolor == plots.GOLD_COLOR]
    assert [(s.x0, s.x1) for s in golds] == [(4.5, 6.5)]  # one band over the golds' tokens
    (passed,) = [s for s in figure.layout.shapes if s.line.dash == "dash"]
    assert (passed.x0, passed.x1) == (-0.5, 1.5)
