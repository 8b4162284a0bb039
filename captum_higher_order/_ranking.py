"""Ranking the feature sets of dense interaction tensors: written once.

Every place that lists "the strongest interactions" (the metrics, a dataset
result's ``rank``, TaylorCAM's region pairs, the plots) reads the same candidate
sets, index tuples ``i1 < i2 < ... < ik`` of a symmetric ``(F, ..., F)`` tensor
(``<=`` when the diagonal, the pure derivatives, is wanted), and orders them the
same way: by magnitude, or by signed value, ties kept in lexicographic order.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
from torch import Tensor

__all__ = ["RANK_BY", "candidate_sets", "top_interaction_sets"]

#: ``"magnitude"`` ranks by ``|value|``; ``"value"`` by value, largest first;
#: ``"negative"`` by value, most negative first.
RANK_BY = ("magnitude", "value", "negative")

#: Largest number of candidate sets enumerated at once (about 0.5 GB of indices
#: for triples); beyond it callers should rank sparse results instead.
MAX_CANDIDATE_SETS = 20_000_000


def candidate_sets(
    size: int, order: int, include_diagonal: bool = False, device: Optional[torch.device] = None
) -> Tensor:
    """All index tuples ``i1 < ... < i_order`` of ``range(size)`` (``<=`` with
    ``include_diagonal``), in lexicographic order, as ``(N, order)`` longs."""
    count = math.comb(size + order - 1, order) if include_diagonal else math.comb(size, order)
    if count > MAX_CANDIDATE_SETS:
        raise ValueError(
            f"Ranking a dense tensor over {size} features at order {order} means "
            f"{count} candidate sets; group features with a `feature_mask` or rank a "
            "sparse result (e.g. CrossDerivatives(top_k=...)) instead."
        )
    ar = torch.arange(size, device=device)
    if order == 2:  # the common case, without combinations' intermediate copies
        return torch.triu_indices(size, size, offset=0 if include_diagonal else 1,
                                  device=device).t()
    return torch.combinations(ar, r=order, with_replacement=include_diagonal)


def top_interaction_sets(
    scores: Tensor,
    k: Optional[int] = None,
    by: str = "magnitude",
    include_diagonal: bool = False,
) -> Tuple[Tensor, Tensor]:
    """The ``k`` strongest sets of a dense symmetric interaction tensor.

    Args:
        scores (Tensor): ``(*lead, F, ..., F)`` with ``order`` trailing dims of
            equal size; ``order`` is inferred as the number of trailing dims that
            equal the last one, so pass ``(B, F, F)`` for a batch of matrices.
        k (int, optional): Sets to keep; None keeps all (sorted). Default: None
        by (str, optional): One of :data:`RANK_BY`. Default: ``"magnitude"``
        include_diagonal (bool, optional): Also rank repeated indices.
            Default: False

    Returns:
        tuple[Tensor, Tensor]: ``sets`` ``(*lead, k, order)`` and their signed
        ``values`` ``(*lead, k)``, strongest first.
    """
    if by not in RANK_BY:
        raise ValueError(f"`by` must be one of {', '.join(RANK_BY)}, got {by!r}.")
    shape = scores.shape
    order = 0
    while order < scores.dim() and shape[scores.dim() - 1 - order] == shape[-1]:
        order += 1
    if order < 2:
        raise ValueError(
            f"An interaction tensor needs at least two equal trailing dims (F, F), got "
            f"shape {tuple(shape)}."
        )
    size, lead = int(shape[-1]), shape[: scores.dim() - order]
    sets = candidate_sets(size, order, include_diagonal, scores.device)
    values = scores[(Ellipsis, *sets.t())]  # (*lead, N)
    if by == "magnitude":
        key = values.abs()
    else:
        key = values if by == "value" else -values
    order_idx = torch.argsort(key, dim=-1, descending=True, stable=True)
    if k is not None:
        if k < 0:
            raise ValueError("`k` must be None or a non-negative int.")
        order_idx = order_idx[..., :k]
    top_values = values.gather(-1, order_idx)
    top_sets = sets[order_idx.reshape(-1)].reshape(*lead, order_idx.shape[-1], order)
    return top_sets, top_values
