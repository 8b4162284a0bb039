"""An input next to precomputed maps and region-pair panels, one row per sample."""

from __future__ import annotations

from typing import Mapping, Optional, Sequence, Tuple

import numpy as np
from matplotlib import pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from captum_higher_order.visualization._common import ArrayLike, _apply_sign, _to_numpy
from captum_higher_order.visualization.image import _image_hw, visualize_image_interactions


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
