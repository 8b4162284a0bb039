"""An input next to precomputed maps and region-pair panels, one row per sample."""

from __future__ import annotations

from typing import Any, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from matplotlib import pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from captum_higher_order.visualization._arcs import MIN_RELATIVE_STRENGTH, ranked_reference
from captum_higher_order.visualization._common import (
    ArrayLike,
    _apply_sign,
    _to_numpy,
    prediction_text,
    scale_label,
)
from captum_higher_order.visualization.image import _image_hw, visualize_image_interactions
from captum_higher_order.visualization.ranking import top_interactions


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


def _panel_axes(
    panels: int, axes: Optional[Sequence[Axes]], fig: Optional[Figure], panel_size: float,
    use_pyplot: bool,
) -> Tuple[Figure, List[Axes]]:
    if axes is None:
        size = (panel_size * panels, panel_size * 1.1 + ROOM_BELOW)
        if use_pyplot:
            fig, ax_arr = plt.subplots(1, panels, figsize=size)
        else:
            fig = Figure(figsize=size)
            ax_arr = fig.subplots(1, panels)
        return fig, list(np.atleast_1d(ax_arr))
    if fig is None:
        raise ValueError("Pass `fig` together with `axes`.")
    if len(axes) != panels:
        raise ValueError(f"{panels} panels need {panels} axes, got {len(axes)}.")
    return fig, list(axes)


#: Inches kept free below the last row for the colorbars and arc legends.
ROOM_BELOW = 0.9


def _tight_layout_with_room_below(fig: Figure, panel_axes: Sequence[Axes]) -> None:
    """``tight_layout`` of the panels, the colorbars and legends hanging below them.

    Left in the layout, the legends and colorbar labels (wider than a panel)
    make ``tight_layout`` shrink every panel; instead they are taken out of it
    and the bottom ``ROOM_BELOW`` inches of the figure are kept for them.
    A later ``fig.tight_layout()`` by the caller would shrink the panels again.
    """
    hanging: List[Any] = [child for ax in panel_axes for child in ax.child_axes]
    hanging += [ax.get_legend() for ax in panel_axes if ax.get_legend() is not None]
    for artist in hanging:
        artist.set_in_layout(False)
    fig.tight_layout(rect=(0.0, ROOM_BELOW / fig.get_figheight(), 1.0, 1.0))
    for artist in hanging:  # back in, so savefig(bbox_inches="tight") keeps them
        artist.set_in_layout(True)


def _map_colorbar(fig: Figure, ax: Axes, sign: str, outlier_perc: float) -> None:
    """A horizontal colorbar just below a Captum map panel, without shrinking the panel."""
    cax = ax.inset_axes((0.06, -0.1, 0.88, 0.06))
    cbar = fig.colorbar(ax.images[-1], cax=cax, orientation="horizontal")
    low, high = ax.images[-1].get_clim()
    cbar.set_ticks([low, (low + high) / 2, high])
    cbar.ax.tick_params(labelsize=6, length=2, pad=1)
    cbar.set_label(scale_label(sign, "attribution", outlier_perc), fontsize=6, labelpad=1)


