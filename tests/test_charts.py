"""Plotly charts of runs and records: loss, training history, F1 histogram, group scores."""

from __future__ import annotations

from qa_core import charts


def test_loss_histogram_and_group_figures():
    loss = charts.loss_figure([(5, 4.0), (10, 3.2)], total_steps=20)
    assert list(loss.data[0].y) == [4.0, 3.2] and tuple(loss.layout.xaxis.range) == (0, 20)
    histogram = charts.f1_histogram([0.0, 50.0, 100.0])
    assert list(histogram.data[0].y) == [1, 0, 0, 0, 0, 1, 0, 0, 0, 1]
    groups = {"what": (3, 33.3, 50.0), "who": (1, 100.0, 100.0)}
    bars = charts.group_figure(groups, "By question word", order=("who", "what", "when"))
    assert list(bars.data[0].x) == ["who", "what"]
    assert list(bars.data[1].text) == ["n=1", "n=3"]


def test_the_f1_histogram_ends_at_100_with_perfect_scores_in_its_last_band():
    """Found by a tester: the bands ran on past 100 (to 100.001 in steps of 10), so the exactly right answers got
    a bar of their own from 100 to 110, drawn past the end of the axis."""
    histogram = charts.f1_histogram([0.0, 9.9, 10.0, 50.0, 95.0, 100.0, 100.0])
    bars = histogram.data[0]
    assert bars.type == "bar" and min(bars.x) - bars.width / 2 == 0 and max(bars.x) + bars.width / 2 == 100
    assert tuple(histogram.layout.xaxis.range) == (0, 100)
    assert histogram.layout.margin.r >= 20  # room for the label 100 on the plot's edge: plotly hid it in 10 px
    assert list(bars.y) == [2, 1, 0, 0, 0, 1, 0, 0, 0, 3]


def test_history_figure_plots_loss_learning_rate_and_scores_per_epoch():
    from qa_core.progress import ProgressEvent

    events = [ProgressEvent("step", 1, 0, 0.5, loss=3.0, learning_rate=1e-4),
              ProgressEvent("step", 2, 0, 1.0, loss=2.0, learning_rate=5e-5),
              ProgressEvent("eval", 2, 0, 1.0, metrics={"exact_match": 40.0, "f1": 55.0})]
    figure = charts.history_figure(events)
    traces = {trace.name: trace for trace in figure.data}
    assert list(traces["loss"].y) == [3.0, 2.0] and list(traces["learning rate"].y) == [1e-4, 5e-5]
    assert list(traces["EM"].x) == [1.0] and list(traces["F1"].y) == [55.0]
    assert len(charts.history_figure([]).data) == 4  # an empty history draws empty axes
