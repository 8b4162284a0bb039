"""Bars of the strongest pairs or k-way sets."""

from __future__ import annotations

from typing import Any, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from captum_higher_order.visualization._common import (
    NEGATIVE_COLOR,
    POSITIVE_COLOR,
    ArrayLike,
    _compose_title,
    _fig_axis,
    _finish,
    _to_numpy,
)
from captum_higher_order.visualization.ranking import _set_label, top_interactions


def visualize_top_interactions(
    interactions: Union[ArrayLike, Mapping[Tuple[int, ...], float], Sequence[Any]],
    k: int = 10,
    feature_names: Optional[Sequence[str]] = None,
    sign: str = "absolute_value",
    include_diagonal: bool = False,
    errors: Optional[Union[ArrayLike, Mapping[Tuple[int, ...], float]]] = None,
    title: Optional[str] = None,
    plt_fig_axis: Optional[Tuple[Figure, Axes]] = None,
    fig_size: Tuple[float, float] = (6, 4),
    use_pyplot: bool = True,
    quantity: str = "interaction",
    show_legend: bool = True,
    label: Optional[Any] = None,
    prediction: Optional[Any] = None,
    probability: Optional[float] = None,
) -> Tuple[Figure, Axes]:
    r"""Horizontal bars of the ``k`` strongest pairs (or k-way sets), strongest on top.

    Bars are green for positive and red for negative values (Captum's colours);
    labels read ``"x0 × x1"``.

    Args:
        interactions (array, Tensor, dict or list): Anything
            :func:`top_interactions` accepts: an ``(F, F)`` matrix, a k-way
            tensor, ``{(i, j, ...): value}`` or a ranked list.
        k (int, optional): Number of bars. Default: 10
        feature_names (sequence of str, optional): Default: None (indices)
        sign (str, optional): Ranking rule, see :func:`top_interactions`.
            Default: ``"absolute_value"``
        include_diagonal (bool, optional): Rank self-interactions too.
            Default: False
        errors (array, Tensor or dict, optional): Standard errors drawn as error
            bars: an ``(F, F)`` matrix (e.g. SmoothHess' Monte-Carlo standard
            error) or a dict keyed like the sets. Default: None
        title (str, optional): Default: None
        plt_fig_axis (tuple, optional): Default: None
        fig_size (tuple, optional): Default: (6, 4)
        use_pyplot (bool, optional): Default: True
        quantity (str, optional): What the values are (the x label reads
            ``"<quantity> (signed, raw value)"``). Default: ``"interaction"``
        show_legend (bool, optional): A legend of the bar colours (and of the
            error bars). Default: True
        label, prediction (optional): The sample's true label and predicted
            class, added to the title (``"label 5, predicted 3"``). Default: None
        probability (float, optional): The predicted probability, added to the
            title. Default: None

    Returns:
        tuple[Figure, Axes]: One bar (a Rectangle patch) per interaction.

    Examples::

        >>> import torch
        >>> from captum_higher_order.visualization import visualize_top_interactions
        >>> m = torch.tensor([[0., 2., -1.], [2., 0., .5], [-1., .5, 0.]])
        >>> fig, ax = visualize_top_interactions(m, k=2, feature_names=["a", "b", "c"],
        ...                                      use_pyplot=False)
        >>> [t.get_text() for t in ax.get_yticklabels()]   # strongest first (on top)
        ['a × b', 'a × c']
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}.")
    ranked = top_interactions(interactions, k=k, sign=sign, include_diagonal=include_diagonal)
    if not ranked:
        raise ValueError(f"No interactions to draw for sign={sign!r}.")
    labels = [_set_label(key, feature_names) for key, _ in ranked]
    values = np.array([v for _, v in ranked])
    xerr = None
    if errors is not None:
        if isinstance(errors, Mapping):
            xerr = np.array([float(errors.get(key, 0.0)) for key, _ in ranked])
        else:
            err_arr = _to_numpy(errors, "errors")
            if err_arr.ndim == 3 and err_arr.shape[0] == 1:
                err_arr = err_arr[0]
            xerr = np.array([float(err_arr[key]) for key, _ in ranked])
    fig, ax = _fig_axis(plt_fig_axis, use_pyplot, fig_size)
    positions = np.arange(len(ranked))[::-1]  # strongest on top
    colors = [POSITIVE_COLOR if v >= 0 else NEGATIVE_COLOR for v in values]
    ax.barh(positions, values, xerr=xerr, color=colors, edgecolor="none")
    ax.set_yticks(positions)
    ax.set_yticklabels(labels)
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel(f"{quantity} (signed, raw value)")
    if show_legend:
        _bar_legend(ax, values, xerr is not None)
    full_title = _compose_title(title, label, prediction, probability)
    if full_title:
        ax.set_title(full_title)
    _finish(use_pyplot, plt_fig_axis)
    return fig, ax


def _bar_legend(ax: Axes, values: np.ndarray, has_errors: bool) -> None:
    handles: List[Any] = []
    if (values >= 0).any():
        handles.append(Patch(color=POSITIVE_COLOR, label="positive"))
    if (values < 0).any():
        handles.append(Patch(color=NEGATIVE_COLOR, label="negative"))
    if has_errors:
        handles.append(Line2D([], [], color="black", marker="|", linestyle="-",
                              label="\u00b1 standard error"))
    ax.legend(handles=handles, loc="best", fontsize=7, framealpha=0.8)
