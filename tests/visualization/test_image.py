"""Region pairs over an image: arcs and boxes."""

import matplotlib
import numpy as np
import pytest
import torch
from matplotlib.patches import FancyArrowPatch, Rectangle

from captum_higher_order import visualization as V

matplotlib.use("Agg")


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


def _planted_pairs():
    pairs = torch.zeros(16, 16)
    for (r, s), v in {(0, 15): 1.0, (0, 5): 0.5, (6, 9): -0.25, (1, 2): 1e-7}.items():
        pairs[r, s] = pairs[s, r] = v
    return pairs


def _arcs(ax):
    return [p for p in ax.patches if isinstance(p, FancyArrowPatch)]


def test_image_arcs_scale_with_score_relative_to_the_strongest_and_drop_tiny_ones():
    fig, ax = V.visualize_image_interactions(torch.rand(1, 8, 8), _planted_pairs(), k=4,
                                             use_pyplot=False)
    arcs = _arcs(ax)
    assert len(arcs) == 3  # 1e-7 next to 1.0 is not drawn
    widths = [a.get_linewidth() for a in arcs]
    alphas = [a.get_alpha() for a in arcs]
    assert widths[0] > widths[1] > widths[2] and alphas[0] > alphas[1] > alphas[2]
    # linear in |score|: the middle arc sits a third of the way from 0.25 to 1.0
    assert (widths[1] - widths[2]) / (widths[0] - widths[2]) == pytest.approx(1 / 3)
    assert (alphas[1] - alphas[2]) / (alphas[0] - alphas[2]) == pytest.approx(1 / 3)
    colors = [matplotlib.colors.to_hex(a.get_edgecolor()) for a in arcs]
    assert colors == [V.POSITIVE_COLOR, V.POSITIVE_COLOR, V.NEGATIVE_COLOR]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "positive pair" in legend and "negative pair" in legend
    assert any("|score| 1 (strongest)" == t for t in legend)
    assert any("not drawn (1 here)" in t for t in legend)
    # boxes are named by grid cell; the undrawn pair's cells get neither box nor name
    assert sorted(t.get_text() for t in ax.texts) == ["(0, 0)", "(1, 1)", "(1, 2)", "(2, 1)",
                                                      "(3, 3)"]
    _, ax = V.visualize_image_interactions(torch.rand(8, 8), _planted_pairs(), k=4,
                                           min_relative_strength=0.0, use_pyplot=False)
    assert len(_arcs(ax)) == 4
    _, ax = V.visualize_image_interactions(torch.rand(8, 8), _planted_pairs(), k=4,
                                           min_relative_strength=0.3, use_pyplot=False)
    assert len(_arcs(ax)) == 2


def test_image_arcs_against_a_shared_scale_and_without_sign():
    # a reference 1000x the strongest pair: nothing is drawn, and the panel says why
    _, ax = V.visualize_image_interactions(torch.rand(8, 8), _planted_pairs(), k=4,
                                           max_strength=1e3, use_pyplot=False)
    assert _arcs(ax) == [] and any(t.get_text().startswith("no pair drawn") for t in ax.texts)
    _, ax = V.visualize_image_interactions(torch.rand(8, 8), _planted_pairs(), k=4,
                                           max_strength=2.0, use_pyplot=False)
    assert max(a.get_linewidth() for a in _arcs(ax)) < 4.0  # the strongest is half the scale
    _, ax = V.visualize_image_interactions(torch.rand(8, 8), _planted_pairs(), k=4,
                                           sign="absolute_value", use_pyplot=False)
    assert {matplotlib.colors.to_hex(a.get_edgecolor()) for a in _arcs(ax)} == {"#2c7bb6"}
    assert "|score| (sign dropped)" in [t.get_text() for t in ax.get_legend().get_texts()]
    with pytest.raises(ValueError, match="min_relative_strength"):
        V.visualize_image_interactions(torch.rand(8, 8), _planted_pairs(),
                                       min_relative_strength=2.0, use_pyplot=False)


def test_image_region_names_from_a_block_mask_or_given():
    blocks = torch.arange(4).reshape(2, 2).repeat_interleave(2, 0).repeat_interleave(2, 1)
    _, ax = V.visualize_image_interactions(torch.rand(4, 4), {(1, 2): 1.0}, region_mask=blocks,
                                           use_pyplot=False)
    assert sorted(t.get_text() for t in ax.texts) == ["(0, 1)", "(1, 0)"]
    _, ax = V.visualize_image_interactions(torch.rand(4, 4), {(1, 2): 1.0}, region_mask=blocks,
                                           region_names=list("abcd"), use_pyplot=False)
    assert sorted(t.get_text() for t in ax.texts) == ["b", "c"]
    irregular = torch.zeros(6, 6, dtype=torch.long)
    irregular[:, 3:] = 1
    irregular[4:, :] = 2
    _, ax = V.visualize_image_interactions(torch.rand(6, 6), {(0, 2): 1.0}, region_mask=irregular,
                                           use_pyplot=False)
    assert sorted(t.get_text() for t in ax.texts) == ["0", "2"]
    _, ax = V.visualize_image_interactions(torch.rand(6, 6), {(0, 2): 1.0}, region_mask=irregular,
                                           label_regions=False, title="T", label=5,
                                           prediction=3, use_pyplot=False)
    assert len(ax.texts) == 0 and ax.get_title() == "T: label 5, predicted 3"
    with pytest.raises(ValueError, match="region_names"):
        V.visualize_image_interactions(torch.rand(4, 4), {(1, 2): 1.0}, region_mask=blocks,
                                       region_names=["a"], use_pyplot=False)
