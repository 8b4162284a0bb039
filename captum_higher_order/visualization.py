"""Interaction plots in Captum's style.

Captum's visualizers draw input-shaped maps. Higher-order methods return
feature-by-feature matrices ``(F, F)``, region-pair maps and k-way sets; this
module draws them with the same vocabulary as
:func:`captum.attr.visualization.visualize_image_attr`:

- ``sign``: ``"all"``, ``"positive"``, ``"negative"`` or ``"absolute_value"``;
- ``outlier_perc``: the percentage of the largest magnitudes clipped before the
  values are scaled to ``[-1, 1]`` (Captum's cumulative-sum threshold);
- ``plt_fig_axis``: an existing ``(figure, axis)`` to draw into;
- ``use_pyplot``: create the figure with pyplot and ``plt.show()`` it (True), or
  build a bare :class:`matplotlib.figure.Figure` and just return it (False);
- every function returns ``(figure, axis)``.

Functions: :func:`visualize_interaction_matrix` (heat map),
:func:`visualize_top_interactions` (bars of the strongest pairs or k-sets),
:func:`visualize_image_interactions` (region pairs linked over an image),
:func:`visualize_interaction_graph` (features as nodes, interactions as edges)
and :func:`visualize_side_by_side` (an input next to several precomputed maps).
:func:`top_interactions` is the ranking they share.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
from matplotlib import pyplot as plt
from matplotlib.axes import Axes
from matplotlib.colors import Colormap, LinearSegmentedColormap
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, Rectangle

try:  # pragma: no cover - torch is a hard dependency, numpy inputs work without it
    import torch
except ImportError:  # pragma: no cover
    torch = None  # type: ignore[assignment]

ArrayLike = Any  # numpy.ndarray or torch.Tensor
Ranked = List[Tuple[Tuple[int, ...], float]]

SIGNS = ("all", "positive", "negative", "absolute_value")

#: Captum's colours: green for positive, red for negative evidence.
POSITIVE_COLOR = "#1a9850"
NEGATIVE_COLOR = "#d73027"


# --------------------------------------------------------------------------- helpers


def _to_numpy(x: ArrayLike, name: str = "input") -> np.ndarray:
    if torch is not None and isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float64).numpy()
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"`{name}` must be a numpy array or a torch Tensor.") from err


def _check_sign(sign: str) -> None:
    if sign not in SIGNS:
        raise ValueError(f"sign must be one of {SIGNS}, got {sign!r}.")


def _apply_sign(values: np.ndarray, sign: str) -> np.ndarray:
    """Captum's sign filter: keep all values, the positive or negative part, or |v|."""
    _check_sign(sign)
    if sign == "positive":
        return np.maximum(values, 0.0)
    if sign == "negative":
        return np.minimum(values, 0.0)
    if sign == "absolute_value":
        return np.abs(values)
    return values


def _outlier_threshold(values: np.ndarray, outlier_perc: float) -> float:
    """The magnitude below which ``100 - outlier_perc`` % of the total |mass| lies.

    Same rule as Captum's image visualizer, so maps and matrices drawn side by
    side are scaled alike. Returns 0 for an all-zero input.
    """
    if not 0 <= outlier_perc <= 100:
        raise ValueError(f"outlier_perc must be in [0, 100], got {outlier_perc}.")
    mags = np.sort(np.abs(values[np.isfinite(values)]).ravel())
    if mags.size == 0 or mags[-1] == 0:
        return 0.0
    cums = np.cumsum(mags)
    idx = int(np.searchsorted(cums, cums[-1] * (100.0 - outlier_perc) / 100.0))
    return float(mags[min(idx, mags.size - 1)]) or float(mags[-1])