def _draw_map(
    fig: Figure, ax: Axes, arr: np.ndarray, rgb: np.ndarray, name: str, sign: str,
    outlier_perc: float, method: str, show_colorbar: bool,
) -> None:
    """One input-shaped map with Captum's visualizer; an all-zero map is marked as such."""
    from captum.attr import visualization as captum_viz

    if not np.any(_apply_sign(arr, sign)):
        ax.imshow(np.zeros(arr.shape), cmap="Greys", vmin=0.0, vmax=1.0)
        ax.text(arr.shape[1] / 2 - 0.5, arr.shape[0] / 2 - 0.5, "all zero",
                ha="center", va="center", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    else:
        captum_viz.visualize_image_attr(
            arr[..., None], rgb if method != "heat_map" else None, method=method, sign=sign,
            outlier_perc=outlier_perc, plt_fig_axis=(fig, ax), use_pyplot=False,
        )
        if show_colorbar:
            _map_colorbar(fig, ax, sign, outlier_perc)
    ax.set_title(name, fontsize=9)


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
    show_colorbar: bool = True,
    show_legend: bool = True,
    pair_scales: Optional[Mapping[str, float]] = None,
    region_mask: Optional[ArrayLike] = None,
    region_names: Optional[Sequence[str]] = None,
    min_relative_strength: float = MIN_RELATIVE_STRENGTH,
    label: Optional[Any] = None,
    prediction: Optional[Any] = None,
    probability: Optional[float] = None,
) -> Tuple[Figure, np.ndarray]:
    r"""One row: the input, then precomputed maps, then region-pair panels.

    Accepts results that were computed elsewhere (Captum's IG,
    SecondOrderSaliency, GroupSparseSaliency, SmoothGrad from SmoothHess, ...),
    so it needs none of the methods. Maps are drawn with Captum's own
    ``captum.attr.visualization.visualize_image_attr`` (same ``sign``,
    ``outlier_perc`` and ``method``), each with a colorbar below it that says
    the sign convention and the scale; region-pair maps (TaylorCAM) with
    :func:`visualize_image_interactions` (arcs coloured by sign, width by
    strength, a legend below). An all-zero map is drawn blank and labelled
    "all zero" (a ReLU network's exact Hessian, say).

    Args:
        image (array or Tensor): ``(C, H, W)``, ``(1, C, H, W)``, ``(H, W)`` or
            ``(H, W, C)``.
        attributions (dict[str, array or Tensor]): Title -> input-shaped map,
            in panel order.
        image_interactions (dict[str, array or Tensor], optional): Title ->
            ``(R, R)`` region-pair map. Default: None
        grid_shape (tuple[int, int], optional): Grid of the region-pair maps.
            Default: None (square)
        k (int, optional): Pairs drawn at most per region-pair panel. Default: 5
        sign (str, optional): Captum sign for the maps.
            Default: ``"absolute_value"``
        outlier_perc (float, optional): Default: 2
        method (str, optional): Captum method, ``"heat_map"`` or
            ``"blended_heat_map"``. Default: ``"heat_map"``
        image_title (str, optional): Title of the input panel. Default: "input"
        row_label (str, optional): Y label of the input panel. Default: None
            (made from ``label``, ``prediction`` and ``probability``, e.g.
            ``"label 5, predicted 3 (p = 0.62)"``)
        axes (sequence of Axes, optional): Draw into these (one per panel),
            e.g. a row of a larger grid; then ``fig`` is required. Default: None
        fig (Figure, optional): The figure owning ``axes``. Default: None
        panel_size (float, optional): Inches per panel. Default: 2.2
        use_pyplot (bool, optional): Default: True
        show_colorbar (bool, optional): A colorbar below each map. Default: True
        show_legend (bool, optional): The arc legend below each region-pair
            panel. Default: True
        pair_scales (dict[str, float], optional): Title -> the ``|score|``
            drawn at full width in that region-pair panel (see
            ``max_strength`` of :func:`visualize_image_interactions`).
            Default: None (each panel's strongest pair)
        region_mask (array or Tensor, optional): ``(H, W)`` region ids of the
            region-pair maps, instead of a grid. Default: None
        region_names (sequence of str, optional): Names of the regions.
            Default: None (``"(row, col)"`` for grid cells)
        min_relative_strength (float, optional): Pairs weaker than this
            fraction of the panel's scale are not drawn. Default: 0.01
        label, prediction, probability (optional): What is known of the
            sample, for the row label. Default: None

    Returns:
        tuple[Figure, numpy.ndarray]: The figure and the array of panel axes
        (colorbars are inset axes of their panels).

    Examples::

        >>> import torch
        >>> from captum.attr import IntegratedGradients
        >>> from captum_higher_order.visualization import visualize_side_by_side
        >>> from captum_higher_order.zoo import load_digits_cnn, digits_samples
        >>> model = load_digits_cnn(); x, y = digits_samples()
        >>> ig = IntegratedGradients(model).attribute(x[:1], target=y[:1])
        >>> pred = int(model(x[:1]).argmax())
        >>> fig, axes = visualize_side_by_side(x[0], {"IG": ig[0]}, label=int(y[0]),
        ...                                    prediction=pred, use_pyplot=False)
        >>> len(axes), axes[0].get_ylabel()
        (2, 'label 0, predicted 0')
    """
    img, gray = _image_hw(image)
    shape_hw = img.shape[:2]
    pair_maps = dict(image_interactions or {})
    fig, ax_list = _panel_axes(
        1 + len(attributions) + len(pair_maps), axes, fig, panel_size, use_pyplot
    )
    first = ax_list[0]
    first.imshow(img, cmap="gray" if gray else None, vmin=0.0, vmax=1.0)
    first.set_xticks([])
    first.set_yticks([])
    first.set_title(image_title, fontsize=9)
    row_label = row_label or prediction_text(label, prediction, probability)
    if row_label:
        first.set_ylabel(row_label, fontsize=8)

    rgb = img[..., None] if gray else img
    for ax, (name, attr) in zip(ax_list[1:], attributions.items()):
        _draw_map(fig, ax, _map_hw(attr, shape_hw, name), rgb, name, sign, outlier_perc,
                  method, show_colorbar)
    scales = dict(pair_scales or {})
    for ax, (name, pair_map) in zip(ax_list[1 + len(attributions):], pair_maps.items()):
        visualize_image_interactions(
            img, pair_map, k=k, grid_shape=grid_shape, region_mask=region_mask,
            region_names=region_names, max_strength=scales.get(name),
            min_relative_strength=min_relative_strength, show_legend=show_legend,
            plt_fig_axis=(fig, ax), use_pyplot=False,
        )
        ax.set_title(name, fontsize=9)
    if axes is None:
        _tight_layout_with_room_below(fig, ax_list)
        if use_pyplot:
            plt.show()
    return fig, np.array(ax_list, dtype=object)


