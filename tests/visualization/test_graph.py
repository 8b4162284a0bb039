"""Interaction graphs: edges, nodes and labels."""

import matplotlib
import numpy as np
import pytest
import torch
from matplotlib.collections import PathCollection

from captum_higher_order import visualization as V

matplotlib.use("Agg")


def test_interaction_graph_edges_nodes_and_labels():
    m = torch.zeros(5, 5)
    m[0, 1] = m[1, 0] = 2.0
    m[2, 3] = m[3, 2] = -1.0
    m[3, 4] = m[4, 3] = 0.5
    main = torch.tensor([4.0, 1.0, 0.0, 2.0, 1.0])
    fig, ax = V.visualize_interaction_graph(
        m, main_effects=main, feature_names=list("vwxyz"), top_n=2, use_pyplot=False
    )
    assert len(ax.lines) == 2
    assert ax.lines[0].get_linewidth() > ax.lines[1].get_linewidth()
    assert matplotlib.colors.to_hex(ax.lines[1].get_color()) == V.NEGATIVE_COLOR
    nodes = [c for c in ax.collections if isinstance(c, PathCollection)][0]
    sizes = nodes.get_sizes()
    assert len(sizes) == 5 and np.argmax(sizes) == 0 and np.argmin(sizes) == 2
    assert sorted(t.get_text() for t in ax.texts) == list("vwxyz")
    # top_n larger than the number of nonzero pairs: only real edges are drawn
    _, ax = V.visualize_interaction_graph(m, top_n=10, use_pyplot=False)
    assert len(ax.lines) == 3


def test_interaction_graph_scales_edges_drops_tiny_ones_and_explains_itself():
    m = torch.zeros(4, 4)
    m[0, 1] = m[1, 0] = 2.0
    m[1, 2] = m[2, 1] = -1.0
    m[2, 3] = m[3, 2] = 0.5
    m[0, 3] = m[3, 0] = 1e-8
    _, ax = V.visualize_interaction_graph(m, main_effects=torch.tensor([1.0, 3.0, 0.0, 0.0]),
                                          feature_names=list("abcd"), label=0, prediction=1,
                                          use_pyplot=False)
    assert len(ax.lines) == 3
    widths = [line.get_linewidth() for line in ax.lines]
    alphas = [line.get_alpha() for line in ax.lines]
    assert widths[0] > widths[1] > widths[2] and alphas[0] > alphas[1] > alphas[2]
    assert (widths[1] - widths[2]) / (widths[0] - widths[2]) == pytest.approx(1 / 3)
    legend = ax.get_legend()
    texts = [t.get_text() for t in legend.get_texts()]
    assert "positive interaction" in texts and "negative interaction" in texts
    assert any("not drawn (1 here)" in t for t in texts)
    assert "node area: |main effect|, largest b = 3" in legend.get_title().get_text()
    assert ax.get_title() == "label 0, predicted 1"
    _, ax = V.visualize_interaction_graph(m, sign="absolute_value", use_pyplot=False)
    assert {matplotlib.colors.to_hex(line.get_color()) for line in ax.lines} == {"#2c7bb6"}


def test_absolute_value_legend_does_not_claim_colour_is_the_sign():
    m = torch.zeros(3, 3)
    m[0, 1] = m[1, 0] = -2.0
    m[1, 2] = m[2, 1] = 1.0
    _, ax = V.visualize_interaction_graph(m, sign="absolute_value", use_pyplot=False)
    title = ax.get_legend().get_title().get_text()
    assert "sign dropped" in title and "colour: sign" not in title
    _, ax = V.visualize_interaction_graph(m, sign="all", use_pyplot=False)
    assert ax.get_legend().get_title().get_text().startswith("colour: sign, width: |score|")
