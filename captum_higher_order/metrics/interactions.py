"""Ranking feature interactions and scoring rankings against ground truth.

The evaluation protocol is the one of Tsang et al. (2018, "Detecting Statistical
Interactions from Neural Network Weights", ICLR), used again by Lerman et al.
(2021, "Explaining Local, Global, and Higher-Order Interactions in Deep
Learning", ICCV): every candidate set of ``k`` distinct features gets a score,
a candidate is *positive* if it is a subset of one of the ground-truth
interaction sets (so the pair ``{1, 2}`` is a true pairwise interaction of the
term ``x1 * x2 * x3``), and the ranking is summarised by its ROC-AUC.
"""

from __future__ import annotations

import itertools
from typing import Dict, Hashable, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from captum_higher_order._ranking import candidate_sets, top_interaction_sets

__all__ = ["rank_interactions", "interaction_auc", "roc_auc"]

Ranking = List[Tuple[Tuple[Hashable, ...], float]]
ScoresLike = Union[Tensor, Mapping[Tuple[int, ...], float], Sequence[Tuple[Sequence[int], float]]]


def _check_dense(scores: Tensor) -> int:
    if scores.dim() < 2 or len(set(scores.shape)) != 1:
        raise ValueError(
            "Pass one dense interaction tensor (F, F) or (F, ..., F) with all dims "
            f"equal (one sample, or a global result), got shape {tuple(scores.shape)}; "
            "for a batch (B, F, F) call this per sample."
        )
    return int(scores.shape[0])


def rank_interactions(
    scores: Tensor,
    k: Optional[int] = None,
    feature_names: Optional[Sequence[Hashable]] = None,
) -> Ranking:
    """Rank the feature sets of a dense interaction tensor by magnitude.

    Candidates are the sets of distinct features (index tuples
    ``i1 < ... < ik``); the diagonal (pure derivatives) is not an interaction.
    They are sorted by ``|score|`` descending (ties keep lexicographic order),
    and reported with their signed score.

    Args:
        scores (Tensor): ``(F, F)`` pairwise or ``(F, ..., F)`` order-``k``
            scores for one sample or one data set (e.g. from
            ``CrossDerivatives.attribute(...)[b]`` or ``global_interactions``).
        k (int, optional): How many top sets to return; None returns all.
            Default: None
        feature_names (sequence, optional): ``F`` names used in place of the
            indices. Default: None

    Returns:
        list[tuple[tuple, float]]: ``[((i, j, ...), score), ...]``, strongest
        first; the tuples hold names when ``feature_names`` is given.

    Examples::

        >>> import torch
        >>> from captum_higher_order.metrics.interactions import rank_interactions
        >>> h = torch.tensor([[0.0, 3.0, 1.0], [3.0, 0.0, -5.0], [1.0, -5.0, 0.0]])
        >>> rank_interactions(h, k=2, feature_names=["a", "b", "c"])
        [(('b', 'c'), -5.0), (('a', 'b'), 3.0)]
    """
    if not isinstance(scores, Tensor):
        raise TypeError("`scores` must be a dense Tensor (F, F) or (F, ..., F).")
    num = _check_dense(scores)
    if feature_names is not None and len(feature_names) != num:
        raise ValueError(f"`feature_names` has {len(feature_names)} names for {num} features.")
    if k is not None and k < 0:
        raise ValueError("`k` must be None or a non-negative int.")
    sets, values = top_interaction_sets(scores.detach().cpu(), k)
    ranking: Ranking = []
    for members_t, value in zip(sets.tolist(), values.tolist()):
        members = tuple(int(i) for i in members_t)
        key = members if feature_names is None else tuple(feature_names[i] for i in members)
        ranking.append((key, float(value)))
    return ranking


def roc_auc(scores: Tensor, labels: Tensor) -> float:
    """ROC-AUC of ``scores`` for binary ``labels``: the probability that a
    random positive scores above a random negative, ties counting one half
    (Mann-Whitney U with mid-ranks)."""
    scores = torch.as_tensor(scores, dtype=torch.float64).flatten()
    labels = torch.as_tensor(labels).flatten().bool()
    n_pos = int(labels.sum())
    n_neg = int(labels.numel() - n_pos)
    if n_pos == 0 or n_neg == 0:
        raise ValueError(
            f"AUC needs positives and negatives; got {n_pos} positive and {n_neg} "
            "negative candidates. Check the ground-truth sets and the order."
        )
    sorted_scores, perm = torch.sort(scores, stable=True)
    ranks = torch.empty_like(sorted_scores)
    # Mid-ranks: tied scores share the mean of their positions (1-based).
    _, inverse, counts = torch.unique_consecutive(
        sorted_scores, return_inverse=True, return_counts=True
    )
    ends = torch.cumsum(counts, 0).to(torch.float64)
    mid = ends - (counts.to(torch.float64) - 1) / 2
    ranks[perm] = mid[inverse]
    u = float(ranks[labels].sum()) - n_pos * (n_pos + 1) / 2
    return u / (n_pos * n_neg)


