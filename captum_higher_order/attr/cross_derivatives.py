"""CrossDerivatives: pairwise and k-way feature interactions, local and global.

Lerman, Venuto, Kautz & Xu (2021), "Explaining Local, Global, and Higher-Order
Interactions in Deep Learning", ICCV. The local interaction of a set of ``k``
distinct features ``I = {i1, ..., ik}`` at ``x`` is the magnitude of the mixed
partial derivative of the explained score ``f``,

.. math::
    \\phi_I(x) = \\left| \\frac{\\partial^k f(x)}{\\partial x_{i_1} \\cdots
    \\partial x_{i_k}} \\right|,

and a global interaction is an aggregate of local ones over a data set (the
mean of absolute values in the paper). Order 2 comes from the Hessian (the HVP
engine, one batched HVP per feature); order ``k >= 3`` from ``k - 2`` nested
forward-mode derivatives under one reverse pass
(:func:`captum_higher_order.hessian.mixed_derivative_rows`), so one pass gives
the derivatives of a ``(k-1)``-set with every last feature. Large ``k``-way
searches expand the strongest lower-order sets greedily, as the authors do;
small ones are exhaustive.

The score is ``f`` = the per-sample ``objective`` of the selected output (see
:data:`captum_higher_order._inputs.OBJECTIVES`). For a piecewise-linear network
(ReLU) every derivative of order >= 2 of ``"output"`` is zero almost
everywhere: use a smooth activation (the authors train GELU networks), a
curved objective, or a smooth surrogate of the activations.
"""

from __future__ import annotations

import math
from typing import (
    Any,
    Callable,
    Hashable,
    Iterable,
    List,
    NamedTuple,
    Optional,
    Sequence,
    Tuple,
    Union,
)

import torch
from captum.attr import GradientAttribution
from torch import Tensor

from captum_higher_order._captum import log_usage
from captum_higher_order._inputs import (
    TargetType,
    TensorOrTuple,
    ZeroHessianWarning,
    format_feature_mask,
)
from captum_higher_order._ranking import top_interaction_sets
from captum_higher_order.attr._interaction_sets import (
    dense_from_rows,
    exhaustive_sets,
    greedy_sets,
    rows_for_sets,
    top_pairs,
)
from captum_higher_order.hessian import DEFAULT_MAX_DENSE_FEATURES, hessian
from captum_higher_order.hessian.engine import make_problem

__all__ = [
    "CrossDerivatives",
    "InteractionRanking",
    "GlobalInteractions",
    "AGGREGATIONS",
    "DEFAULT_MAX_DENSE_ENTRIES",
]

#: Largest number of entries ``G**k`` of one sample's dense order-``k`` tensor
#: (``k >= 3``); above it ``attribute`` asks for ``top_k`` or a ``feature_mask``.
DEFAULT_MAX_DENSE_ENTRIES = 2**20

#: Global aggregations of local scores ``s_n`` over ``N`` samples.
AGGREGATIONS = ("mean_abs", "mean", "max_abs", "rms")

MaskType = Union[None, Tensor, Tuple[Tensor, ...]]


class InteractionRanking(NamedTuple):
    """The ``top_k`` strongest ``k``-sets per sample.

    Attributes:
        indices (Tensor): ``(B, top_k, k)`` long, each row ``i1 < ... < ik``:
            flattened feature indices, or group positions ``0..G-1`` (groups
            in ascending ``feature_mask`` id) with a mask.
        scores (Tensor): ``(B, top_k)``, strongest first (by magnitude); absolute
            values when ``absolute=True``, signed mixed partials otherwise.
    """

    indices: Tensor
    scores: Tensor

    def as_lists(
        self, feature_names: Optional[Sequence[Hashable]] = None
    ) -> List[List[Tuple[Tuple[Hashable, ...], float]]]:
        """Per sample, ``[((i, j, ...), score), ...]``; names instead of indices
        when ``feature_names`` is given."""
        out = []
        for idx, val in zip(self.indices.tolist(), self.scores.tolist()):
            out.append(
                [
                    (
                        tuple(i if feature_names is None else feature_names[i] for i in s),
                        float(v),
                    )
                    for s, v in zip(idx, val)
                ]
            )
        return out


