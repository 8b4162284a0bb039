"""Token interactions: a heat map with the tokens on both axes, and the strongest
pairs drawn as arcs over the line of text."""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

import numpy as np
from matplotlib import pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import PathPatch
from matplotlib.path import Path

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
    _square_matrix,
    _to_numpy,
)
from captum_higher_order.visualization.matrix import visualize_interaction_matrix
from captum_higher_order.visualization.ranking import top_interactions

#: Above this many characters in the line of text, tokens are spaced evenly and
#: written vertically instead of side by side.
MAX_HORIZONTAL_CHARS = 160


def _kept_tokens(
    tokens: Sequence[str], interactions: ArrayLike, attention_mask: Optional[ArrayLike]
) -> Tuple[List[str], np.ndarray]:
    """The tokens and the ``(T', T')`` matrix without the padded positions."""
    matrix = _square_matrix(interactions, "interactions")
    names = [str(t) for t in tokens]
    if len(names) != matrix.shape[0]:
        raise ValueError(
            f"{len(names)} tokens for a ({matrix.shape[0]}, {matrix.shape[1]}) interaction "
            "matrix; pass one token per row."
        )
    if attention_mask is None:
        return names, matrix
    mask = _to_numpy(attention_mask, "attention_mask")
    if mask.ndim == 2 and mask.shape[0] == 1:
        mask = mask[0]
    if mask.shape != (len(names),):
        raise ValueError(
            f"attention_mask has shape {mask.shape}; pass one 0/1 entry per token "
            f"({len(names)},), 1 for real tokens and 0 for padding."
        )
    keep = np.flatnonzero(mask != 0)
    if keep.size == 0:
        raise ValueError("attention_mask marks every token as padding; nothing to draw.")
    return [names[i] for i in keep], matrix[np.ix_(keep, keep)]


def _token_positions(names: Sequence[str]) -> Tuple[np.ndarray, bool]:
    """x of each token's centre (in character widths) and whether to write vertically."""
    widths = np.array([max(len(n), 1) + 2.0 for n in names])
    if widths.sum() > MAX_HORIZONTAL_CHARS:
        return np.arange(len(names), dtype=float) * 2.0, True
    return np.cumsum(widths) - widths / 2, False


def _draw_token_arcs(
    ax: Axes, names: Sequence[str], drawn: Any, scale: ArcScale, sign: str
) -> None:
    x, vertical = _token_positions(names)
    # the longest drawn arc reaches the top; shorter ones are lower, so nested arcs separate
    reach = max((abs(float(x[a] - x[b])) for key, _ in drawn for a, b in zip(key, key[1:])),
                default=1.0) or 1.0
    for xi, name in zip(x, names):
        ax.text(xi, 0.0, name, ha="center", va="top", fontsize=9,
                rotation=90 if vertical else 0, family="monospace")
    for key, value in drawn:
        # a k-way set is drawn as a chain of arcs through its tokens
        for a, b in zip(key[:-1], key[1:]):
            xa, xb = sorted((float(x[a]), float(x[b])))
            peak = 0.25 + 0.75 * (xb - xa) / reach
            path = Path([(xa, 0.1), ((xa + xb) / 2, 0.1 + 2 * peak), (xb, 0.1)],
                        [Path.MOVETO, Path.CURVE3, Path.CURVE3])
            ax.add_patch(PathPatch(
                path, fill=False, edgecolor=arc_color(value, sign),
                linewidth=scale.linewidth(value), alpha=scale.alpha(value),
            ))
    pad = 2.0 if not vertical else 1.0
    ax.set_xlim(float(x[0]) - pad, float(x[-1]) + pad)
    # room below the line for the words: one line of text, or the longest word upright
    longest = max(len(n) for n in names)
    ax.set_ylim(-min(0.12 * longest + 0.1, 2.5) if vertical else -0.35, 1.2)
    ax.axis("off")


