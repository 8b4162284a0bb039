"""Features as nodes on a circle, interactions as edges."""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from captum_higher_order.visualization._common import (
    NEGATIVE_COLOR,
    POSITIVE_COLOR,
    ArrayLike,
    _fig_axis,
    _finish,
    _names,
    _square_matrix,
    _to_numpy,
)
from captum_higher_order.visualization.ranking import top_interactions


def visualize_interaction_graph(
    matrix: ArrayLike,
    main_effects: Optional[ArrayLike] = None,
    feature_names: Optional[Sequence[str]] = None,
    top_n: int = 10,
    sign: str = "all",
    max_linewidth: float = 6.0,
    max_node_size: float = 900.0,
    title: Optional[str] = None,
    plt_fig_axis: Optional[Tuple[Figure, Axes]] = None,
    fig_size: Tuple[float, float] = (6, 6),
    use_pyplot: bool = True,
) -> Tuple[Figure, Axes]:
    r"""Features as nodes on a circle, the ``top_n`` strongest interactions as edges.

    Node area is proportional to ``|main effect|`` (e.g. an attribution or
    SmoothGrad value per feature); edge width to ``|interaction|``, its colour
    green for positive and red for negative values (``sign`` filters as in
    Captum).

    Args:
        matrix (array or Tensor): ``(F, F)`` (or ``(1, F, F)``) interactions.
        main_effects (array or Tensor, optional): ``(F,)`` (or ``(1, F)``) per
            feature. Default: None (the diagonal of ``matrix`` if it is not zero,
            else equal sizes)
        feature_names (sequence of str, optional): Node labels. Default: None
        top_n (int, optional): Edges drawn. Default: 10
        sign (str, optional): ``"all"``, ``"positive"``, ``"negative"`` or
            ``"absolute_value"``: which edges are eligible. Default: ``"all"``
        max_linewidth (float, optional): Width of the strongest edge. Default: 6
        max_node_size (float, optional): Marker area of the largest node.
            Default: 900
        title (str, optional): Default: None
        plt_fig_axis (tuple, optional): Default: None
        fig_size (tuple, optional): Default: (6, 6)
        use_pyplot (bool, optional): Default: True

    Returns:
        tuple[Figure, Axes]: One Line2D per edge, one scatter collection of
        nodes, one text per node label.

    Examples::

        >>> import torch
        >>> from captum_higher_order.visualization import visualize_interaction_graph
        >>> m = torch.tensor([[0., 2., 0.], [2., 0., -1.], [0., -1., 0.]])
        >>> fig, ax = visualize_interaction_graph(m, main_effects=torch.tensor([1., .5, .1]),
        ...                                       use_pyplot=False)
        >>> len(ax.lines)
        2
    """
    arr = _square_matrix(matrix)
    num = arr.shape[0]
    names = _names(feature_names, num)
    if main_effects is None:
        sizes = np.abs(np.diag(arr))
    else:
        sizes = np.abs(_to_numpy(main_effects, "main_effects").reshape(-1))
        if sizes.size != num:
            raise ValueError(f"main_effects has {sizes.size} entries for {num} features.")
    sizes = sizes / sizes.max() if sizes.max() > 0 else np.full(num, 0.5)
    rank_sign = "absolute_value" if sign in ("all", "absolute_value") else sign
    edges = top_interactions(arr, k=top_n, sign=rank_sign)
    angles = np.pi / 2 - 2 * np.pi * np.arange(num) / num
    xy = np.stack([np.cos(angles), np.sin(angles)], axis=1)

    fig, ax = _fig_axis(plt_fig_axis, use_pyplot, fig_size)
    top = max((abs(v) for _, v in edges), default=1.0) or 1.0
    for (i, j), value in edges:
        shown = abs(value) if sign == "absolute_value" else value
        ax.plot(
            [xy[i, 0], xy[j, 0]],
            [xy[i, 1], xy[j, 1]],
            color=POSITIVE_COLOR if shown >= 0 else NEGATIVE_COLOR,
            linewidth=0.5 + (max_linewidth - 0.5) * abs(value) / top,
            alpha=0.8,
            zorder=1,
        )
    ax.scatter(
        xy[:, 0],
        xy[:, 1],
        s=60 + (max_node_size - 60) * sizes,
        color="#4575b4",
        edgecolor="white",
        zorder=2,
    )
    for (x, y), name in zip(xy, names):
        ax.text(1.18 * x, 1.18 * y, name, ha="center", va="center", fontsize=9)
    ax.set_xlim(-1.4, 1.4)
    ax.set_ylim(-1.4, 1.4)
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        ax.set_title(title)
    _finish(use_pyplot, plt_fig_axis)
    return fig, ax
