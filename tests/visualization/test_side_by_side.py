"""Side-by-side panels: Captum maps, zero maps and region pairs."""

import matplotlib
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch

from captum_higher_order import visualization as V

matplotlib.use("Agg")


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
