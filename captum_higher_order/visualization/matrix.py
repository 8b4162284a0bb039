"""Heat map of a pairwise interaction matrix."""

from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import Colormap
from matplotlib.figure import Figure

from captum_higher_order.visualization._common import (
    ArrayLike,
    _cmap_and_limits,
    _compose_title,
    _fig_axis,
    _finish,
    _names,
    _square_matrix,
    normalize_values,
    scale_label,
)


def visualize_interaction_matrix(
    matrix: ArrayLike,
    feature_names: Optional[Sequence[str]] = None,
    sign: str = "all",
    top_k: Optional[int] = None,
    zero_diagonal: bool = True,
    order_by_strength: bool = False,
    outlier_perc: float = 2,
    cmap: Optional[Union[str, Colormap]] = None,
    show_colorbar: bool = True,
    annotate: bool = False,
    max_labels: int = 40,
    title: Optional[str] = None,
    plt_fig_axis: Optional[Tuple[Figure, Axes]] = None,
    fig_size: Tuple[float, float] = (6, 6),
    use_pyplot: bool = True,
    quantity: str = "interaction",
    colorbar_label: Optional[str] = None,
    label: Optional[Any] = None,
    prediction: Optional[Any] = None,
    probability: Optional[float] = None,
) -> Tuple[Figure, Axes]:
    r"""Heat map of a pairwise interaction matrix ``(F, F)``.

    Values go through Captum's ``sign`` filter and are scaled by the
    ``outlier_perc`` threshold to ``[-1, 1]``, so the colour limits are fixed:
    ``[-1, 1]`` for ``sign="all"``, ``[0, 1]`` otherwise.

    Args:
        matrix (array or Tensor): ``(F, F)``, or one sample ``(1, F, F)`` of a
            method's ``(B, F, F)`` output (pass ``result[i]`` for sample i).
        feature_names (sequence of str, optional): Tick labels. Default: None
            (indices)
        sign (str, optional): ``"all"``, ``"positive"``, ``"negative"`` or
            ``"absolute_value"``. Default: ``"all"``
        top_k (int, optional): Show only the ``top_k`` features with the largest
            total interaction (row sums of ``|M|``), in their original order
            unless ``order_by_strength``. Default: None (all)
        zero_diagonal (bool, optional): Blank the diagonal (self-interaction /
            curvature), which would otherwise dominate the colour scale.
            Default: True
        order_by_strength (bool, optional): Sort features by total interaction,
            strongest first. Default: False
        outlier_perc (float, optional): See :func:`normalize_values`. Default: 2
        cmap (str or Colormap, optional): Default: Captum's (red-white-green
            for "all", Greens/Reds/Blues otherwise)
        show_colorbar (bool, optional): Default: True
        annotate (bool, optional): Write the raw values in the cells (small F).
            Default: False
        max_labels (int, optional): Hide tick labels above this many features.
            Default: 40
        title (str, optional): Default: None
        plt_fig_axis (tuple, optional): ``(figure, axis)`` to draw into.
            Default: None
        fig_size (tuple, optional): Default: (6, 6)
        use_pyplot (bool, optional): Default: True
        quantity (str, optional): What the values are, for the colorbar label.
            Default: ``"interaction"``
        colorbar_label (str, optional): Replaces the colorbar's label, which
            by default says the sign convention and the scale (see
            :func:`scale_label`) and that the diagonal is blanked.
            Default: None
        label, prediction (optional): The sample's true label and predicted
            class, added to the title (``"label 5, predicted 3"``). Default: None
        probability (float, optional): The predicted probability, added to the
            title. Default: None

    Returns:
        tuple[Figure, Axes]: The figure and the axis holding the image (the
        colorbar is a second axis of the figure).

    Examples::

        >>> import torch
        >>> from captum_higher_order.hessian import hessian
        >>> from captum_higher_order.visualization import visualize_interaction_matrix
        >>> from captum_higher_order.zoo import load_planted_mlp, sample_inputs, FEATURE_NAMES
        >>> model = load_planted_mlp()
        >>> h = hessian(model, sample_inputs(1, seed=3))          # (1, 8, 8)
        >>> fig, ax = visualize_interaction_matrix(h[0], FEATURE_NAMES, use_pyplot=False)
    """
    arr = _square_matrix(matrix)
    names = _names(feature_names, arr.shape[0])
    if zero_diagonal:
        arr = arr - np.diag(np.diag(arr))
    keep = np.arange(arr.shape[0])
    strength = np.abs(arr).sum(axis=1) - (0 if zero_diagonal else np.abs(np.diag(arr)))
    if order_by_strength:
        keep = np.argsort(-strength, kind="stable")
    if top_k is not None:
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}.")
        chosen = np.argsort(-strength, kind="stable")[:top_k]
        keep = keep[np.isin(keep, chosen)]
    shown = arr[np.ix_(keep, keep)]
    norm = normalize_values(shown, sign, outlier_perc)
    if sign == "negative":
        norm = -norm  # Reds on [0, 1], as Captum draws negative maps
    cmap_, vmin, vmax = _cmap_and_limits(sign, cmap)

    fig, ax = _fig_axis(plt_fig_axis, use_pyplot, fig_size)
    image = ax.imshow(norm, cmap=cmap_, vmin=vmin, vmax=vmax, interpolation="nearest")
    labels = [names[i] for i in keep]
    if len(labels) <= max_labels:
        ax.set_xticks(range(len(labels)))
        ax.set_yticks(range(len(labels)))
        ax.set_xticklabels(labels, rotation=90)
        ax.set_yticklabels(labels)
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    if annotate:
        for r in range(shown.shape[0]):
            for c in range(shown.shape[1]):
                ax.text(c, r, f"{shown[r, c]:.2g}", ha="center", va="center", fontsize=7)
    if show_colorbar:
        if colorbar_label is None:
            colorbar_label = scale_label(sign, quantity, outlier_perc)
            if zero_diagonal:
                colorbar_label += "; diagonal blanked"
        cbar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        cbar.set_label(colorbar_label, fontsize=8)
    full_title = _compose_title(title, label, prediction, probability)
    if full_title:
        ax.set_title(full_title)
    _finish(use_pyplot, plt_fig_axis)
    return fig, ax