def normalize_values(values: ArrayLike, sign: str = "all", outlier_perc: float = 2) -> np.ndarray:
    """Apply ``sign``, divide by the outlier threshold and clip to ``[-1, 1]``.

    Args:
        values (array or Tensor): Any shape.
        sign (str, optional): ``"all"``, ``"positive"``, ``"negative"`` or
            ``"absolute_value"``. Default: ``"all"``
        outlier_perc (float, optional): Percentage of the largest magnitudes
            clipped. Default: 2

    Returns:
        numpy.ndarray: Values in ``[-1, 1]`` (``[0, 1]`` for positive and
        absolute value, ``[-1, 0]`` for negative); all zeros stay zeros.
    """
    arr = _apply_sign(_to_numpy(values, "values"), sign)
    scale = _outlier_threshold(arr, outlier_perc)
    if scale == 0.0:
        return np.zeros_like(arr)
    return np.clip(arr / scale, -1.0, 1.0)


def _cmap_and_limits(sign: str, cmap: Optional[Union[str, Colormap]]) -> Tuple[Any, float, float]:
    """Captum's defaults: red-white-green on [-1, 1] for "all", one hue on [0, 1] otherwise."""
    _check_sign(sign)
    if sign == "all":
        default: Any = LinearSegmentedColormap.from_list(
            "RdWhGn", [NEGATIVE_COLOR, "white", POSITIVE_COLOR]
        )
        vmin, vmax = -1.0, 1.0
    elif sign == "positive":
        default, vmin, vmax = "Greens", 0.0, 1.0
    elif sign == "negative":
        default, vmin, vmax = "Reds", 0.0, 1.0
    else:
        default, vmin, vmax = "Blues", 0.0, 1.0
    return (cmap if cmap is not None else default), vmin, vmax


def _fig_axis(
    plt_fig_axis: Optional[Tuple[Figure, Axes]],
    use_pyplot: bool,
    fig_size: Tuple[float, float],
) -> Tuple[Figure, Axes]:
    if plt_fig_axis is not None:
        return plt_fig_axis
    if use_pyplot:
        fig, ax = plt.subplots(figsize=fig_size)
        return fig, ax
    fig = Figure(figsize=fig_size)
    return fig, fig.add_subplot(1, 1, 1)


def _finish(use_pyplot: bool, plt_fig_axis: Optional[Tuple[Figure, Axes]]) -> None:
    # Captum shows the figure when it created it with pyplot; a caller who
    # passed their own axis composes a larger figure and shows it themselves.
    if use_pyplot and plt_fig_axis is None:
        plt.show()


def _square_matrix(matrix: ArrayLike, name: str = "matrix") -> np.ndarray:
    """One ``(F, F)`` matrix from ``(F, F)`` or a batch ``(1, F, F)``."""
    arr = _to_numpy(matrix, name)
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 3:
        raise ValueError(
            f"`{name}` is a batch of {arr.shape[0]} matrices; pass one sample, "
            f"e.g. {name}[i]."
        )
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise ValueError(f"`{name}` must be square (F, F), got shape {arr.shape}.")
    return arr


def _names(feature_names: Optional[Sequence[str]], num: int) -> List[str]:
    if feature_names is None:
        return [str(i) for i in range(num)]
    names = [str(n) for n in feature_names]
    if len(names) != num:
        raise ValueError(f"feature_names has {len(names)} entries for {num} features.")
    return names


def interaction_strength(matrix: ArrayLike, zero_diagonal: bool = True) -> np.ndarray:
    """Per-feature total interaction: the row sums of ``|M|`` (diagonal excluded by default)."""
    arr = np.abs(_square_matrix(matrix))
    if zero_diagonal:
        arr = arr - np.diag(np.diag(arr))
    return arr.sum(axis=1)


# --------------------------------------------------------------------------- ranking


