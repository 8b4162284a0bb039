"""Region pairs over an image: boxes on the regions, arcs between them."""

from __future__ import annotations

import math
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
from matplotlib import pyplot as plt
from matplotlib.axes import Axes
from matplotlib.colors import Colormap
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, Rectangle

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
    grid_cell_names,
)
from captum_higher_order.visualization.ranking import top_interactions


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
    if grid_shape is None:  # _ranked_regions infers a square grid or asks for one
        raise ValueError("Pass grid_shape or region_mask.")
    gh, gw = grid_shape
    if gh * gw != num_regions:
        raise ValueError(f"grid_shape {grid_shape} has {gh * gw} cells, not {num_regions}.")
    cell_h, cell_w = height / gh, width / gw
    return {
        r: ((r % gw) * cell_w - 0.5, (r // gw) * cell_h - 0.5, cell_w, cell_h)
        for r in range(num_regions)
    }


def _ranked_regions(
    pairs: Any,
    k: int,
    sign: str,
    grid_shape: Optional[Tuple[int, int]],
    mask: Optional[np.ndarray],
) -> Tuple[Any, int, Optional[Tuple[int, int]]]:
    """The ``k`` strongest region sets, the number of regions and the grid, if any."""
    listed = isinstance(pairs, (Mapping, list, tuple))
    if listed:
        ranked = top_interactions(pairs, k=k, sign=sign)
        ids = {i for key, _ in ranked for i in key}
        num_regions = (max(ids) + 1) if ids else 0
        if grid_shape is None and mask is None:
            raise ValueError("With a ranked list or dict, pass grid_shape or region_mask.")
    else:
        arr = _square_matrix(pairs, "pairs")
        num_regions = arr.shape[0]
        ranked = top_interactions(arr, k=k, sign=sign)
        if grid_shape is None and mask is None:
            side = int(round(math.sqrt(num_regions)))
            if side * side != num_regions:
                raise ValueError(
                    f"{num_regions} regions do not form a square grid; pass grid_shape=(h, w) "
                    "(the layer's spatial size) or region_mask."
                )
            grid_shape = (side, side)
    if grid_shape is not None:
        num_regions = grid_shape[0] * grid_shape[1]
    return ranked, num_regions, grid_shape


def _region_name_list(
    region_names: Optional[Sequence[str]],
    grid_shape: Optional[Tuple[int, int]],
    boxes: Mapping[int, Any],
) -> Dict[int, str]:
    if region_names is not None:
        names = [str(n) for n in region_names]
        missing = [r for r in boxes if not 0 <= r < len(names)]
        if missing:
            raise ValueError(
                f"region_names has {len(names)} entries; region {missing[0]} has no name."
            )
        return {r: names[r] for r in boxes}
    grid_shape = grid_shape or _grid_of_boxes(boxes)
    if grid_shape is not None:
        cells = grid_cell_names(grid_shape)
        return {r: cells[r] for r in boxes}
    return {r: str(r) for r in boxes}


def _grid_of_boxes(
    boxes: Mapping[int, Tuple[float, float, float, float]],
) -> Optional[Tuple[int, int]]:
    """``(rows, cols)`` when the mask's regions are the cells of a grid numbered
    row-major (e.g. ``block_mask``), so they can be named ``"(row, col)"``."""
    xs = sorted({b[0] for b in boxes.values()})
    ys = sorted({b[1] for b in boxes.values()})
    rows, cols = len(ys), len(xs)
    if sorted(boxes) != list(range(rows * cols)):
        return None
    for r, (x0, y0, _, _) in boxes.items():
        if (ys.index(y0), xs.index(x0)) != divmod(r, cols):
            return None
    return rows, cols


def _draw_regions(
    ax: Axes, ranked: Any, boxes: Mapping[int, Tuple[float, float, float, float]],
    names: Optional[Mapping[int, str]],
) -> None:
    """One cyan box per region in a drawn set, its name in the top-left corner."""
    drawn = set()
    for key, _ in ranked:
        for r in key:
            if r in drawn:
                continue
            drawn.add(r)
            x0, y0, w, h = boxes[r]
            ax.add_patch(Rectangle((x0, y0), w, h, fill=False, edgecolor="cyan", linewidth=1.2))
            if names is not None:
                ax.text(x0 + 0.1 * w, y0 + 0.1 * h, names[r], color="white", fontsize=6,
                        ha="left", va="top",
                        bbox={"boxstyle": "square,pad=0.1", "facecolor": "black",
                              "alpha": 0.55, "linewidth": 0})


def visualize_image_interactions(
    image: ArrayLike,
    pairs: Union[ArrayLike, Mapping[Tuple[int, ...], float], Sequence[Any]],
    k: int = 5,
    grid_shape: Optional[Tuple[int, int]] = None,
    region_mask: Optional[ArrayLike] = None,
    sign: str = "all",
    cmap: Optional[Union[str, Colormap]] = None,
    max_linewidth: float = 4.0,
    show_colorbar: bool = False,
    title: Optional[str] = None,
    plt_fig_axis: Optional[Tuple[Figure, Axes]] = None,
    fig_size: Tuple[float, float] = (5, 5),
    use_pyplot: bool = True,
    min_relative_strength: float = MIN_RELATIVE_STRENGTH,
    max_strength: Optional[float] = None,
    region_names: Optional[Sequence[str]] = None,
    label_regions: bool = True,
    show_legend: bool = True,
    label: Optional[Any] = None,
    prediction: Optional[Any] = None,
    probability: Optional[float] = None,
) -> Tuple[Figure, Axes]:
    r"""Draw the strongest region pairs over an image: boxes linked by arcs.

    For TaylorCAM's region-pair map (cells of a convolutional layer, a grid
    over the image) or grouped SmoothHess / IntegratedHessians (superpixels of
    a ``feature_mask``). Each of the ``k`` strongest pairs gets a box on both
    regions (named in its corner, ``"(row, col)"`` for grid cells) and an arc
    between their centres. The arc's colour is the pair's sign (green
    positive, red negative), its width and opacity its ``|score|`` relative to
    ``max_strength`` (the strongest pair drawn, unless given). Pairs weaker
    than ``min_relative_strength`` times that are not drawn; the legend below
    the image reads the encoding and counts what was left out.

    Args:
        image (array or Tensor): ``(H, W)``, ``(H, W, C)``, ``(C, H, W)`` or
            ``(1, C, H, W)``.
        pairs (array, Tensor, dict or list): An ``(R, R)`` region-pair matrix
            (or ``(1, R, R)``), ``{(r, s): value}`` or a ranked list.
        k (int, optional): Pairs to draw at most. Default: 5
        grid_shape (tuple[int, int], optional): Regions are the cells of an
            ``h x w`` grid over the image, numbered row-major (a layer's spatial
            size). Default: None (a square grid when R is a square)
        region_mask (array or Tensor, optional): ``(H, W)`` integer region ids
            (e.g. a ``feature_mask``); boxes are the regions' bounding boxes.
            Default: None
        sign (str, optional): Ranking rule (see :func:`top_interactions`); with
            ``"absolute_value"`` arcs are one colour (the sign is dropped).
            Default: ``"all"`` (ranked by magnitude, coloured by sign)
        cmap (str or Colormap, optional): Colour arcs by relative ``|score|``
            with this colormap instead of by sign. Default: None
        max_linewidth (float, optional): Width of the strongest arc. Default: 4
        show_colorbar (bool, optional): With ``cmap``, a colorbar of
            ``|score|``. Default: False
        title (str, optional): Default: None
        plt_fig_axis (tuple, optional): Default: None
        fig_size (tuple, optional): Default: (5, 5)
        use_pyplot (bool, optional): Default: True
        min_relative_strength (float, optional): Pairs with ``|score|`` below
            this fraction of ``max_strength`` are not drawn. Default: 0.01
        max_strength (float, optional): The ``|score|`` drawn at full width.
            Pass one value to several panels to compare them (a sample whose
            pairs are all tiny then draws nothing). Default: None (the
            strongest pair of this panel)
        region_names (sequence of str, optional): Name of each region id.
            Default: None (``"(row, col)"`` for grid cells, the id for a mask)
        label_regions (bool, optional): Write the names on the boxes.
            Default: True
        show_legend (bool, optional): The legend of colour and width below the
            image. Default: True
        label, prediction (optional): The sample's true label and predicted
            class, added to the title (``"label 5, predicted 3"``). Default: None
        probability (float, optional): The predicted probability, added to the
            title. Default: None

    Returns:
        tuple[Figure, Axes]: One :class:`~matplotlib.patches.FancyArrowPatch` per
        drawn pair and one :class:`~matplotlib.patches.Rectangle` per distinct
        region of a drawn pair.

    Examples::

        >>> import torch
        >>> from captum_higher_order.visualization import visualize_image_interactions
        >>> pair_map = torch.zeros(16, 16); pair_map[0, 15] = pair_map[15, 0] = 1.0
        >>> pair_map[1, 2] = pair_map[2, 1] = 1e-7    # too weak to draw
        >>> fig, ax = visualize_image_interactions(torch.rand(1, 8, 8), pair_map, k=2,
        ...                                        use_pyplot=False)
        >>> len(ax.patches)   # two boxes and one arc
        3
        >>> [t.get_text() for t in ax.texts]   # the boxes are grid cells (row, col)
        ['(0, 0)', '(3, 3)']
    """
    img, gray = _image_hw(image)
    height, width = img.shape[:2]
    mask = None if region_mask is None else _to_numpy(region_mask, "region_mask").astype(int)
    ranked, num_regions, grid = _ranked_regions(pairs, k, sign, grid_shape, mask)
    boxes = _region_boxes(num_regions, height, width, grid, mask)
    for key, _ in ranked:
        for r in key:
            if r not in boxes:
                raise ValueError(f"Region {r} is not in the grid / region_mask.")
    scale = ArcScale.for_ranked(ranked, max_strength, max_linewidth, min_relative_strength)
    drawn, hidden = scale.split(ranked)

    fig, ax = _fig_axis(plt_fig_axis, use_pyplot, fig_size)
    ax.imshow(img, cmap="gray" if gray else None, vmin=0.0, vmax=1.0)
    ax.set_xticks([])
    ax.set_yticks([])
    names = (_region_name_list(region_names, grid if mask is None else None, boxes)
             if label_regions else None)
    _draw_regions(ax, drawn, boxes, names)
    colormap = None if cmap is None else plt.get_cmap(cmap)
    for key, value in drawn:
        centres = [(boxes[r][0] + boxes[r][2] / 2, boxes[r][1] + boxes[r][3] / 2) for r in key]
        color = (arc_color(value, sign) if colormap is None
                 else colormap(0.25 + 0.75 * scale.relative(value)))
        # a k-way set is drawn as a chain of arcs through its regions; a pair as one arc
        for (xa, ya), (xb, yb) in zip(centres[:-1], centres[1:]):
            ax.add_patch(FancyArrowPatch(
                (xa, ya), (xb, yb), arrowstyle="-", connectionstyle="arc3,rad=0.3",
                linewidth=scale.linewidth(value), color=color, alpha=scale.alpha(value),
            ))
    if ranked and not drawn:  # say why the panel is empty rather than look broken
        ax.text(width / 2 - 0.5, height / 2 - 0.5,
                f"no pair drawn:\nstrongest here {abs(ranked[0][1]):.1g},\n"
                f"< {scale.min_relative:.0%} of the scale {scale.reference:.2g}",
                ha="center", va="center", fontsize=7, color="black",
                bbox={"facecolor": "white", "alpha": 0.8, "linewidth": 0})
    if show_colorbar and colormap is not None:
        mappable = plt.cm.ScalarMappable(cmap=colormap)
        mappable.set_clim(0.0, scale.reference)
        cbar = fig.colorbar(mappable, ax=ax, fraction=0.046, pad=0.04)
        cbar.set_label("|pair score|", fontsize=8)
    if show_legend:
        add_arc_legend(ax, scale, drawn, hidden, sign, colored_by_sign=colormap is None)
    ax.set_xlim(-0.5, width - 0.5)
    ax.set_ylim(height - 0.5, -0.5)
    full_title = _compose_title(title, label, prediction, probability)
    if full_title:
        ax.set_title(full_title)
    _finish(use_pyplot, plt_fig_axis)
    return fig, ax