class GlobalInteractions(NamedTuple):
    """Result of :meth:`CrossDerivatives.global_interactions`.

    Attributes:
        scores (Tensor): ``(G, ..., G)`` aggregated interaction tensor (``order``
            dims).
        ranking (list): ``[((i, j, ...), score), ...]`` over sets of distinct
            features, strongest first (see
            :func:`~captum_higher_order.metrics.interactions.rank_interactions`).
        num_samples (int): Samples aggregated.
        aggregation (str): The aggregation used.
    """

    scores: Tensor
    ranking: List[Tuple[Tuple[Hashable, ...], float]]
    num_samples: int
    aggregation: str


# --------------------------------------------------------------------------- helpers


def _check_order(order: Any, mode: str) -> int:
    if isinstance(order, bool) or not isinstance(order, int) or order < 2:
        raise ValueError(f"`order` must be an int >= 2 (pairs or larger sets), got {order!r}.")
    if order >= 3 and mode not in ("auto", "fwd_rev", "rev_rev"):
        raise ValueError(
            f"mode={mode!r} only applies to order 2; for order >= 3 choose 'auto', "
            "'fwd_rev' or 'rev_rev'."
        )
    return order


def _check_dense_entries(size: int, order: int, max_entries: int) -> None:
    if size**order > max_entries:
        raise ValueError(
            f"A dense order-{order} interaction tensor over {size} features has "
            f"{size}^{order} = {size**order} entries per sample, above "
            f"max_dense_entries={max_entries}. Pass `top_k` for a ranked list of "
            "the strongest sets, group features with a Captum-style `feature_mask`, "
            "or raise `max_dense_entries`."
        )


def _warn_if_zero(result: Tensor, order: int) -> None:
    if result.numel() and not bool(result.any()):
        import warnings

        warnings.warn(
            f"Every order-{order} derivative is identically zero here. "
            "Piecewise-linear networks (ReLU) have zero higher derivatives almost "
            "everywhere: use a smooth activation (GELU, SoftPlus), or a curved "
            "objective for classifiers.",
            ZeroHessianWarning,
            stacklevel=4,
        )


def _default_inputs(batch: Any) -> TensorOrTuple:
    if isinstance(batch, Tensor):
        return batch
    if isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], Tensor):
        return batch[0]  # (inputs, labels, ...) as a DataLoader yields them
    raise TypeError(
        f"Cannot find the inputs in a batch of type {type(batch).__name__}; pass "
        "`inputs_fn` (batch -> inputs Tensor or tuple of Tensors)."
    )


# --------------------------------------------------------------------------- method


