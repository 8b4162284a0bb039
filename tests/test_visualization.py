"""Visualizers draw what they are given: cells, bars, arcs, edges, limits and labels."""

import itertools

import matplotlib
import numpy as np
import pytest
import torch
from matplotlib.collections import PathCollection
from matplotlib.container import ErrorbarContainer
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, Rectangle

from captum_higher_order import visualization as V

matplotlib.use("Agg")


def _sym(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    m = torch.randn(n, n, generator=g, dtype=torch.float64)
    return m + m.T


def _bars(ax):
    return [p for p in ax.patches if isinstance(p, Rectangle)]


# ----------------------------------------------------------------- ranking


def test_rank_interactions_matches_brute_force_on_matrix_and_kway_tensor():
    m = _sym(6)
    ranked = V.top_interactions(m, k=None)
    brute = sorted(
        (((i, j), float(m[i, j])) for i, j in itertools.combinations(range(6), 2)),
        key=lambda t: -abs(t[1]),
    )
    assert ranked == brute and len(ranked) == 15
    assert V.top_interactions(m, k=3, sign="positive") == sorted(
        [t for t in brute if t[1] > 0], key=lambda t: -t[1]
    )[:3]
    assert all(v < 0 for _, v in V.top_interactions(m, k=None, sign="negative"))
    # a symmetric 3-way tensor with one planted set
    t = np.zeros((5, 5, 5))
    for p in itertools.permutations((0, 2, 4)):
        t[p] = -3.0
    t[1, 2, 3] = 1.0
    assert V.top_interactions(t, k=2) == [((0, 2, 4), -3.0), ((1, 2, 3), 1.0)]
    # dicts and lists are ranked too
    assert V.top_interactions({(1, 2): 0.5, (0, 3): -2.0}, k=1) == [((0, 3), -2.0)]
    with pytest.raises(ValueError, match="sign"):
        V.top_interactions(m, sign="abs")
    with pytest.raises(ValueError, match="square"):
        V.top_interactions(torch.zeros(3, 4))


def test_top_interactions_accepts_a_cross_derivatives_ranking():
    from captum_higher_order.attr.cross_derivatives import CrossDerivatives

    def f(x):
        return 3 * x[:, 0] * x[:, 1] * x[:, 2] + x[:, 3] * x[:, 4]

    x = torch.ones(2, 5, dtype=torch.float64)
    ranking = CrossDerivatives(f).attribute(x, order=3, top_k=1)
    assert V.top_interactions(ranking.as_lists()[0]) == [((0, 1, 2), 3.0)]
    one = type(ranking)(ranking.indices[:1], ranking.scores[:1])
    assert V.top_interactions(one) == [((0, 1, 2), 3.0)]
    _, ax = V.visualize_top_interactions(one, use_pyplot=False)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0 × 1 × 2"]
    with pytest.raises(ValueError, match="as_lists"):
        V.top_interactions(ranking)


def test_normalize_values_follows_captum_outlier_rule():
    vals = np.array([0.0, 1.0, -2.0, 100.0])
    out = V.normalize_values(vals, "all", outlier_perc=0)
    np.testing.assert_allclose(out, vals / 100.0)
    # clipping the top 50% of the mass saturates the outlier only
    out = V.normalize_values(vals, "absolute_value", outlier_perc=50)
    np.testing.assert_allclose(out, [0.0, 0.01, 0.02, 1.0])
    assert not V.normalize_values(np.zeros(4)).any()


# ----------------------------------------------------------------- matrix


def test_interaction_matrix_draws_every_cell_with_labels_and_limits():
    m = _sym(5)
    names = list("abcde")
    fig, ax = V.visualize_interaction_matrix(m, names, outlier_perc=0, use_pyplot=False)
    img = ax.images[0]
    data = np.asarray(img.get_array())
    assert data.shape == (5, 5)
    assert img.get_clim() == (-1.0, 1.0)
    assert not np.diag(data).any()  # zero_diagonal
    off = m.numpy() - np.diag(np.diag(m.numpy()))
    np.testing.assert_allclose(data, off / np.abs(off).max())
    assert [t.get_text() for t in ax.get_yticklabels()] == names
    assert len(fig.axes) == 2  # the colorbar


def test_interaction_matrix_top_k_ordering_and_sign():
    m = torch.zeros(6, 6)
    m[1, 4] = m[4, 1] = 3.0
    m[2, 4] = m[4, 2] = -1.0
    m[0, 5] = m[5, 0] = 0.1
    fig, ax = V.visualize_interaction_matrix(
        m, [f"f{i}" for i in range(6)], top_k=3, order_by_strength=True,
        sign="absolute_value", show_colorbar=False, use_pyplot=False,
    )
    assert [t.get_text() for t in ax.get_xticklabels()] == ["f4", "f1", "f2"]
    data = np.asarray(ax.images[0].get_array())
    assert data.shape == (3, 3) and ax.images[0].get_clim() == (0.0, 1.0)
    assert data.min() >= 0 and len(fig.axes) == 1
    _, ax = V.visualize_interaction_matrix(m, sign="negative", use_pyplot=False)
    assert np.asarray(ax.images[0].get_array())[2, 4] == pytest.approx(1.0)
    assert np.asarray(ax.images[0].get_array())[1, 4] == 0.0
    with pytest.raises(ValueError, match=r"matrix\[i\]"):
        V.visualize_interaction_matrix(torch.zeros(2, 3, 3), use_pyplot=False)
    with pytest.raises(ValueError, match="feature_names"):
        V.visualize_interaction_matrix(m, ["a"], use_pyplot=False)


def test_interaction_matrix_into_given_axis_with_pyplot():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    out = V.visualize_interaction_matrix(_sym(3)[None], plt_fig_axis=(fig, ax), title="H")
    assert out == (fig, ax) and ax.get_title() == "H"
    plt.close(fig)


# ----------------------------------------------------------------- bars


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


# ----------------------------------------------------------------- image pairs


def test_image_interactions_draw_one_arc_per_pair_and_one_box_per_region():
    pairs = torch.zeros(16, 16)
    for (r, s), v in {(0, 15): 3.0, (0, 5): 2.0, (6, 9): -1.0, (1, 2): 0.1}.items():
        pairs[r, s] = pairs[s, r] = v
    fig, ax = V.visualize_image_interactions(torch.rand(1, 8, 8), pairs, k=3, use_pyplot=False)
    arcs = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
    boxes = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert len(arcs) == 3
    assert len(boxes) == 5  # regions 0, 15, 5, 6, 9
    # the strongest arc is the widest
    widths = [a.get_linewidth() for a in arcs]
    assert widths[0] == max(widths) and widths[2] < widths[1] < widths[0]
    # a 4x4 grid over 8x8 pixels: cell 15 is the bottom-right 2x2 block
    corners = {(b.get_x(), b.get_y(), b.get_width(), b.get_height()) for b in boxes}
    assert (5.5, 5.5, 2.0, 2.0) in corners and (-0.5, -0.5, 2.0, 2.0) in corners
    assert ax.images[0].get_array().shape == (8, 8)


def test_image_interactions_with_region_mask_and_errors():
    mask = torch.zeros(6, 6, dtype=torch.long)
    mask[:, 3:] = 1
    mask[4:, :] = 2
    fig, ax = V.visualize_image_interactions(
        np.random.rand(6, 6, 3), {(0, 2): 1.0, (1, 2): 0.5}, k=2, region_mask=mask,
        use_pyplot=False,
    )
    boxes = {(b.get_x(), b.get_y(), b.get_width(), b.get_height())
             for b in ax.patches if isinstance(b, Rectangle)}
    assert boxes == {(-0.5, -0.5, 3.0, 4.0), (2.5, -0.5, 3.0, 4.0), (-0.5, 3.5, 6.0, 2.0)}
    with pytest.raises(ValueError, match="grid_shape"):
        V.visualize_image_interactions(torch.rand(8, 8), torch.zeros(12, 12), use_pyplot=False)
    with pytest.raises(ValueError, match="region_mask"):
        V.visualize_image_interactions(torch.rand(8, 8), [((0, 1), 1.0)], use_pyplot=False)


# ----------------------------------------------------------------- graph


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


# ----------------------------------------------------------------- side by side


def test_side_by_side_uses_captum_panels_and_marks_zero_maps():
    image = torch.rand(1, 8, 8)
    attr = torch.zeros(1, 8, 8)
    attr[0, 2, 3] = 5.0
    pairs = torch.zeros(16, 16)
    pairs[0, 5] = pairs[5, 0] = 1.0
    fig, axes = V.visualize_side_by_side(
        image, {"IG": attr, "Hessian": torch.zeros(8, 8)}, {"TaylorCAM": pairs},
        use_pyplot=False,
    )
    assert isinstance(fig, Figure) and len(axes) == 4
    assert [a.get_title() for a in axes] == ["input", "IG", "Hessian", "TaylorCAM"]
    heat = axes[1].images[0]
    assert heat.get_clim() == (0, 1)  # Captum's absolute_value limits
    assert np.asarray(heat.get_array())[2, 3] == pytest.approx(1.0)
    assert any(t.get_text() == "all zero" for t in axes[2].texts)
    assert sum(isinstance(p, FancyArrowPatch) for p in axes[3].patches) == 1
    with pytest.raises(ValueError, match="shaped like the image"):
        V.visualize_side_by_side(image, {"bad": torch.zeros(4, 4)}, use_pyplot=False)


def test_side_by_side_grid_rows_and_labels():
    images = torch.rand(3, 1, 8, 8)
    maps = {"A": torch.randn(3, 1, 8, 8), "B": torch.randn(3, 1, 8, 8)}
    fig, axes = V.visualize_side_by_side_grid(
        images, maps, row_labels=["r0", "r1", "r2"], sign="all", use_pyplot=False
    )
    assert axes.shape == (3, 3)
    assert [axes[i, 0].get_ylabel() for i in range(3)] == ["r0", "r1", "r2"]
    assert axes[0, 1].images[0].get_clim() == (-1, 1)
    with pytest.raises(ValueError, match="samples"):
        V.visualize_side_by_side_grid(images, {"A": torch.zeros(2, 1, 8, 8)}, use_pyplot=False)


def test_docstring_examples_run():
    import doctest

    result = doctest.testmod(V, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 20 and result.failed == 0