def visualize_token_arcs(
    tokens: Sequence[str],
    interactions: ArrayLike,
    attention_mask: Optional[ArrayLike] = None,
    k: int = 5,
    sign: str = "all",
    max_linewidth: float = 4.0,
    min_relative_strength: float = MIN_RELATIVE_STRENGTH,
    max_strength: Optional[float] = None,
    show_legend: bool = True,
    title: Optional[str] = None,
    label: Optional[Any] = None,
    prediction: Optional[Any] = None,
    probability: Optional[float] = None,
    plt_fig_axis: Optional[Tuple[Figure, Axes]] = None,
    fig_size: Optional[Tuple[float, float]] = None,
    use_pyplot: bool = True,
) -> Tuple[Figure, Axes]:
    r"""The ``k`` strongest token pairs as arcs over the line of text.

    Arc colour is the pair's sign (green positive, red negative; blue with
    ``sign="absolute_value"``), width and opacity its ``|score|`` relative to
    ``max_strength`` (the strongest pair, unless given); pairs weaker than
    ``min_relative_strength`` times that are not drawn. Longer-range pairs
    get higher arcs. The legend below reads the encoding.

    Args:
        tokens (sequence of str): One per row of ``interactions``.
        interactions (array or Tensor): ``(T, T)`` (or ``(1, T, T)``) token
            interactions (e.g. grouped SmoothHess or CrossDerivatives over
            embedding positions).
        attention_mask (array or Tensor, optional): ``(T,)`` (or ``(1, T)``),
            1 for real tokens and 0 for padding (Hugging Face's convention);
            padded positions are left out. Default: None (all tokens)
        k (int, optional): Pairs drawn at most. Default: 5
        sign (str, optional): Ranking rule, see :func:`top_interactions`.
            Default: ``"all"`` (by magnitude, coloured by sign)
        max_linewidth (float, optional): Width of the strongest arc. Default: 4
        min_relative_strength (float, optional): Default: 0.01
        max_strength (float, optional): The ``|score|`` drawn at full width.
            Default: None (the strongest pair)
        show_legend (bool, optional): Default: True
        title (str, optional): Default: None
        label, prediction, probability (optional): What is known of the
            sample, added to the title. Default: None
        plt_fig_axis (tuple, optional): Default: None
        fig_size (tuple, optional): Default: None (wide enough for the text)
        use_pyplot (bool, optional): Default: True

    Returns:
        tuple[Figure, Axes]: One :class:`~matplotlib.patches.PathPatch` per
        drawn pair, one text per token.

    Examples::

        >>> import torch
        >>> from captum_higher_order.visualization import visualize_token_arcs
        >>> m = torch.zeros(4, 4); m[0, 3] = m[3, 0] = 2.0; m[1, 2] = m[2, 1] = -1.0
        >>> fig, ax = visualize_token_arcs(["not", "a", "bad", "film"], m, use_pyplot=False)
        >>> len(ax.patches), [t.get_text() for t in ax.texts]
        (2, ['not', 'a', 'bad', 'film'])
    """
    names, matrix = _kept_tokens(tokens, interactions, attention_mask)
    ranked = top_interactions(matrix, k=k, sign=sign)
    scale = ArcScale.for_ranked(ranked, max_strength, max_linewidth, min_relative_strength)
    drawn, hidden = scale.split(ranked)
    chars = sum(max(len(n), 1) + 2 for n in names)
    default_size = (min(max(chars * 0.085, 5.0), 16.0), 2.6)
    fig, ax = _fig_axis(plt_fig_axis, use_pyplot, fig_size or default_size)
    _draw_token_arcs(ax, names, drawn, scale, sign)
    if show_legend:
        add_arc_legend(ax, scale, drawn, hidden, sign, what="pair", ncol=3)
    full_title = _compose_title(title, label, prediction, probability)
    if full_title:
        ax.set_title(full_title)
    _finish(use_pyplot, plt_fig_axis)
    return fig, ax


