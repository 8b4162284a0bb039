"""Token interactions: heat map with token labels, arcs over the text, padding left out."""

import matplotlib
import numpy as np
import pytest
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import PathPatch

from captum_higher_order import visualization as V

matplotlib.use("Agg")

TOKENS = ["[CLS]", "not", "a", "bad", "film", "[PAD]"]


def _planted():
    m = torch.zeros(6, 6, dtype=torch.float64)
    for (i, j), v in {(1, 3): 2.0, (1, 4): 1.0, (3, 4): -0.5, (0, 2): 1e-8, (2, 5): 9.0}.items():
        m[i, j] = m[j, i] = v
    return m


def _arcs(ax):
    return [p for p in ax.patches if isinstance(p, PathPatch)]


def test_plot_token_interactions_panels_labels_and_padding():
    mask = torch.tensor([1, 1, 1, 1, 1, 0])
    fig, axes = V.plot_token_interactions(
        TOKENS, _planted(), attention_mask=mask, k=10, title="SmoothHess", label=1,
        prediction=0, probability=0.7, use_pyplot=False,
    )
    assert isinstance(fig, Figure) and isinstance(axes, np.ndarray) and axes.shape == (2,)
    heat, arcs = axes
    assert isinstance(heat, Axes) and isinstance(arcs, Axes)
    kept = TOKENS[:5]
    assert [t.get_text() for t in heat.get_xticklabels()] == kept
    assert [t.get_text() for t in heat.get_yticklabels()] == kept
    assert np.asarray(heat.images[0].get_array()).shape == (5, 5)  # the pad row/col is gone
    assert len(fig.axes) == 3  # heat map, its colorbar, arcs
    assert fig.axes[2].get_ylabel().startswith("token interaction: green > 0, red < 0")
    assert [t.get_text() for t in arcs.texts] == kept
    assert fig._suptitle.get_text() == "SmoothHess: label 1, predicted 0 (p = 0.70)"
    # the (2, 5) pair touches padding and the 1e-8 pair is too weak: three arcs remain
    widths = [a.get_linewidth() for a in _arcs(arcs)]
    alphas = [a.get_alpha() for a in _arcs(arcs)]
    assert len(widths) == 3 and widths[0] > widths[1] > widths[2]
    assert alphas[0] > alphas[1] > alphas[2]
    assert (widths[1] - widths[2]) / (widths[0] - widths[2]) == pytest.approx(1 / 3)
    colors = [matplotlib.colors.to_hex(a.get_edgecolor()) for a in _arcs(arcs)]
    assert colors == [V.POSITIVE_COLOR, V.POSITIVE_COLOR, V.NEGATIVE_COLOR]
    legend = [t.get_text() for t in arcs.get_legend().get_texts()]
    assert "negative pair" in legend and any("not drawn (1 here)" in t for t in legend)


def test_token_arcs_alone_into_given_axes_and_errors():
    fig, ax = V.visualize_token_arcs(TOKENS, _planted(), k=2, use_pyplot=False)
    assert isinstance(ax, Axes) and len(_arcs(ax)) == 2  # (2, 5) and (1, 3), pad kept
    # arcs join the right words: the longer arc ends under "[PAD]"
    x = {t.get_text(): t.get_position()[0] for t in ax.texts}
    ends = sorted(round(v[0], 6) for v in _arcs(ax)[0].get_path().vertices[[0, -1]])
    assert ends == sorted([round(x["a"], 6), round(x["[PAD]"], 6)])
    own = Figure()
    pair = own.subplots(2, 1)
    out_fig, out_axes = V.plot_token_interactions(TOKENS, _planted(), plt_fig_axis=(own, pair),
                                                  use_pyplot=False)
    assert out_fig is own and list(out_axes) == list(pair)
    with pytest.raises(ValueError, match="one token per row"):
        V.plot_token_interactions(TOKENS[:3], _planted(), use_pyplot=False)
    with pytest.raises(ValueError, match="one 0/1 entry per token"):
        V.plot_token_interactions(TOKENS, _planted(), attention_mask=[1, 1], use_pyplot=False)
    with pytest.raises(ValueError, match="every token as padding"):
        V.visualize_token_arcs(TOKENS, _planted(), attention_mask=[0] * 6, use_pyplot=False)
    with pytest.raises(ValueError, match=r"heat_map_axis, arc_axis"):
        V.plot_token_interactions(TOKENS, _planted(), plt_fig_axis=(own, [pair[0]]),
                                  use_pyplot=False)


def test_many_tokens_are_written_vertically():
    tokens = [f"token{i}" for i in range(40)]
    m = torch.randn(40, 40, dtype=torch.float64)
    _, ax = V.visualize_token_arcs(tokens, m + m.T, use_pyplot=False)
    assert {t.get_rotation() for t in ax.texts} == {90.0}
    _, ax = V.visualize_token_arcs(TOKENS, _planted(), use_pyplot=False)
    assert {t.get_rotation() for t in ax.texts} == {0.0}
