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

from captum_higher_order.visualization._common import (
    ArrayLike,
    _fig_axis,
    _finish,
    _square_matrix,
    _to_numpy,
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