def top_interactions(
    interactions: Union[ArrayLike, Mapping[Tuple[int, ...], float], Sequence[Any]],
    k: Optional[int] = 10,
    sign: str = "absolute_value",
    include_diagonal: bool = False,
    max_sets: int = 2_000_000,
    drop_zeros: bool = True,
) -> Ranked:
    """The ``k`` strongest interactions as ``[((i, j, ...), value), ...]``.

    What the plots draw. Like
    :func:`captum_higher_order.metrics.interactions.rank_interactions`, but it
    also takes dicts and ranked lists (e.g. ``InteractionRanking.as_lists()``),
    filters by ``sign`` and can include the diagonal.

    Args:
        interactions (array, Tensor, dict or list): A symmetric ``(F, F)``
            matrix (or ``(1, F, F)``), a symmetric k-way tensor ``(F, ..., F)``
            (sets ``i < j < l ...`` are read), a dict ``{(i, j, ...): value}``, a
            list of ``((i, j, ...), value)`` pairs (already ranked or not), or a
            one-sample ``InteractionRanking`` from ``CrossDerivatives(top_k=...)``.
        k (int, optional): How many to keep; None keeps all. Default: 10
        sign (str, optional): Rank by ``|value|`` (``"absolute_value"``, and
            ``"all"``), by value (``"positive"``, largest first, positive only) or
            by minus value (``"negative"``, negative only).
            Default: ``"absolute_value"``
        include_diagonal (bool, optional): For matrices, also rank the diagonal
            (self-interactions ``(i, i)``). Default: False
        max_sets (int, optional): Refuse k-way tensors with more sets than this
            (pass a ranked list instead). Default: 2,000,000
        drop_zeros (bool, optional): Leave out exact zeros (no interaction).
            Default: True

    Returns:
        list[tuple[tuple[int, ...], float]]: Strongest first, values signed.
    """
    _check_sign(sign)
    items: Ranked
    if hasattr(interactions, "indices") and hasattr(interactions, "scores"):
        interactions = _from_ranking(interactions)
    if isinstance(interactions, Mapping):
        items = [(tuple(int(i) for i in key), float(v)) for key, v in interactions.items()]
    elif isinstance(interactions, (list, tuple)) and (
        len(interactions) == 0 or isinstance(interactions[0], (list, tuple))
    ):
        items = []
        for entry in interactions:
            if len(entry) != 2:
                raise ValueError("A ranked list holds ((i, j, ...), value) pairs.")
            key, v = entry
            items.append((tuple(int(i) for i in key), float(v)))
    else:
        arr = _to_numpy(interactions, "interactions")
        if arr.ndim >= 3 and arr.shape[0] == 1 and len(set(arr.shape[1:])) == 1:
            arr = arr[0]
        if arr.ndim < 2 or len(set(arr.shape)) != 1:
            raise ValueError(
                "interactions must be a square (F, F) matrix, a symmetric k-way tensor "
                f"(F, ..., F), a dict or a ranked list; got shape {arr.shape}."
            )
        size, order = arr.shape[0], arr.ndim
        if order == 2:
            rows, cols = np.triu_indices(size, k=0 if include_diagonal else 1)
            items = [((int(i), int(j)), float(arr[i, j])) for i, j in zip(rows, cols)]
        else:
            if math.comb(size, order) > max_sets:
                raise ValueError(
                    f"{math.comb(size, order)} sets of {order} features; pass a ranked "
                    "list of ((i, j, ...), value) instead of the dense tensor."
                )
            items = [(s, float(arr[s])) for s in itertools.combinations(range(size), order)]
    if drop_zeros:
        items = [t for t in items if t[1] != 0]
    if sign == "positive":
        items = sorted((t for t in items if t[1] > 0), key=lambda t: -t[1])
    elif sign == "negative":
        items = sorted((t for t in items if t[1] < 0), key=lambda t: t[1])
    else:
        items = sorted(items, key=lambda t: -abs(t[1]))
    return items if k is None else items[:k]


