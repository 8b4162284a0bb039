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
