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


def _pairs(value):
    pairs = torch.zeros(16, 16)
    pairs[0, 5] = pairs[5, 0] = value
    return pairs


def test_side_by_side_maps_carry_labelled_colorbars_and_pairs_a_legend():
    attr = torch.zeros(1, 8, 8)
    attr[0, 2, 3] = 5.0
    fig, axes = V.visualize_side_by_side(
        torch.rand(1, 8, 8), {"IG": attr, "zero": torch.zeros(8, 8)}, {"TaylorCAM": _pairs(1.0)},
        label=5, prediction=3, probability=0.62, use_pyplot=False,
    )
    assert axes[0].get_ylabel() == "label 5, predicted 3 (p = 0.62)"
    assert len(axes[1].child_axes) == 1  # the colorbar below the map
    assert axes[1].child_axes[0].get_xlabel().startswith("|attribution| (absolute value)")
    assert axes[2].child_axes == []  # an all-zero map has no scale to show
    assert axes[3].get_legend() is not None
    # the hanging colorbars and legends do not shrink the panels
    assert axes[1].get_position().height * fig.get_figheight() > 1.7
    _, axes = V.visualize_side_by_side(
        torch.rand(1, 8, 8), {"IG": attr}, {"TaylorCAM": _pairs(1.0)}, sign="all",
        show_colorbar=False, show_legend=False, row_label="mine", label=5, use_pyplot=False,
    )
    assert axes[1].child_axes == [] and axes[2].get_legend() is None
    assert axes[0].get_ylabel() == "mine"


def test_side_by_side_grid_one_colorbar_per_column_labels_and_shared_pair_scale():
    images = torch.rand(2, 1, 8, 8)
    maps = {"A": torch.randn(2, 1, 8, 8)}
    pair_maps = {"P": torch.stack([_pairs(1.0), _pairs(1e-6)])}
    fig, axes = V.visualize_side_by_side_grid(
        images, maps, pair_maps, labels=torch.tensor([5, 7]), predictions=[3, 7],
        probabilities=[0.62, 0.99], use_pyplot=False,
    )
    assert [axes[i, 0].get_ylabel() for i in range(2)] == [
        "label 5, predicted 3 (p = 0.62)", "label 7, predicted 7 (p = 0.99)"
    ]
    assert axes[0, 1].child_axes == [] and len(axes[1, 1].child_axes) == 1
    assert axes[0, 2].get_legend() is None and axes[1, 2].get_legend() is not None
    # one arc scale for the column: the 1e-6 pair of sample 1 is not drawn
    assert sum(isinstance(p, FancyArrowPatch) for p in axes[0, 2].patches) == 1
    assert sum(isinstance(p, FancyArrowPatch) for p in axes[1, 2].patches) == 0
    assert any(t.get_text().startswith("no pair drawn") for t in axes[1, 2].texts)
    assert all(ax.get_position().height * fig.get_figheight() > 1.5 for ax in axes.ravel())
    _, axes = V.visualize_side_by_side_grid(images, maps, pair_maps, shared_pair_scale=False,
                                            use_pyplot=False)
    assert sum(isinstance(p, FancyArrowPatch) for p in axes[1, 2].patches) == 1
    assert axes[0, 0].get_ylabel() == ""
    with pytest.raises(ValueError, match="predictions has 1 entries"):
        V.visualize_side_by_side_grid(images, maps, predictions=[1], use_pyplot=False)