def _as_ground_truth(sets: Iterable[Iterable[int]]) -> List[frozenset]:
    truth = [frozenset(int(i) for i in s) for s in sets]
    if not truth:
        raise ValueError("`ground_truth_sets` is empty.")
    return truth


def interaction_auc(
    scores: ScoresLike,
    ground_truth_sets: Iterable[Iterable[int]],
    order: int = 2,
    num_features: Optional[int] = None,
) -> float:
    """ROC-AUC of interaction scores against ground-truth interaction sets.

    Convention (Tsang et al. 2018; Lerman et al. 2021): a candidate set of
    ``order`` distinct features is positive if it is a subset of a ground-truth
    interaction set, negative otherwise. Higher scores must mean stronger
    interaction: pass magnitudes (``absolute=True`` results, or
    ``aggregation="mean_abs"``), not signed derivatives.

    Args:
        scores (Tensor, dict or list): Either a dense ``(F, ..., F)`` tensor with
            ``order`` dims (candidates: every set ``i1 < ... < ik``), or a
            mapping ``{(i, j, ...): score}`` / a ranked list
            ``[((i, j, ...), score), ...]`` such as :func:`rank_interactions`
            returns (with integer indices). For a list or mapping only the listed
            sets are candidates, unless ``num_features`` is given: then every
            unlisted set is a candidate too, scored below every listed one.
        ground_truth_sets (iterable of iterables of int): The planted
            interactions, 0-based feature indices (e.g. ``[{0, 1, 2}, {3, 4}]``).
        order (int, optional): Size of the candidate sets. Default: 2
        num_features (int, optional): See ``scores``. Default: None

    Returns:
        float: The AUC in ``[0, 1]``; 0.5 is chance.

    Examples::

        >>> import torch
        >>> from captum_higher_order.metrics.interactions import interaction_auc
        >>> h = torch.zeros(4, 4)
        >>> h[0, 1] = h[1, 0] = 2.0      # the planted pair scores highest
        >>> h[2, 3] = h[3, 2] = 1.0
        >>> interaction_auc(h, [{0, 1}])
        1.0
    """
    if order < 2:
        raise ValueError("`order` must be >= 2 (interactions involve several features).")
    truth = _as_ground_truth(ground_truth_sets)
    candidates, values = _candidates(scores, order, num_features)
    labels = torch.tensor([any(c <= t for t in truth) for c in candidates], dtype=torch.bool)
    return roc_auc(values, labels)


def _candidates(
    scores: ScoresLike, order: int, num_features: Optional[int]
) -> Tuple[List[frozenset], Tensor]:
    if isinstance(scores, Tensor):
        if scores.dim() != order:
            raise ValueError(
                f"A dense `scores` tensor for order={order} needs {order} dims, got "
                f"shape {tuple(scores.shape)}."
            )
        _check_dense(scores)
        sets = candidate_sets(scores.shape[0], order)
        values = scores.detach().cpu()[tuple(sets.t())]
        return [frozenset(s) for s in sets.tolist()], values.to(torch.float64)
    items = list(scores.items()) if isinstance(scores, Mapping) else list(scores)
    table: Dict[frozenset, float] = {}
    for entry in items:
        try:
            members, value = entry
        except (TypeError, ValueError):
            raise TypeError(
                "A list `scores` must hold (index tuple, score) pairs."
            ) from None
        key = frozenset(int(i) for i in members)
        if len(key) != order:
            raise ValueError(
                f"Candidate {tuple(members)} does not have {order} distinct features."
            )
        table[key] = max(float(value), table.get(key, float("-inf")))
    if not table:
        raise ValueError("`scores` holds no candidates.")
    if num_features is not None:
        floor = min(table.values()) - 1.0
        for combo in itertools.combinations(range(num_features), order):
            table.setdefault(frozenset(combo), floor)
    keys = list(table)
    return keys, torch.tensor([table[k] for k in keys], dtype=torch.float64)