def _from_ranking(ranking: Any) -> Ranked:
    """One sample of an ``InteractionRanking`` (``indices (B, k, order)``, ``scores (B, k)``)."""
    indices, scores = _to_numpy(ranking.indices, "indices"), _to_numpy(ranking.scores, "scores")
    if indices.ndim == 3:
        if indices.shape[0] != 1:
            raise ValueError(
                f"The ranking holds {indices.shape[0]} samples; pass one, e.g. "
                "ranking.as_lists()[i]."
            )
        indices, scores = indices[0], scores[0]
    return [(tuple(int(i) for i in key), float(v)) for key, v in zip(indices, scores)]


def _set_label(key: Tuple[int, ...], names: Optional[Sequence[str]]) -> str:
    return " \u00d7 ".join(str(names[i]) if names is not None else str(i) for i in key)


# --------------------------------------------------------------------------- matrix


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

    Returns:
        tuple[Figure, Axes]: The figure and the axis holding the image.

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
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    if title:
        ax.set_title(title)
    _finish(use_pyplot, plt_fig_axis)
    return fig, ax


# --------------------------------------------------------------------------- bars


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
    ax.set_xlabel("interaction")
    if title:
        ax.set_title(title)
    _finish(use_pyplot, plt_fig_axis)
    return fig, ax


# --------------------------------------------------------------------------- image pairs