def _row_labels(
    num: int,
    row_labels: Optional[Sequence[str]],
    labels: Optional[Sequence[Any]],
    predictions: Optional[Sequence[Any]],
    probabilities: Optional[Sequence[float]],
) -> List[str]:
    """One y label per sample: ``row_labels`` as given, else "label 5, predicted 3"."""
    for what, seq in (("row_labels", row_labels), ("labels", labels),
                      ("predictions", predictions), ("probabilities", probabilities)):
        if seq is not None and len(seq) != num:
            raise ValueError(f"{what} has {len(seq)} entries for {num} images.")
    if row_labels is not None:
        return [str(t) for t in row_labels]
    return [
        prediction_text(
            None if labels is None else _plain(labels[i]),
            None if predictions is None else _plain(predictions[i]),
            None if probabilities is None else float(probabilities[i]),
        )
        for i in range(num)
    ]


def _plain(value: Any) -> Any:
    """A class index as an int (a 0-d tensor prints as ``tensor(5)`` otherwise)."""
    return value.item() if hasattr(value, "item") else value


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
    labels: Optional[Sequence[Any]] = None,
    predictions: Optional[Sequence[Any]] = None,
    probabilities: Optional[Sequence[float]] = None,
    shared_pair_scale: bool = True,
    region_mask: Optional[ArrayLike] = None,
    region_names: Optional[Sequence[str]] = None,
    min_relative_strength: float = MIN_RELATIVE_STRENGTH,
) -> Tuple[Figure, np.ndarray]:
    r"""Several samples, one row each, as :func:`visualize_side_by_side`.

    Each column gets one colorbar (or arc legend) below its last row; every
    map of a column is scaled alike, so one suffices. Region-pair panels share
    one scale per column by default: arc widths are relative to the strongest
    pair of that method over all samples, so a sample whose pairs are all
    tiny draws none and says so.

    Args:
        images (array or Tensor): ``(N, C, H, W)`` (or ``(N, H, W)``).
        attributions (dict[str, array or Tensor]): Title -> batch of maps ``(N, ...)``.
        image_interactions (dict[str, array or Tensor], optional): Title ->
            ``(N, R, R)`` region-pair maps. Default: None
        row_labels (sequence of str, optional): One per sample; overrides
            ``labels``/``predictions``/``probabilities``. Default: None
        grid_shape, k, sign, outlier_perc, method: As in
            :func:`visualize_side_by_side`.
        panel_size (float, optional): Inches per panel. Default: 2.0
        use_pyplot (bool, optional): Default: True
        labels, predictions (sequence, optional): Each sample's true label
            and predicted class; rows read ``"label 5, predicted 3"``.
            Default: None
        probabilities (sequence of float, optional): Each sample's predicted
            probability, added as ``"(p = 0.62)"``. Default: None
        shared_pair_scale (bool, optional): One arc scale per region-pair
            column (True) or one per panel (False). Default: True
        region_mask, region_names, min_relative_strength: As in
            :func:`visualize_side_by_side`.

    Returns:
        tuple[Figure, numpy.ndarray]: The figure and an ``(N, panels)`` array of axes.
    """
    imgs = _to_numpy(images, "images")
    num = imgs.shape[0]
    pair_maps = dict(image_interactions or {})
    for name, val in list(attributions.items()) + list(pair_maps.items()):
        if len(val) != num:
            raise ValueError(f"{name!r} has {len(val)} samples for {num} images.")
    texts = _row_labels(num, row_labels, labels, predictions, probabilities)
    scales = None
    if shared_pair_scale:
        scales = {name: ranked_reference([top_interactions(val[i], k=1) for i in range(num)])
                  for name, val in pair_maps.items()}
    panels = 1 + len(attributions) + len(pair_maps)
    # room below the last row for the colorbars and legends
    size = (panel_size * panels, panel_size * num * 1.05 + ROOM_BELOW)
    if use_pyplot:
        fig, ax_arr = plt.subplots(num, panels, figsize=size, squeeze=False)
    else:
        fig = Figure(figsize=size)
        ax_arr = fig.subplots(num, panels, squeeze=False)
    for i in range(num):
        last = i == num - 1
        visualize_side_by_side(
            imgs[i], {name: val[i] for name, val in attributions.items()},
            {name: val[i] for name, val in pair_maps.items()}, grid_shape=grid_shape, k=k,
            sign=sign, outlier_perc=outlier_perc, method=method,
            image_title="input" if i == 0 else "", row_label=texts[i] or None,
            axes=ax_arr[i], fig=fig, use_pyplot=False, show_colorbar=last, show_legend=last,
            pair_scales=scales, region_mask=region_mask, region_names=region_names,
            min_relative_strength=min_relative_strength,
        )
        if i > 0:
            for ax in ax_arr[i, 1:]:
                ax.set_title("")
    _tight_layout_with_room_below(fig, list(ax_arr.ravel()))
    if use_pyplot:
        plt.show()
    return fig, ax_arr