class CrossDerivatives(GradientAttribution):
    r"""Cross-derivative interactions of Lerman et al. (2021).

    For a set of distinct features ``I`` the local interaction at ``x`` is the
    mixed partial ``d^{|I|} f(x) / prod_{i in I} dx_i`` of the explained score,
    in absolute value by default; a global interaction aggregates local ones
    over a data set. Features are the flattened elements of all inputs, or the
    groups of a Captum-style ``feature_mask`` (then the derivatives are taken
    along group indicator directions, i.e. sums over the block of feature
    derivatives: ``1_a^T H 1_b`` for pairs).

    Args:
        forward_func (Callable): The model or any function of the inputs that
            returns ``(B,)`` or ``(B, C)``.

    Examples::

        >>> import torch
        >>> from captum_higher_order.attr.cross_derivatives import CrossDerivatives
        >>> # Lerman et al. 2021: cross derivatives find planted interactions
        >>> f = lambda x: x[:, 0] * x[:, 1] * x[:, 2] + torch.sin(x[:, 3]) * x[:, 4]
        >>> cd = CrossDerivatives(f)
        >>> x = torch.randn(2, 5, dtype=torch.float64)
        >>> cd.attribute(x).shape                   # pairs: (B, F, F)
        torch.Size([2, 5, 5])
        >>> cd.attribute(x, order=3).shape          # triples: (B, F, F, F)
        torch.Size([2, 5, 5, 5])
        >>> top = cd.attribute(x, order=3, top_k=1)
        >>> top.indices[0].tolist(), top.scores[0].tolist()
        ([[0, 1, 2]], [1.0])
    """

    def __init__(self, forward_func: Callable[..., Tensor]) -> None:
        super().__init__(forward_func)

    @log_usage()
    def attribute(  # type: ignore[override]
        self,
        inputs: TensorOrTuple,
        target: TargetType = None,
        additional_forward_args: Any = None,
        objective: str = "output",
        order: int = 2,
        feature_mask: MaskType = None,
        absolute: bool = True,
        top_k: Optional[int] = None,
        search: str = "auto",
        beam: Optional[int] = None,
        exhaustive_limit: int = 2048,
        mode: str = "auto",
        chunk_size: Optional[int] = None,
        max_features: int = DEFAULT_MAX_DENSE_FEATURES,
        max_dense_entries: int = DEFAULT_MAX_DENSE_ENTRIES,
    ) -> Union[Tensor, InteractionRanking]:
        r"""Local interactions of feature pairs (``order=2``) or ``k``-sets.

        Args:
            inputs (Tensor or tuple[Tensor, ...]): Inputs, batch in dim 0.
            target (int, tuple, Tensor or list, optional): Captum target; the
                output to explain. Default: None
            additional_forward_args (Any, optional): Passed to the model after
                the inputs, not differentiated. Default: None
            objective (str, optional): ``"output"``, ``"log_softmax"``,
                ``"softmax"`` or ``"cross_entropy"`` (docs/design.md,
                "Objectives"); Lerman et al. differentiate the output of a
                regression network.
                Default: ``"output"``
            order (int, optional): ``k``, the size of the feature sets.
                Default: 2
            feature_mask (Tensor or tuple[Tensor, ...], optional): Captum-style
                integer group ids (broadcastable to each input, ids shared across
                the tuple); interactions are then between groups.
                Default: None
            absolute (bool, optional): Return ``|d^k f|`` (the paper's score);
                False keeps the sign. Rankings always sort by magnitude.
                Default: True
            top_k (int, optional): Return the ``top_k`` strongest sets of
                distinct features per sample as an :class:`InteractionRanking`
                instead of a dense tensor (clamped to the number of sets).
                Default: None
            search (str, optional): With ``top_k`` and ``order >= 3``:
                ``"exhaustive"`` scores every set; ``"greedy"`` keeps the
                ``beam`` strongest sets of each order and extends only those by
                one feature (Lerman et al.'s expansion of the strongest
                lower-order interactions); ``"auto"`` is exhaustive when the
                number of ``(k-1)``-sets is at most ``exhaustive_limit``.
                Default: ``"auto"``
            beam (int, optional): Sets kept per order in the greedy search.
                Default: ``max(2 * top_k, 20)``
            exhaustive_limit (int, optional): See ``search``. Default: 2048
            mode (str, optional): Differentiation mode, ``"auto"``,
                ``"fwd_rev"`` or ``"rev_rev"`` (``"ggn"`` too for order 2).
                Default: ``"auto"``
            chunk_size (int, optional): Directions per batched pass; None picks
                one from a memory budget. Default: None
            max_features (int, optional): Largest number of features (or groups)
                for a dense ``F x F`` result. Default: 4096
            max_dense_entries (int, optional): Largest ``F**k`` for a dense
                order-``k >= 3`` result. Default: ``2**20``

        Returns:
            Tensor or InteractionRanking: Without ``top_k``, a tensor
            ``(B, F, ..., F)`` with ``order`` feature dims (``G`` with a mask),
            symmetric in them. Entry ``[b, i1, ..., ik]`` is the mixed partial
            of sample ``b`` (absolute by default); entries with repeated indices
            are the corresponding pure or partly pure derivatives (the order-2
            diagonal is ``d^2 f / dx_i^2``; with groups ``1_a^T H 1_a``), which
            are not interactions and are ignored by the rankings and metrics.
            With ``top_k``, an :class:`InteractionRanking`.
        """
        order = _check_order(order, mode)
        if search not in ("auto", "exhaustive", "greedy"):
            raise ValueError("`search` must be 'auto', 'exhaustive' or 'greedy'.")
        if top_k is not None and (
            isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1
        ):
            raise ValueError(f"`top_k` must be None or a positive int, got {top_k!r}.")
        if top_k is None:
            local = self._dense(
                inputs, target, additional_forward_args, objective, order, feature_mask,
                mode, chunk_size, max_features, max_dense_entries,
            )
            return local.abs() if absolute else local
        ranking = self._ranked(
            inputs, target, additional_forward_args, objective, order, feature_mask,
            top_k, search, beam, exhaustive_limit, mode, chunk_size, max_features,
        )
        if absolute:
            ranking = InteractionRanking(ranking.indices, ranking.scores.abs())
        return ranking

    # ------------------------------------------------------------------- dense

    def _dense(
        self,
        inputs: TensorOrTuple,
        target: TargetType,
        additional_forward_args: Any,
        objective: str,
        order: int,
        feature_mask: MaskType,
        mode: str,
        chunk_size: Optional[int],
        max_features: int,
        max_dense_entries: int,
    ) -> Tensor:
        """Signed dense ``(B, G, ..., G)`` mixed partials."""
        if order == 2:
            return hessian(
                self.forward_func, inputs, target, additional_forward_args, objective,
                feature_mask, mode, chunk_size, max_features,
            )
        problem = make_problem(
            self.forward_func, inputs, target, additional_forward_args, objective, mode
        )
        groups = format_feature_mask(feature_mask, problem.fmt)
        size = problem.fmt.num_features if groups is None else groups.num_groups
        _check_dense_entries(size, order, max_dense_entries)
        # Sorted multisets of k-1 positions: with a full row each, they cover
        # every entry of the symmetric tensor once (up to permutation).
        prefixes = torch.combinations(torch.arange(size), r=order - 1, with_replacement=True)
        rows = rows_for_sets(problem, groups, prefixes.unsqueeze(1), mode, chunk_size)
        dense = dense_from_rows(rows, prefixes, size, order)
        _warn_if_zero(dense, order)
        return dense

    # ------------------------------------------------------------------- ranked

    def _ranked(
        self,
        inputs: TensorOrTuple,
        target: TargetType,
        additional_forward_args: Any,
        objective: str,
        order: int,
        feature_mask: MaskType,
        top_k: int,
        search: str,
        beam: Optional[int],
        exhaustive_limit: int,
        mode: str,
        chunk_size: Optional[int],
        max_features: int,
    ) -> InteractionRanking:
        problem = make_problem(
            self.forward_func, inputs, target, additional_forward_args, objective, mode
        )
        groups = format_feature_mask(feature_mask, problem.fmt)
        size = problem.fmt.num_features if groups is None else groups.num_groups
        if size < order:
            raise ValueError(
                f"order={order} needs at least {order} features (or groups), got {size}."
            )
        top_k = min(top_k, math.comb(size, order))
        if size**order >= 2**62:
            raise ValueError(
                f"order={order} over {size} features is too large to index; group "
                "features with `feature_mask`."
            )
        if order == 2:
            pair_h = hessian(
                self.forward_func, inputs, target, additional_forward_args, objective,
                feature_mask, mode, chunk_size, max_features,
            )
            return InteractionRanking(*top_pairs(pair_h, top_k))
        exhaustive = search == "exhaustive" or (
            search == "auto" and math.comb(size, order - 1) <= exhaustive_limit
        )
        if exhaustive:
            return InteractionRanking(
                *exhaustive_sets(problem, groups, size, order, top_k, mode, chunk_size)
            )
        width = max(2 * top_k, 20) if beam is None else int(beam)
        if width < 1:
            raise ValueError("`beam` must be a positive int.")
        pair_h = hessian(
            self.forward_func, inputs, target, additional_forward_args, objective,
            feature_mask, mode, chunk_size, max_features,
        )
        return InteractionRanking(*greedy_sets(
            problem, groups, pair_h, size, order, top_k, width, mode, chunk_size
        ))

    def global_interactions(
        self,
        data: Union[Tensor, Iterable[Any]],
        target: Union[TargetType, Callable[[Any], TargetType]] = None,
        additional_forward_args: Any = None,
        objective: str = "output",
        order: int = 2,
        feature_mask: MaskType = None,
        aggregation: str = "mean_abs",
        feature_names: Optional[Sequence[Hashable]] = None,
        top_k: Optional[int] = None,
        batch_size: int = 256,
        inputs_fn: Optional[Callable[[Any], TensorOrTuple]] = None,
        mode: str = "auto",
        chunk_size: Optional[int] = None,
        max_features: int = DEFAULT_MAX_DENSE_FEATURES,
        max_dense_entries: int = DEFAULT_MAX_DENSE_ENTRIES,
    ) -> GlobalInteractions:
        r"""Global interactions: local mixed partials aggregated over a data set.

        Streams over ``data`` batch by batch with running accumulators, so
        memory is one batch plus one ``(G, ..., G)`` tensor, whatever the
        number of samples. Lerman et al. (2021) define global interaction as
        the mean absolute local interaction (``"mean_abs"``).

        Args:
            data (Tensor or iterable): A Tensor of samples (split into batches
                of ``batch_size``), a ``DataLoader``, or any iterable of
                batches. A batch is the inputs (Tensor), or a list/tuple whose
                first element is the inputs (``(x, y)`` from a ``DataLoader``);
                otherwise pass ``inputs_fn``.
            target (int, Tensor, list or callable, optional): Captum target, or a
                function ``batch -> target`` (e.g. ``lambda b: b[1]``).
                Default: None
            additional_forward_args (Any, optional): Extra forward args, the same
                for every batch. Default: None
            objective, order, feature_mask, mode, chunk_size, max_features,
            max_dense_entries: As in :meth:`attribute` (dense results only).
            aggregation (str, optional): Over samples ``n`` of local signed
                mixed partials ``s_n``: ``"mean_abs"`` ``mean |s_n|``,
                ``"mean"`` ``mean s_n`` (interactions of opposite sign cancel),
                ``"max_abs"`` ``max |s_n|``, ``"rms"`` ``sqrt(mean s_n^2)``.
                Default: ``"mean_abs"``
            feature_names (sequence, optional): Names for the ranking.
                Default: None
            top_k (int, optional): Length of the ranking; None ranks all sets.
                Default: None
            batch_size (int, optional): Batch size when ``data`` is a Tensor.
                Default: 256
            inputs_fn (Callable, optional): ``batch -> inputs``. Default: None

        Returns:
            GlobalInteractions: ``(scores, ranking, num_samples, aggregation)``.

        Examples::

            >>> import torch
            >>> from captum_higher_order.attr.cross_derivatives import CrossDerivatives
            >>> from captum_higher_order.zoo import planted_products
            >>> f = planted_products(6, interactions=[(0, 1), (2, 3)])
            >>> x, _ = f.sample(500, dtype=torch.float64)
            >>> res = CrossDerivatives(f).global_interactions(x, batch_size=128)
            >>> sorted(pair for pair, _ in res.ranking[:2])
            [(0, 1), (2, 3)]
        """
        if aggregation not in AGGREGATIONS:
            raise ValueError(
                f"Unknown aggregation {aggregation!r}; choose one of {', '.join(AGGREGATIONS)}."
            )
        order = _check_order(order, mode)
        if isinstance(data, Tensor):
            if batch_size < 1:
                raise ValueError("`batch_size` must be a positive int.")
            batches: Iterable[Any] = data.split(batch_size)
        else:
            batches = data
        get_inputs = inputs_fn or _default_inputs
        total: Optional[Tensor] = None
        count = 0
        for batch in batches:
            batch_target = target(batch) if callable(target) else target
            local = self._dense(
                get_inputs(batch), batch_target, additional_forward_args, objective, order,
                feature_mask, mode, chunk_size, max_features, max_dense_entries,
            ).to(torch.float64)
            update = _reduce_batch(local, aggregation)
            total = update if total is None else _combine(total, update, aggregation)
            count += local.shape[0]
        if total is None or count == 0:
            raise ValueError("`data` yielded no samples.")
        scores = _finish(total, count, aggregation).to(local.dtype)
        ranking = _ranking_list(scores.detach().cpu(), top_k, feature_names)
        return GlobalInteractions(scores, ranking, count, aggregation)


