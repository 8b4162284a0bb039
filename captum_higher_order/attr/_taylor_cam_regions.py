"""TaylorCAM's regions: which cells of the layer grid form each region.

``regions`` arrive as integer id maps over the layer's spatial grid or over the
input image; a map at input resolution is resized to the grid by majority vote
(the region owning the largest share of each cell's pixels). Every channel of a
cell belongs to the cell's region, so the result is a
:class:`~captum_higher_order._inputs.FeatureGroups` over the flattened
activation ``(C * cells)``, whose indicators are the directions ``1_a`` of the
Hessian-vector products (see docs/taylor_cam.md).
"""

from __future__ import annotations

import warnings
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from captum_higher_order._inputs import FeatureGroups

__all__ = ["as_region_map", "region_groups"]


def as_region_map(
    regions: Tensor,
    batch: int,
    grid: Sequence[int],
    input_grid: Sequence[int],
) -> Tuple[Tensor, bool]:
    """``regions`` as a LongTensor ``(1 or B, *spatial)``; True if it is over
    the layer grid, False if over the input image."""
    if not isinstance(regions, Tensor):
        raise TypeError(f"`regions` must be an integer Tensor, got {type(regions).__name__}.")
    if regions.is_floating_point() or regions.is_complex() or regions.dtype == torch.bool:
        raise TypeError(f"`regions` must hold integer region ids, got dtype {regions.dtype}.")
    nsp = len(grid)
    shape = tuple(regions.shape)
    if regions.dim() == nsp:
        regions = regions.unsqueeze(0)
    elif regions.dim() == nsp + 2 and shape[1] == 1:
        regions = regions.squeeze(1)
    elif regions.dim() != nsp + 1:
        raise ValueError(
            f"`regions` has shape {shape}; use {tuple(grid)} (the layer grid) or "
            f"{tuple(input_grid)} (the input image), optionally with leading "
            "(1 or B,) or (1 or B, 1) dims."
        )
    if regions.shape[0] not in (1, batch):
        raise ValueError(
            f"`regions` has {regions.shape[0]} maps in dim 0 for a batch of {batch}; "
            "use 1 (shared) or one per sample."
        )
    spatial = tuple(regions.shape[1:])
    if spatial == tuple(grid):
        on_grid = True
    elif spatial == tuple(input_grid):
        on_grid = False
    else:
        raise ValueError(
            f"`regions` covers {spatial}, which is neither the layer grid "
            f"{tuple(grid)} nor the input size {tuple(input_grid)}."
        )
    if bool((regions < 0).any()):
        raise ValueError("`regions` ids must be non-negative integers.")
    return regions.to(torch.long), on_grid


def _adaptive_avg_pool(x: Tensor, size: Sequence[int]) -> Tensor:
    pools: Dict[int, Callable[..., Tensor]] = {
        1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d
    }
    if len(size) not in pools:
        raise ValueError("`regions` at input resolution needs 1, 2 or 3 spatial dims.")
    return pools[len(size)](x, tuple(size))


def _majority_resize(index: Tensor, num: int, grid: Sequence[int]) -> Tensor:
    """Region position per grid cell: the region owning the largest share of
    the cell's pixels (adaptive average pooling of one-hot maps; ties go to the
    smaller id)."""
    one_hot = F.one_hot(index, num).movedim(-1, 1).to(torch.float32)  # (N, R, *in)
    share = _adaptive_avg_pool(one_hot, grid)  # (N, R, *grid)
    return share.argmax(dim=1)


def region_groups(
    regions: Optional[Tensor], activation: Tensor, input_grid: Sequence[int]
) -> FeatureGroups:
    """Map every activation element (channel, cell) to its region's position."""
    batch, channels = activation.shape[:2]
    grid = tuple(activation.shape[2:])
    cells = int(torch.tensor(grid).prod())
    device = activation.device
    if regions is None:
        cell_index = torch.arange(cells, device=device).view(1, cells)
        ids = torch.arange(cells)
    else:
        region_map, on_grid = as_region_map(regions, batch, grid, input_grid)
        region_map = region_map.to(device)
        ids, index = torch.unique(region_map, sorted=True, return_inverse=True)
        if not on_grid:
            index = _majority_resize(index, ids.numel(), grid)
        cell_index = index.reshape(index.shape[0], cells)
        present = torch.zeros(ids.numel(), dtype=torch.bool, device=device)
        present[cell_index.flatten()] = True
        if not bool(present.all()):
            missing = ids[~present.cpu()].tolist()
            warnings.warn(
                f"Region ids {missing[:10]} own no cell of the layer's {tuple(grid)} "
                "grid; their rows and columns are zero. Use larger regions or an "
                "earlier layer.",
                stacklevel=4,
            )
        ids = ids.cpu()
    # Every channel of a cell belongs to the cell's region.
    index = cell_index.unsqueeze(1).expand(-1, channels, -1).reshape(cell_index.shape[0], -1)
    return FeatureGroups(index, ids)
