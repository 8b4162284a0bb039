"""The ranking the plots share: the strongest interactions of a matrix, a k-way
tensor, a dict, a ranked list or a ``CrossDerivatives`` ranking."""

from __future__ import annotations

import math
from typing import Any, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from captum_higher_order._ranking import top_interaction_sets
from captum_higher_order.visualization._common import ArrayLike, Ranked, _check_sign, _to_numpy


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
    if hasattr(interactions, "indices") and hasattr(interactions, "scores"):
        interactions = _from_ranking(interactions)
    items: Ranked
    if isinstance(interactions, Mapping) or _is_pair_list(interactions):
        items = _rank_listed(_listed(interactions), sign)
    else:
        items = _rank_dense(interactions, k, sign, include_diagonal, max_sets)
    if drop_zeros:
        items = [t for t in items if t[1] != 0]
    if sign == "positive":
        items = [t for t in items if t[1] > 0]
    elif sign == "negative":
        items = [t for t in items if t[1] < 0]
    return items if k is None else items[:k]


def _is_pair_list(interactions: Any) -> bool:
    return isinstance(interactions, (list, tuple)) and (
        len(interactions) == 0 or isinstance(interactions[0], (list, tuple))
    )


def _listed(interactions: Union[Mapping[Tuple[int, ...], float], Sequence[Any]]) -> Ranked:
    """``[((i, j, ...), value), ...]`` from a dict or a list of pairs, in their order."""
    if isinstance(interactions, Mapping):
        return [(tuple(int(i) for i in key), float(v)) for key, v in interactions.items()]
    items: Ranked = []
    for entry in interactions:
        if len(entry) != 2:
            raise ValueError("A ranked list holds ((i, j, ...), value) pairs.")
        key, v = entry
        items.append((tuple(int(i) for i in key), float(v)))
    return items


def _rank_listed(items: Ranked, sign: str) -> Ranked:
    """Sort listed sets as the dense ranking does (stable, so ties keep their order)."""
    if sign == "positive":
        return sorted(items, key=lambda t: -t[1])
    if sign == "negative":
        return sorted(items, key=lambda t: t[1])
    return sorted(items, key=lambda t: -abs(t[1]))


def _rank_dense(
    interactions: ArrayLike, k: Optional[int], sign: str, include_diagonal: bool, max_sets: int
) -> Ranked:
    """A dense ``(F, ..., F)`` tensor ranked by the shared :mod:`captum_higher_order._ranking`.

    Truncating to ``k`` before the zero and sign filters of :func:`top_interactions`
    keeps the same sets: those filters only remove the tail of this order.
    """
    arr = _to_numpy(interactions, "interactions")
    if arr.ndim >= 3 and arr.shape[0] == 1 and len(set(arr.shape[1:])) == 1:
        arr = arr[0]
    if arr.ndim < 2 or len(set(arr.shape)) != 1:
        raise ValueError(
            "interactions must be a square (F, F) matrix, a symmetric k-way tensor "
            f"(F, ..., F), a dict or a ranked list; got shape {arr.shape}."
        )
    size, order = arr.shape[0], arr.ndim
    if order > 2 and math.comb(size, order) > max_sets:
        raise ValueError(
            f"{math.comb(size, order)} sets of {order} features; pass a ranked "
            "list of ((i, j, ...), value) instead of the dense tensor."
        )
    by = {"positive": "value", "negative": "negative"}.get(sign, "magnitude")
    sets, values = top_interaction_sets(
        torch.as_tensor(np.ascontiguousarray(arr)),
        k=k,
        by=by,
        # as before the split: the diagonal is offered for matrices only
        include_diagonal=include_diagonal and order == 2,
    )
    return [(tuple(key), value) for key, value in zip(sets.tolist(), values.tolist())]


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
