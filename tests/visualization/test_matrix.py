"""Interaction heat maps: cells, limits and labels."""

import matplotlib
import numpy as np
import pytest
import torch

from captum_higher_order import visualization as V

matplotlib.use("Agg")
from tests.visualization.helpers import _sym


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


def test_interaction_matrix_colorbar_label_and_title_explain_the_plot():
    m = _sym(4)
    fig, ax = V.visualize_interaction_matrix(
        m, sign="absolute_value", title="SmoothHess", label=5, prediction=3, probability=0.62,
        use_pyplot=False,
    )
    assert len(fig.axes) == 2
    cbar_label = fig.axes[1].get_ylabel()
    assert "|interaction| (absolute value)" in cbar_label and "diagonal blanked" in cbar_label
    assert ax.get_title() == "SmoothHess: label 5, predicted 3 (p = 0.62)"
    fig, _ = V.visualize_interaction_matrix(
        m, zero_diagonal=False, quantity="Hessian", use_pyplot=False
    )
    label = fig.axes[1].get_ylabel()
    assert label.startswith("Hessian: green > 0, red < 0") and "diagonal" not in label
    fig, _ = V.visualize_interaction_matrix(m, colorbar_label="mine", use_pyplot=False)
    assert fig.axes[1].get_ylabel() == "mine"
