"""Features as nodes on a circle, interactions as edges."""

from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from captum_higher_order.visualization._arcs import (
    MIN_RELATIVE_STRENGTH,
    ArcScale,
    add_arc_legend,
    arc_color,
)
from captum_higher_order.visualization._common import (
    ArrayLike,
    _compose_title,
    _fig_axis,
    _finish,
    _names,
    _square_matrix,
    _to_numpy,
)
from captum_higher_order.visualization.ranking import top_interactions


def _node_sizes(
    arr: np.ndarray, main_effects: Optional[ArrayLike], names: Sequence[str]
) -> Tuple[np.ndarray, str]:
    """Relative node sizes in [0, 1] and the sentence that says what they show."""
    num = arr.shape[0]
    if main_effects is None:
        raw, what = np.abs(np.diag(arr)), "|self-interaction| (diagonal)"
    else:
        raw = np.abs(_to_numpy(main_effects, "main_effects").reshape(-1))
        what = "|main effect|"
        if raw.size != num:
            raise ValueError(f"main_effects has {raw.size} entries for {num} features.")
    if raw.max() > 0:
        top = int(np.argmax(raw))
        return raw / raw.max(), f"node area: {what}, largest {names[top]} = {raw[top]:.2g}"
    return np.full(num, 0.5), "equal node sizes (no main effects given)"


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
    min_relative_strength: float = MIN_RELATIVE_STRENGTH,
    show_legend: bool = True,
    label: Optional[Any] = None,
    prediction: Optional[Any] = None,
    probability: Optional[float] = None,
) -> Tuple[Figure, Axes]:
    r"""Features as nodes on a circle, the ``top_n`` strongest interactions as edges.

    Node area is proportional to ``|main effect|`` (e.g. an attribution or
    SmoothGrad value per feature). An edge's colour is its sign (green
    positive, red negative; one blue with ``sign="absolute_value"``), its width
    and opacity its ``|interaction|`` relative to the strongest edge; edges
    weaker than ``min_relative_strength`` times the strongest are not drawn.
    The legend below reads the encoding and the node sizes.

    Args:
        matrix (array or Tensor): ``(F, F)`` (or ``(1, F, F)``) interactions.
        main_effects (array or Tensor, optional): ``(F,)`` (or ``(1, F)``) per
            feature. Default: None (the diagonal of ``matrix`` if it is not zero,
            else equal sizes)
        feature_names (sequence of str, optional): Node labels. Default: None
        top_n (int, optional): Edges drawn at most. Default: 10
        sign (str, optional): ``"all"``, ``"positive"``, ``"negative"`` or
            ``"absolute_value"``: which edges are eligible. Default: ``"all"``
        max_linewidth (float, optional): Width of the strongest edge. Default: 6
        max_node_size (float, optional): Marker area of the largest node.
            Default: 900
        title (str, optional): Default: None
        plt_fig_axis (tuple, optional): Default: None
        fig_size (tuple, optional): Default: (6, 6)
        use_pyplot (bool, optional): Default: True
        min_relative_strength (float, optional): Edges below this fraction of
            the strongest are not drawn. Default: 0.01
        show_legend (bool, optional): Default: True
        label, prediction, probability (optional): What is known of the
            sample, added to the title (``"label 5, predicted 3"``).
            Default: None

    Returns:
        tuple[Figure, Axes]: One Line2D per drawn edge, one scatter collection
        of nodes, one text per node label.

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
    sizes, size_text = _node_sizes(arr, main_effects, names)
    rank_sign = "absolute_value" if sign in ("all", "absolute_value") else sign
    ranked = top_interactions(arr, k=top_n, sign=rank_sign)
    scale = ArcScale.for_ranked(ranked, None, max_linewidth, min_relative_strength)
    edges, hidden = scale.split(ranked)
    angles = np.pi / 2 - 2 * np.pi * np.arange(num) / num
    xy = np.stack([np.cos(angles), np.sin(angles)], axis=1)

    fig, ax = _fig_axis(plt_fig_axis, use_pyplot, fig_size)
    for (i, j), value in edges:
        ax.plot(
            [xy[i, 0], xy[j, 0]], [xy[i, 1], xy[j, 1]], color=arc_color(value, sign),
            linewidth=scale.linewidth(value), alpha=scale.alpha(value), zorder=1,
        )
    ax.scatter(
        xy[:, 0], xy[:, 1], s=60 + (max_node_size - 60) * sizes, color="#bdbdbd",
        edgecolor="#636363", zorder=2,
    )
    for (x, y), name in zip(xy, names):
        ax.text(1.18 * x, 1.18 * y, name, ha="center", va="center", fontsize=9)
    ax.set_xlim(-1.4, 1.4)
    ax.set_ylim(-1.4, 1.4)
    ax.set_aspect("equal")
    ax.axis("off")
    if show_legend:
        add_arc_legend(ax, scale, edges, hidden, sign, what="interaction", note=size_text)
    full_title = _compose_title(title, label, prediction, probability)
    if full_title:
        ax.set_title(full_title)
    _finish(use_pyplot, plt_fig_axis)
    return fig, ax
