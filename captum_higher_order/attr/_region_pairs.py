"""Reading a TaylorCAM result: the strongest region pairs and where to draw them.

The pairs are ranked by the shared ranking of interaction sets
(:mod:`captum_higher_order._ranking`), and a pair's ends are placed at the
centers of its cells (or the centroids of its regions) in input pixels.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from captum_higher_order._ranking import top_interaction_sets
from captum_higher_order.attr._taylor_cam_regions import as_region_map

__all__ = ["RegionPairs", "top_region_pairs", "pair_centers"]



class RegionPairs(NamedTuple):
    """The strongest pairs per sample: ``index`` ``(B, k, 2)`` region positions
    ``(a, b)`` with ``a < b`` (row-major cells without ``regions``), and their
    ``score`` ``(B, k)``, descending."""

    index: Tensor  # type: ignore[assignment]  # field shadows tuple.index
    score: Tensor


def top_region_pairs(result: Tensor, k: int = 5) -> RegionPairs:
    """The ``k`` strongest distinct pairs of a TaylorCAM result.

    Args:
        result (Tensor): Pair scores ``(B, R, R)`` from :meth:`TaylorCAM.attribute`
            (symmetric; only ``a < b`` is read).
        k (int, optional): Pairs per sample, at most ``R (R - 1) / 2``. Default: 5

    Returns:
        RegionPairs: ``index`` ``(B, k, 2)`` and ``score`` ``(B, k)``.

    Examples::

        >>> import torch
        >>> from captum_higher_order.attr.taylor_cam import top_region_pairs
        >>> p = torch.zeros(1, 3, 3); p[0, 0, 2] = p[0, 2, 0] = 5.0
        >>> top_region_pairs(p, k=1).index.tolist()
        [[[0, 2]]]
    """
    if not isinstance(result, Tensor) or result.dim() != 3 or result.shape[1] != result.shape[2]:
        raise ValueError("`result` must be a (B, R, R) tensor of pair scores.")
    num = result.shape[1]
    pairs = num * (num - 1) // 2
    if not 1 <= k <= pairs:
        raise ValueError(f"k must be between 1 and R(R-1)/2 = {pairs}, got {k}.")
    # (B, 1, R, R): the singleton dim keeps the batch out of the inferred order
    # when B == R. Largest score first, ties in row-major order.
    index, score = top_interaction_sets(result.unsqueeze(1), k, by="value")
    return RegionPairs(index[:, 0], score[:, 0])


def pair_centers(
    index: Tensor,
    grid_size: Sequence[int],
    input_size: Sequence[int],
    regions: Optional[Tensor] = None,
) -> Tensor:
    """Pixel coordinates of the two ends of each pair, for drawing.

    A cell ``(i, j)`` of an ``h x w`` layer grid covers input pixels
    ``[i H / h, (i + 1) H / h)`` by ``[j W / w, (j + 1) W / w)``; its center is
    ``((i + 0.5) H / h, (j + 0.5) W / w)``. A region's center is the centroid
    of its pixels (``regions`` at input resolution) or of its cells' centers
    (``regions`` on the grid).

    Args:
        index (Tensor): ``(B, k, 2)`` or ``(k, 2)`` region positions, e.g.
            ``top_region_pairs(result, k).index``.
        grid_size (sequence of int): The layer's spatial size, e.g. ``(7, 7)``.
        input_size (sequence of int): The input image's spatial size, e.g.
            ``(224, 224)``.
        regions (Tensor, optional): The ``regions`` passed to
            :meth:`TaylorCAM.attribute`. Default: None

    Returns:
        Tensor: float ``(B, k, 2, len(grid_size))`` (or ``(k, 2, ...)``):
        coordinates ``(row, col)`` of both ends, in input pixels.

    Examples::

        >>> import torch
        >>> from captum_higher_order.attr.taylor_cam import pair_centers
        >>> pair_centers(torch.tensor([[0, 3]]), (2, 2), (64, 64)).tolist()
        [[[16.0, 16.0], [48.0, 48.0]]]
    """
    grid, size = tuple(int(g) for g in grid_size), tuple(int(s) for s in input_size)
    if len(grid) != len(size):
        raise ValueError("`grid_size` and `input_size` need the same number of dims.")
    squeeze = index.dim() == 2
    if squeeze:
        index = index.unsqueeze(0)
    if index.dim() != 3 or index.shape[-1] != 2:
        raise ValueError("`index` must be (B, k, 2) or (k, 2) region positions.")
    batch = index.shape[0]
    if regions is None:
        centers = _cell_centers(grid, size).unsqueeze(0)  # (1, R, D)
    else:
        region_map, on_grid = as_region_map(regions, batch, grid, size)
        _, pos = torch.unique(region_map, sorted=True, return_inverse=True)
        points = _cell_centers(grid, size) if on_grid else _pixel_centers(size)
        centers = _centroids(pos.reshape(pos.shape[0], -1), points)
    centers = centers.to(index.device).expand(batch, -1, -1)
    flat = index.reshape(batch, -1)
    if bool((flat < 0).any()) or bool((flat >= centers.shape[1]).any()):
        raise ValueError(f"`index` holds positions outside 0..{centers.shape[1] - 1}.")
    gathered = centers.gather(1, flat.unsqueeze(-1).expand(-1, -1, centers.shape[-1]))
    out = gathered.reshape(batch, index.shape[1], 2, -1)
    return out[0] if squeeze else out


def _cell_centers(grid: Tuple[int, ...], size: Tuple[int, ...]) -> Tensor:
    axes = [(torch.arange(g, dtype=torch.float64) + 0.5) * (s / g) for g, s in zip(grid, size)]
    mesh = torch.meshgrid(*axes, indexing="ij")
    return torch.stack([m.reshape(-1) for m in mesh], dim=-1)  # (cells, D)


def _pixel_centers(size: Tuple[int, ...]) -> Tensor:
    return _cell_centers(size, size)


def _centroids(pos: Tensor, points: Tensor) -> Tensor:
    """Mean of ``points`` ``(P, D)`` per region position; ``pos`` ``(N, P)``."""
    num = int(pos.max()) + 1
    one_hot = F.one_hot(pos, num).to(points.dtype)  # (N, P, R)
    counts = one_hot.sum(dim=1).clamp_min(1).unsqueeze(-1)  # (N, R, 1)
    return torch.einsum("npr,pd->nrd", one_hot, points) / counts