def _reduce_batch(local: Tensor, aggregation: str) -> Tensor:
    if aggregation == "mean_abs":
        return local.abs().sum(dim=0)
    if aggregation == "mean":
        return local.sum(dim=0)
    if aggregation == "rms":
        return local.square().sum(dim=0)
    return local.abs().amax(dim=0)  # max_abs


def _combine(total: Tensor, update: Tensor, aggregation: str) -> Tensor:
    return torch.maximum(total, update) if aggregation == "max_abs" else total + update


def _finish(total: Tensor, count: int, aggregation: str) -> Tensor:
    if aggregation == "max_abs":
        return total
    if aggregation == "rms":
        return (total / count).sqrt()
    return total / count


def _ranking_list(
    scores: Tensor, k: Optional[int], feature_names: Optional[Sequence[Hashable]]
) -> List[Tuple[Tuple[Hashable, ...], float]]:
    """``[((i, j, ...), value), ...]`` of the distinct-feature sets of a dense
    ``(G, ..., G)`` tensor, strongest first, ranked by the shared
    :func:`~captum_higher_order._ranking.top_interaction_sets` (as
    :func:`~captum_higher_order.metrics.interactions.rank_interactions`)."""
    size = scores.shape[0]
    if feature_names is not None and len(feature_names) != size:
        raise ValueError(f"`feature_names` has {len(feature_names)} names for {size} features.")
    sets, values = top_interaction_sets(scores, k)
    return [
        (tuple(i if feature_names is None else feature_names[i] for i in members), float(v))
        for members, v in zip(sets.tolist(), values.tolist())
    ]