def _image_hw(image: ArrayLike) -> Tuple[np.ndarray, bool]:
    """``(H, W)`` or ``(H, W, 3)`` numpy image in [0, 1] from CHW / HWC / HW input."""
    arr = _to_numpy(image, "image")
    while arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[2] not in (1, 3):
        arr = np.transpose(arr, (1, 2, 0))
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] != 3):
        raise ValueError(
            "image must be (H, W), (H, W, C) or (C, H, W) with 1 or 3 channels, "
            f"got shape {arr.shape}."
        )
    lo, hi = float(arr.min()), float(arr.max())
    if hi > 1.0 or lo < 0.0:  # 0..255 images or normalised tensors: rescale for display
        arr = (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
    return arr, arr.ndim == 2


def _region_boxes(
    num_regions: int,
    height: int,
    width: int,
    grid_shape: Optional[Tuple[int, int]],
    region_mask: Optional[np.ndarray],
) -> Dict[int, Tuple[float, float, float, float]]:
    """Bounding box ``(x0, y0, w, h)`` in pixel coordinates for each region id."""
    if region_mask is not None:
        mask = region_mask
        while mask.ndim > 2 and mask.shape[0] == 1:
            mask = mask[0]
        if mask.shape != (height, width):
            raise ValueError(
                f"region_mask has shape {mask.shape}; it must match the image ({height}, {width})."
            )
        boxes = {}
        for rid in np.unique(mask).astype(int):
            ys, xs = np.nonzero(mask == rid)
            boxes[int(rid)] = (
                xs.min() - 0.5,
                ys.min() - 0.5,
                xs.max() - xs.min() + 1.0,
                ys.max() - ys.min() + 1.0,
            )
        return boxes
    if grid_shape is None:
        side = int(round(math.sqrt(num_regions)))
        if side * side != num_regions:
            raise ValueError(
                f"{num_regions} regions do not form a square grid; pass grid_shape=(h, w) "
                "(the layer's spatial size) or region_mask."
            )
        grid_shape = (side, side)
    gh, gw = grid_shape
    if gh * gw != num_regions:
        raise ValueError(f"grid_shape {grid_shape} has {gh * gw} cells, not {num_regions}.")
    cell_h, cell_w = height / gh, width / gw
    return {
        r: ((r % gw) * cell_w - 0.5, (r // gw) * cell_h - 0.5, cell_w, cell_h)
        for r in range(num_regions)
    }


def visualize_image_interactions(
    image: ArrayLike,
    pairs: Union[ArrayLike, Mapping[Tuple[int, ...], float], Sequence[Any]],
    k: int = 5,
    grid_shape: Optional[Tuple[int, int]] = None,
    region_mask: Optional[ArrayLike] = None,
    sign: str = "absolute_value",
    cmap: Optional[Union[str, Colormap]] = None,
    max_linewidth: float = 4.0,
    show_colorbar: bool = False,
    title: Optional[str] = None,
    plt_fig_axis: Optional[Tuple[Figure, Axes]] = None,
    fig_size: Tuple[float, float] = (5, 5),
    use_pyplot: bool = True,
) -> Tuple[Figure, Axes]:
    r"""Draw the strongest region pairs over an image: boxes linked by arcs.

    For TaylorCAM's region-pair map (cells of a convolutional layer, a grid
    over the image) or grouped SmoothHess / IntegratedHessians (superpixels of
    a ``feature_mask``). Each of the ``k`` strongest pairs gets a box on both
    regions and an arc between their centres; the arc's width and colour grow
    with the pair's (normalised) strength.

    Args:
        image (array or Tensor): ``(H, W)``, ``(H, W, C)``, ``(C, H, W)`` or
            ``(1, C, H, W)``.
        pairs (array, Tensor, dict or list): An ``(R, R)`` region-pair matrix
            (or ``(1, R, R)``), ``{(r, s): value}`` or a ranked list.
        k (int, optional): Pairs to draw. Default: 5
        grid_shape (tuple[int, int], optional): Regions are the cells of an
            ``h x w`` grid over the image, numbered row-major (a layer's spatial
            size). Default: None (a square grid when R is a square)
        region_mask (array or Tensor, optional): ``(H, W)`` integer region ids
            (e.g. a ``feature_mask``); boxes are the regions' bounding boxes.
            Default: None
        sign (str, optional): Ranking rule (see :func:`top_interactions`).
            Default: ``"absolute_value"``
        cmap (str or Colormap, optional): Arc colours by strength.
            Default: ``"autumn_r"``
        max_linewidth (float, optional): Width of the strongest arc. Default: 4
        show_colorbar (bool, optional): Default: False
        title (str, optional): Default: None
        plt_fig_axis (tuple, optional): Default: None
        fig_size (tuple, optional): Default: (5, 5)
        use_pyplot (bool, optional): Default: True

    Returns:
        tuple[Figure, Axes]: One :class:`~matplotlib.patches.FancyArrowPatch` per
        pair and one :class:`~matplotlib.patches.Rectangle` per distinct region.

    Examples::

        >>> import torch
        >>> from captum_higher_order.visualization import visualize_image_interactions
        >>> pair_map = torch.zeros(16, 16); pair_map[0, 15] = pair_map[15, 0] = 1.0
        >>> fig, ax = visualize_image_interactions(torch.rand(1, 8, 8), pair_map, k=1,
        ...                                        use_pyplot=False)
        >>> len(ax.patches)   # two boxes and one arc
        3
    """
    img, gray = _image_hw(image)
    height, width = img.shape[:2]
    mask = None if region_mask is None else _to_numpy(region_mask, "region_mask").astype(int)
    if isinstance(pairs, (Mapping, list, tuple)):
        ranked = top_interactions(pairs, k=k, sign=sign)
        ids = {i for key, _ in ranked for i in key}
        num_regions = (max(ids) + 1) if ids else 0
    else:
        arr = _square_matrix(pairs, "pairs")
        num_regions = arr.shape[0]
        ranked = top_interactions(arr, k=k, sign=sign)
    if grid_shape is None and mask is None and not isinstance(pairs, (Mapping, list, tuple)):
        pass  # square grid inferred in _region_boxes
    elif grid_shape is None and mask is None:
        raise ValueError("With a ranked list or dict, pass grid_shape or region_mask.")
    if grid_shape is not None:
        num_regions = grid_shape[0] * grid_shape[1]
    boxes = _region_boxes(num_regions, height, width, grid_shape, mask)
    for key, _ in ranked:
        for r in key:
            if r not in boxes:
                raise ValueError(f"Region {r} is not in the grid / region_mask.")

    fig, ax = _fig_axis(plt_fig_axis, use_pyplot, fig_size)
    ax.imshow(img, cmap="gray" if gray else None, vmin=0.0, vmax=1.0)
    ax.set_xticks([])
    ax.set_yticks([])
    strengths = np.array([abs(v) for _, v in ranked]) if ranked else np.zeros(0)
    top = strengths.max() if strengths.size and strengths.max() > 0 else 1.0
    colormap = plt.get_cmap(cmap if cmap is not None else "autumn_r")
    drawn = set()
    for key, _ in ranked:
        for r in key:
            if r in drawn:
                continue
            drawn.add(r)
            x0, y0, w, h = boxes[r]
            ax.add_patch(
                Rectangle((x0, y0), w, h, fill=False, edgecolor="cyan", linewidth=1.2)
            )
    for (key, _value), strength in zip(ranked, strengths):
        rel = strength / top
        centres = [(boxes[r][0] + boxes[r][2] / 2, boxes[r][1] + boxes[r][3] / 2) for r in key]
        # a k-way set is drawn as a chain of arcs through its regions; a pair as one arc
        for (xa, ya), (xb, yb) in zip(centres[:-1], centres[1:]):
            ax.add_patch(
                FancyArrowPatch(
                    (xa, ya),
                    (xb, yb),
                    arrowstyle="-",
                    connectionstyle="arc3,rad=0.3",
                    linewidth=0.5 + (max_linewidth - 0.5) * rel,
                    color=colormap(0.25 + 0.75 * rel),
                    alpha=0.9,
                )
            )
    if show_colorbar:
        mappable = plt.cm.ScalarMappable(cmap=colormap)
        mappable.set_clim(0.0, float(top))
        fig.colorbar(mappable, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xlim(-0.5, width - 0.5)
    ax.set_ylim(height - 0.5, -0.5)
    if title:
        ax.set_title(title)
    _finish(use_pyplot, plt_fig_axis)
    return fig, ax


# --------------------------------------------------------------------------- graph


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


# --------------------------------------------------------------------------- side by side


def _map_hw(attr: ArrayLike, shape_hw: Tuple[int, int], name: str) -> np.ndarray:
    """An input-shaped map as ``(H, W)`` (channels summed, as Captum does)."""
    arr = _to_numpy(attr, name)
    while arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 3 and arr.shape[1:] == shape_hw:
        arr = arr.sum(axis=0)
    elif arr.ndim == 3 and arr.shape[:2] == shape_hw:
        arr = arr.sum(axis=2)
    if arr.shape != shape_hw:
        raise ValueError(
            f"map {name!r} has shape {_to_numpy(attr, name).shape}; it must be shaped like the "
            f"image {shape_hw} (channels first or last allowed)."
        )
    return arr


def visualize_side_by_side(
    image: ArrayLike,
    attributions: Mapping[str, ArrayLike],
    image_interactions: Optional[Mapping[str, ArrayLike]] = None,
    grid_shape: Optional[Tuple[int, int]] = None,
    k: int = 5,
    sign: str = "absolute_value",
    outlier_perc: float = 2,
    method: str = "heat_map",
    image_title: str = "input",
    row_label: Optional[str] = None,
    axes: Optional[Sequence[Axes]] = None,
    fig: Optional[Figure] = None,
    panel_size: float = 2.2,
    use_pyplot: bool = True,
) -> Tuple[Figure, np.ndarray]:
    r"""One row: the input, then precomputed maps, then region-pair panels.

    Accepts results that were computed elsewhere (Captum's IG,
    SecondOrderSaliency, GroupSparseSaliency, SmoothGrad from SmoothHess, ...),
    so it needs none of the methods. Maps are drawn with Captum's own
    ``captum.attr.visualization.visualize_image_attr`` (same ``sign``,
    ``outlier_perc`` and ``method``), region-pair maps (TaylorCAM) with
    :func:`visualize_image_interactions`. An all-zero map is drawn blank and
    labelled "all zero" (a ReLU network's exact Hessian, say).

    Args:
        image (array or Tensor): ``(C, H, W)``, ``(1, C, H, W)``, ``(H, W)`` or
            ``(H, W, C)``.
        attributions (dict[str, array or Tensor]): Title -> input-shaped map,
            in panel order.
        image_interactions (dict[str, array or Tensor], optional): Title ->
            ``(R, R)`` region-pair map. Default: None
        grid_shape (tuple[int, int], optional): Grid of the region-pair maps.
            Default: None (square)
        k (int, optional): Pairs drawn per region-pair panel. Default: 5
        sign (str, optional): Captum sign for the maps.
            Default: ``"absolute_value"``
        outlier_perc (float, optional): Default: 2
        method (str, optional): Captum method, ``"heat_map"`` or
            ``"blended_heat_map"``. Default: ``"heat_map"``
        image_title (str, optional): Title of the input panel. Default: "input"
        row_label (str, optional): Y label of the input panel (e.g. "label 3,
            pred 3 (0.99)"). Default: None
        axes (sequence of Axes, optional): Draw into these (one per panel),
            e.g. a row of a larger grid; then ``fig`` is required. Default: None
        fig (Figure, optional): The figure owning ``axes``. Default: None
        panel_size (float, optional): Inches per panel. Default: 2.2
        use_pyplot (bool, optional): Default: True

    Returns:
        tuple[Figure, numpy.ndarray]: The figure and the array of panel axes.

    Examples::

        >>> import torch
        >>> from captum.attr import IntegratedGradients
        >>> from captum_higher_order.visualization import visualize_side_by_side
        >>> from captum_higher_order.zoo import load_digits_cnn, digits_samples
        >>> model = load_digits_cnn(); x, y = digits_samples()
        >>> ig = IntegratedGradients(model).attribute(x[:1], target=y[:1])
        >>> fig, axes = visualize_side_by_side(x[0], {"IG": ig[0]}, use_pyplot=False)
        >>> len(axes)
        2
    """
    from captum.attr import visualization as captum_viz

    img, gray = _image_hw(image)
    shape_hw = img.shape[:2]
    pair_maps = dict(image_interactions or {})
    panels = 1 + len(attributions) + len(pair_maps)
    if axes is None:
        if use_pyplot:
            fig, ax_arr = plt.subplots(1, panels, figsize=(panel_size * panels, panel_size * 1.1))
        else:
            fig = Figure(figsize=(panel_size * panels, panel_size * 1.1))
            ax_arr = fig.subplots(1, panels)
        ax_list = list(np.atleast_1d(ax_arr))
    else:
        if fig is None:
            raise ValueError("Pass `fig` together with `axes`.")
        ax_list = list(axes)
        if len(ax_list) != panels:
            raise ValueError(f"{panels} panels need {panels} axes, got {len(ax_list)}.")
    assert fig is not None

    first = ax_list[0]
    first.imshow(img, cmap="gray" if gray else None, vmin=0.0, vmax=1.0)
    first.set_xticks([])
    first.set_yticks([])
    first.set_title(image_title, fontsize=9)
    if row_label:
        first.set_ylabel(row_label, fontsize=8)

    rgb = img[..., None] if gray else img
    for ax, (name, attr) in zip(ax_list[1:], attributions.items()):
        arr = _map_hw(attr, shape_hw, name)
        if not np.any(_apply_sign(arr, sign)):
            ax.imshow(np.zeros(shape_hw), cmap="Greys", vmin=0.0, vmax=1.0)
            ax.text(shape_hw[1] / 2 - 0.5, shape_hw[0] / 2 - 0.5, "all zero",
                    ha="center", va="center", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(name, fontsize=9)
            continue
        captum_viz.visualize_image_attr(
            arr[..., None],
            rgb if method != "heat_map" else None,
            method=method,
            sign=sign,
            outlier_perc=outlier_perc,
            plt_fig_axis=(fig, ax),
            use_pyplot=False,
        )
        ax.set_title(name, fontsize=9)
    for ax, (name, pair_map) in zip(ax_list[1 + len(attributions):], pair_maps.items()):
        visualize_image_interactions(
            img, pair_map, k=k, grid_shape=grid_shape, plt_fig_axis=(fig, ax), use_pyplot=False
        )
        ax.set_title(name, fontsize=9)
    if use_pyplot and axes is None:
        plt.show()
    return fig, np.array(ax_list, dtype=object)


def visualize_side_by_side_grid(
    images: ArrayLike,
    attributions: Mapping[str, ArrayLike],
    image_interactions: Optional[Mapping[str, ArrayLike]] = None,
    row_labels: Optional[Sequence[str]] = None,
    grid_shape: Optional[Tuple[int, int]] = None,
    k: int = 5,
    sign: str = "absolute_value",
    outlier_perc: float = 2,
    method: str = "heat_map",
    panel_size: float = 2.0,
    use_pyplot: bool = True,
) -> Tuple[Figure, np.ndarray]:
    r"""Several samples, one row each, as :func:`visualize_side_by_side`.

    Args:
        images (array or Tensor): ``(N, C, H, W)`` (or ``(N, H, W)``).
        attributions (dict[str, array or Tensor]): Title -> batch of maps ``(N, ...)``.
        image_interactions (dict[str, array or Tensor], optional): Title ->
            ``(N, R, R)`` region-pair maps. Default: None
        row_labels (sequence of str, optional): One per sample. Default: None
        grid_shape, k, sign, outlier_perc, method: As in
            :func:`visualize_side_by_side`.
        panel_size (float, optional): Inches per panel. Default: 2.0
        use_pyplot (bool, optional): Default: True

    Returns:
        tuple[Figure, numpy.ndarray]: The figure and an ``(N, panels)`` array of axes.
    """
    imgs = _to_numpy(images, "images")
    num = imgs.shape[0]
    pair_maps = dict(image_interactions or {})
    for name, val in list(attributions.items()) + list(pair_maps.items()):
        if len(val) != num:
            raise ValueError(f"{name!r} has {len(val)} samples for {num} images.")
    if row_labels is not None and len(row_labels) != num:
        raise ValueError(f"row_labels has {len(row_labels)} entries for {num} images.")
    panels = 1 + len(attributions) + len(pair_maps)
    size = (panel_size * panels, panel_size * num * 1.05)
    if use_pyplot:
        fig, ax_arr = plt.subplots(num, panels, figsize=size, squeeze=False)
    else:
        fig = Figure(figsize=size)
        ax_arr = fig.subplots(num, panels, squeeze=False)
    for i in range(num):
        visualize_side_by_side(
            imgs[i],
            {name: val[i] for name, val in attributions.items()},
            {name: val[i] for name, val in pair_maps.items()},
            grid_shape=grid_shape,
            k=k,
            sign=sign,
            outlier_perc=outlier_perc,
            method=method,
            image_title="input" if i == 0 else "",
            row_label=None if row_labels is None else row_labels[i],
            axes=ax_arr[i],
            fig=fig,
            use_pyplot=False,
        )
        if i > 0:
            for ax in ax_arr[i, 1:]:
                ax.set_title("")
    fig.tight_layout()
    if use_pyplot:
        plt.show()
    return fig, ax_arr


__all__ = [
    "SIGNS",
    "interaction_strength",
    "normalize_values",
    "top_interactions",
    "visualize_image_interactions",
    "visualize_interaction_graph",
    "visualize_interaction_matrix",
    "visualize_side_by_side",
    "visualize_side_by_side_grid",
    "visualize_top_interactions",
]
