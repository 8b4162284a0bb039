"""The feature sets of CrossDerivatives: directions, rows and their search.

A row is ``d^{j+1} f / dx_S dx_l`` for one ``j``-set ``S`` and every last
feature ``l``, from one pass of :func:`captum_higher_order.hessian.mixed.mixed_rows`
along the indicator directions of the members of ``S``. From rows this module
fills dense symmetric tensors and ranks ``k``-sets, exhaustively (every
``(k-1)``-prefix once) or by the greedy beam search of Lerman et al. (2021),
which extends the strongest lower-order sets by one feature (see
docs/cross_derivatives.md).
"""

from __future__ import annotations

import math
from typing import Any, Optional, Tuple

import torch
from torch import Tensor

from captum_higher_order._inputs import FeatureGroups
from captum_higher_order._ranking import top_interaction_sets
from captum_higher_order.hessian.engine import Problem
from captum_higher_order.hessian.mixed import mixed_rows

__all__ = [
    "rows_for_sets",
    "dense_from_rows",
    "top_distinct",
    "top_pairs",
    "exhaustive_sets",
    "greedy_sets",
]

#: ``(k-1)``-sets per block of the exhaustive ranking (bounds its memory).
EXHAUSTIVE_BLOCK = 256

#: Sets ``(B, n, k)`` and their signed values ``(B, n)``, strongest first.
Ranked = Tuple[Tensor, Tensor]


def feature_index(groups: Optional[FeatureGroups], num_features: int, device: Any) -> Tensor:
    """``(1 or B, F)``: the position (feature or group) of every flat feature."""
    if groups is None:
        return torch.arange(num_features, device=device).view(1, -1)
    return groups.index.to(device)


def directions(
    sets: Tensor, index: Tensor, batch: int, dtype: torch.dtype
) -> Tensor:
    """Indicator directions of the members of each set.

    ``sets`` is ``(c, 1 or B, j)`` positions; returns ``(c, j, B, F)`` with
    ``[s, i, b, :] = 1_{sets[s, b, i]}`` (a basis vector, or a group indicator)."""
    eq = index.view(1, index.shape[0], 1, -1) == sets.unsqueeze(-1)  # (c, B*, j, F)
    c, _, j, f = eq.shape
    return eq.to(dtype).expand(c, batch, j, f).permute(0, 2, 1, 3)


def rows_for_sets(
    problem: Problem,
    groups: Optional[FeatureGroups],
    sets: Tensor,
    mode: str,
    chunk_size: Optional[int],
) -> Tensor:
    """``d^{j+1} f / dx_S dx_l`` for every set ``S`` (rows of ``sets``,
    ``(m, 1 or B, j)``) and every last position ``l``: ``(m, B, G)``."""
    fmt = problem.fmt
    index = feature_index(groups, fmt.num_features, fmt.device)
    sets = sets.to(fmt.device)

    def make(start: int, stop: int) -> Tensor:
        return directions(sets[start:stop], index, fmt.batch_size, fmt.dtype)

    rows = mixed_rows(problem, make, sets.shape[0], sets.shape[2], mode, chunk_size)
    return rows if groups is None else groups.project(rows)


def dense_from_rows(rows: Tensor, prefixes: Tensor, size: int, order: int) -> Tensor:
    """Fill the symmetric ``(B, G, ..., G)`` tensor from rows of sorted
    multiset prefixes: entry ``t`` is ``rows[prefix(sorted(t)[:-1]), :, max(t)]``."""
    grid = torch.cartesian_prod(*[torch.arange(size)] * order)  # (G^k, k)
    srt = grid.sort(dim=1).values
    weights = size ** torch.arange(order - 2, -1, -1)
    lookup = torch.full((size ** (order - 1),), -1, dtype=torch.long)
    lookup[(prefixes * weights).sum(dim=1)] = torch.arange(prefixes.shape[0])
    row_id = lookup[(srt[:, :-1] * weights).sum(dim=1)].to(rows.device)
    last = srt[:, -1].to(rows.device)
    values = rows[row_id, :, last]  # (G^k, B)
    return values.t().reshape(rows.shape[1], *([size] * order))


def sorted_key(sets: Tensor, size: int) -> Tensor:
    """An integer key per set (members sorted, base ``size``)."""
    srt = sets.sort(dim=-1).values
    weights = size ** torch.arange(srt.shape[-1] - 1, -1, -1, device=srt.device)
    return (srt * weights).sum(dim=-1)


