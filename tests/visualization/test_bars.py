"""Bars of the strongest sets: values, colours, labels and error bars."""

import matplotlib
import pytest
import torch
from matplotlib.container import ErrorbarContainer

from captum_higher_order import visualization as V

matplotlib.use("Agg")
from tests.visualization.helpers import _bars


def test_top_interactions_bars_values_colours_and_labels():
    m = torch.tensor([[0.0, 2.0, -3.0, 0.1], [2.0, 0.0, 0.5, 0.0],
                      [-3.0, 0.5, 0.0, 0.0], [0.1, 0.0, 0.0, 0.0]])
    err = torch.full((4, 4), 0.2)
    fig, ax = V.visualize_top_interactions(
        m, k=3, feature_names=["a", "b", "c", "d"], errors=err, use_pyplot=False
    )
    bars = _bars(ax)
    assert len(bars) == 3
    by_y = sorted(bars, key=lambda b: -b.get_y())  # top bar first
    assert [b.get_width() for b in by_y] == pytest.approx([-3.0, 2.0, 0.5])
    assert matplotlib.colors.to_hex(by_y[0].get_facecolor()) == V.NEGATIVE_COLOR
    assert matplotlib.colors.to_hex(by_y[1].get_facecolor()) == V.POSITIVE_COLOR
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a × c", "a × b", "b × c"]
    errbars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(errbars) == 1 and len(errbars[0].lines[2][0].get_segments()) == 3
    with pytest.raises(ValueError, match="k must be"):
        V.visualize_top_interactions(m, k=0, use_pyplot=False)


def test_top_interactions_of_kway_sets_from_a_ranked_list():
    ranked = [((0, 1, 2), 0.9), ((3, 4), -0.4)]
    _, ax = V.visualize_top_interactions(ranked, k=5, use_pyplot=False)
    assert len(_bars(ax)) == 2
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0 × 1 × 2", "3 × 4"]


def test_top_interactions_bars_legend_axis_label_and_title():
    m = torch.tensor([[0.0, 2.0, -3.0], [2.0, 0.0, 0.0], [-3.0, 0.0, 0.0]])
    _, ax = V.visualize_top_interactions(
        m, errors=torch.full((3, 3), 0.1), label=1, prediction=2, use_pyplot=False
    )
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "positive", "negative", "\u00b1 standard error"
    ]
    assert ax.get_xlabel() == "interaction (signed, raw value)"
    assert ax.get_title() == "label 1, predicted 2"
    # only the colours present are listed
    _, ax = V.visualize_top_interactions({(0, 1): 1.0}, use_pyplot=False)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["positive"]
    _, ax = V.visualize_top_interactions(m, show_legend=False, use_pyplot=False)
    assert ax.get_legend() is None
