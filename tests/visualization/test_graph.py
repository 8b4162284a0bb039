"""Interaction graphs: edges, nodes and labels."""

import matplotlib
import numpy as np
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