def top_distinct(
    sets: Tensor, values: Tensor, valid: Tensor, size: int, n: int
) -> Tuple[Tensor, Tensor]:
    """Per sample, the ``n`` distinct sets of largest ``|value|``.

    ``sets`` ``(B, N, j)``, ``values`` and ``valid`` ``(B, N)``. A set found from
    several parents appears several times with the same mixed partial; keep
    one. Returns sorted sets ``(B, n, j)`` and their values ``(B, n)``."""
    magnitude = torch.where(valid, values.abs(), torch.full_like(values, -math.inf))
    order = torch.argsort(magnitude, dim=1, descending=True, stable=True)
    keys = sorted_key(sets, size).gather(1, order)
    by_key, pos = torch.sort(keys, dim=1, stable=True)
    first = torch.ones_like(by_key, dtype=torch.bool)
    first[:, 1:] = by_key[:, 1:] != by_key[:, :-1]
    duplicate = torch.zeros_like(first).scatter_(1, pos, ~first)
    ranked = magnitude.gather(1, order).masked_fill(duplicate, -math.inf)
    top = torch.topk(ranked, n, dim=1).indices  # within the score order
    chosen = order.gather(1, top)
    picked = sets.gather(1, chosen.unsqueeze(-1).expand(-1, -1, sets.shape[-1]))
    return picked.sort(dim=-1).values, values.gather(1, chosen)


def top_pairs(pair_h: Tensor, n: int) -> Ranked:
    """The ``n`` pairs ``i < j`` of largest ``|pair_h[b, i, j]|`` per sample
    (the shared ranking of :mod:`captum_higher_order._ranking`; ties in
    lexicographic order): sets ``(B, n, 2)`` and signed values ``(B, n)``."""
    # (B, 1, G, G): the singleton dim keeps the batch out of the inferred order.
    sets, values = top_interaction_sets(pair_h.unsqueeze(1), n, by="magnitude")
    return sets[:, 0], values[:, 0]


def exhaustive_sets(
    problem: Problem,
    groups: Optional[FeatureGroups],
    size: int,
    order: int,
    top_k: int,
    mode: str,
    chunk_size: Optional[int],
) -> Ranked:
    """Every ``k``-set once: a row per ``(k-1)``-set ``S``, keeping the
    last features ``l > max(S)``. Prefixes go in blocks with a running
    top-``k`` merge, so memory does not grow with ``C(G, k-1)``."""
    prefixes = torch.combinations(torch.arange(size), r=order - 1)
    best_sets: Optional[Tensor] = None
    best_values: Optional[Tensor] = None
    for block in prefixes.split(EXHAUSTIVE_BLOCK):
        rows = rows_for_sets(problem, groups, block.unsqueeze(1), mode, chunk_size)
        keep = torch.arange(size).view(1, -1) > block[:, -1:]
        pid, last = keep.nonzero(as_tuple=True)
        if pid.numel() == 0:
            continue
        sets = torch.cat([block[pid], last.unsqueeze(1)], dim=1).to(rows.device)
        values = rows[pid.to(rows.device), :, last.to(rows.device)].t()  # (B, n)
        sets = sets.unsqueeze(0).expand(values.shape[0], -1, -1)
        if best_sets is not None and best_values is not None:
            sets = torch.cat([best_sets, sets], dim=1)
            values = torch.cat([best_values, values], dim=1)
        top = torch.argsort(values.abs(), dim=1, descending=True, stable=True)[:, :top_k]
        best_sets = sets.gather(1, top.unsqueeze(-1).expand(-1, -1, order))
        best_values = values.gather(1, top)
    assert best_sets is not None and best_values is not None
    return best_sets, best_values


def greedy_sets(
    problem: Problem,
    groups: Optional[FeatureGroups],
    pair_h: Tensor,
    size: int,
    order: int,
    top_k: int,
    width: int,
    mode: str,
    chunk_size: Optional[int],
) -> Ranked:
    """Beam search: keep the ``width`` strongest ``j``-sets per sample and
    score their one-feature extensions with one row each."""
    sets, _ = top_pairs(pair_h, min(width, math.comb(size, 2)))
    positions = torch.arange(size, device=sets.device)
    for j in range(2, order):
        rows = rows_for_sets(problem, groups, sets.transpose(0, 1), mode, chunk_size)
        values = rows.permute(1, 0, 2)  # (B, m, G): extend set s by l
        batch, m = values.shape[0], values.shape[1]
        parent = sets.unsqueeze(2).expand(-1, -1, size, -1)
        extra = positions.view(1, 1, size, 1).expand(batch, m, size, 1)
        candidates = torch.cat([parent, extra], dim=3).reshape(batch, m * size, j + 1)
        valid = (sets.unsqueeze(2) != positions.view(1, 1, size, 1)).all(dim=3)
        n = top_k if j + 1 == order else min(width, math.comb(size, j + 1))
        n = min(n, math.comb(size, j + 1))
        sets, chosen_values = top_distinct(
            candidates, values.reshape(batch, -1), valid.reshape(batch, -1), size, n
        )
    return sets, chosen_values
