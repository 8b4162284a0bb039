"""Shared pieces of the plots: input conversion, Captum's sign and outlier rules,
colour maps, figure/axis creation and feature names."""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np
from matplotlib import pyplot as plt
from matplotlib.axes import Axes
from matplotlib.colors import Colormap, LinearSegmentedColormap
from matplotlib.figure import Figure

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


# --------------------------------------------------------------------------- words on plots


def scale_label(sign: str, quantity: str = "interaction", outlier_perc: float = 2) -> str:
    """The colorbar label of a map normalised by :func:`normalize_values`.

    Two lines: which sign convention the colours follow (or that values are
    absolute), then the scale, which is relative: each map is divided by its
    own outlier threshold, so 1 means "as strong as this map gets".

    Args:
        sign (str): Captum's sign, see :data:`SIGNS`.
        quantity (str, optional): What the values are. Default: ``"interaction"``
        outlier_perc (float, optional): As passed to :func:`normalize_values`.
            Default: 2

    Returns:
        str: The label.

    Examples::

        >>> from captum_higher_order.visualization import scale_label
        >>> print(scale_label("all", "attribution"))
        attribution: green > 0, red < 0
        scaled to [-1, 1], top 2% saturated
        >>> print(scale_label("absolute_value", outlier_perc=0))
        |interaction| (absolute value)
        scaled to [0, 1]
    """
    _check_sign(sign)
    first = {
        "all": f"{quantity}: green > 0, red < 0",
        "positive": f"positive {quantity} only",
        "negative": f"|negative {quantity}| only",
        "absolute_value": f"|{quantity}| (absolute value)",
    }[sign]
    second = "scaled to [-1, 1]" if sign == "all" else "scaled to [0, 1]"
    if outlier_perc > 0:
        second += f", top {outlier_perc:g}% saturated"
    return f"{first}\n{second}"


def prediction_text(
    label: Optional[Any] = None,
    prediction: Optional[Any] = None,
    probability: Optional[float] = None,
) -> str:
    """``"label 5, predicted 3 (p = 0.62)"``: what a title says about a sample.

    Any part left as None is left out; all None gives ``""``.

    Examples::

        >>> from captum_higher_order.visualization import prediction_text
        >>> prediction_text(5, 3, 0.618)
        'label 5, predicted 3 (p = 0.62)'
        >>> prediction_text(prediction="positive")
        'predicted positive'
    """
    parts = []
    if label is not None:
        parts.append(f"label {label}")
    if prediction is not None:
        parts.append(f"predicted {prediction}")
    text = ", ".join(parts)
    if probability is not None:
        text = f"{text} (p = {float(probability):.2f})" if text else f"p = {float(probability):.2f}"
    return text


def _compose_title(
    title: Optional[str],
    label: Optional[Any] = None,
    prediction: Optional[Any] = None,
    probability: Optional[float] = None,
) -> str:
    """``"SmoothHess: label 5, predicted 3"`` from a title and what is known of the sample."""
    about = prediction_text(label, prediction, probability)
    if title and about:
        return f"{title}: {about}"
    return title or about


def grid_cell_names(grid_shape: Sequence[int]) -> List[str]:
    """Readable names of the cells of a grid, in row-major order (region ids).

    ``(rows, cols)`` gives ``"(row, col)"``; ``(channels, rows, cols)`` gives
    ``"(channel, row, col)"``, the order of a flattened ``(C, H, W)`` layer.

    Args:
        grid_shape (sequence of int): ``(rows, cols)`` or ``(channels, rows, cols)``.

    Returns:
        list[str]: One name per cell, cell ``r * cols + c`` named ``"(r, c)"``.

    Examples::

        >>> from captum_higher_order.visualization import grid_cell_names
        >>> grid_cell_names((2, 2))
        ['(0, 0)', '(0, 1)', '(1, 0)', '(1, 1)']
        >>> grid_cell_names((2, 1, 2))[3]
        '(1, 0, 1)'
    """
    shape = tuple(int(s) for s in grid_shape)
    if len(shape) not in (2, 3) or min(shape) < 1:
        raise ValueError(
            f"grid_shape must be (rows, cols) or (channels, rows, cols) of positive sizes, "
            f"got {tuple(grid_shape)}."
        )
    return ["(" + ", ".join(str(int(i)) for i in idx) + ")" for idx in np.ndindex(*shape)]