def plot_token_interactions(
    tokens: Sequence[str],
    interactions: ArrayLike,
    attention_mask: Optional[ArrayLike] = None,
    k: int = 5,
    sign: str = "all",
    outlier_perc: float = 2,
    max_labels: int = 60,
    min_relative_strength: float = MIN_RELATIVE_STRENGTH,
    title: Optional[str] = None,
    label: Optional[Any] = None,
    prediction: Optional[Any] = None,
    probability: Optional[float] = None,
    plt_fig_axis: Optional[Tuple[Figure, Sequence[Axes]]] = None,
    fig_size: Optional[Tuple[float, float]] = None,
    use_pyplot: bool = True,
) -> Tuple[Figure, np.ndarray]:
    r"""Token interactions as a heat map (tokens on both axes) above arcs over the text.

    The heat map is :func:`visualize_interaction_matrix` with the tokens as
    labels (diagonal blanked, colorbar saying the sign convention and scale);
    the arcs are :func:`visualize_token_arcs`. Padded positions
    (``attention_mask == 0``) are left out of both. For interactions between
    the tokens of a transformer's input, e.g. SmoothHess or CrossDerivatives
    with one ``feature_mask`` group per token (Janizek et al. 2021,
    "Explaining Explanations: Axiomatic Feature Interactions for Deep
    Networks", JMLR 22).

    Args:
        tokens (sequence of str): ``T`` tokens, one per row of ``interactions``.
        interactions (array or Tensor): ``(T, T)`` (or ``(1, T, T)``).
        attention_mask (array or Tensor, optional): ``(T,)``, 1 for real
            tokens and 0 for padding. Default: None
        k (int, optional): Pairs drawn as arcs at most. Default: 5
        sign (str, optional): Captum sign for the heat map and ranking rule
            for the arcs. Default: ``"all"``
        outlier_perc (float, optional): Heat map scaling, see
            :func:`normalize_values`. Default: 2
        max_labels (int, optional): Hide the heat map's tick labels above this
            many tokens. Default: 60
        min_relative_strength (float, optional): Arcs weaker than this
            fraction of the strongest are not drawn. Default: 0.01
        title (str, optional): Figure title. Default: None
        label, prediction, probability (optional): What is known of the
            sample, added to the title (``"label 1, predicted 0"``).
            Default: None
        plt_fig_axis (tuple, optional): ``(figure, (heat_map_axis, arc_axis))``
            to draw into. Default: None
        fig_size (tuple, optional): Default: None (from the number of tokens)
        use_pyplot (bool, optional): Default: True

    Returns:
        tuple[Figure, numpy.ndarray]: The figure and its two axes, heat map
        first, arcs second (as Captum's ``visualize_image_attr_multiple``
        returns several axes).

    Examples::

        >>> import torch
        >>> from captum_higher_order.visualization import plot_token_interactions
        >>> tokens = ["[CLS]", "not", "a", "bad", "film", "[PAD]"]
        >>> m = torch.zeros(6, 6); m[1, 3] = m[3, 1] = 2.0; m[2, 4] = m[4, 2] = 1e-9
        >>> fig, (heat, arcs) = plot_token_interactions(
        ...     tokens, m, attention_mask=torch.tensor([1, 1, 1, 1, 1, 0]),
        ...     label=1, prediction=1, use_pyplot=False)
        >>> [t.get_text() for t in heat.get_xticklabels()]   # padding left out
        ['[CLS]', 'not', 'a', 'bad', 'film']
        >>> len(arcs.patches)   # the 1e-9 pair is too weak to draw
        1
    """
    names, matrix = _kept_tokens(tokens, interactions, attention_mask)
    if plt_fig_axis is not None:
        fig, given = plt_fig_axis
        if len(given) != 2:
            raise ValueError("plt_fig_axis takes (figure, (heat_map_axis, arc_axis)).")
        heat_ax, arc_ax = given
    else:
        side = min(max(0.32 * len(names) + 2.5, 5.0), 14.0)
        size = fig_size or (side + 1.0, side + 3.0)
        fig = plt.figure(figsize=size) if use_pyplot else Figure(figsize=size)
        heat_ax, arc_ax = fig.subplots(2, 1, gridspec_kw={"height_ratios": [side, 2.4]})
    visualize_interaction_matrix(
        matrix, names, sign=sign, outlier_perc=outlier_perc, max_labels=max_labels,
        quantity="token interaction", plt_fig_axis=(fig, heat_ax), use_pyplot=False,
    )
    visualize_token_arcs(
        names, matrix, k=k, sign=sign, min_relative_strength=min_relative_strength,
        plt_fig_axis=(fig, arc_ax), use_pyplot=False,
    )
    heat_ax.set_title("token interactions (row × column)", fontsize=10)
    arc_ax.set_title(f"the {k} strongest pairs (by |score|)", fontsize=10)
    full_title = _compose_title(title, label, prediction, probability)
    if full_title:
        fig.suptitle(full_title)
    if plt_fig_axis is None:
        fig.tight_layout()
        if use_pyplot:
            plt.show()
    return fig, np.array([heat_ax, arc_ax], dtype=object)
