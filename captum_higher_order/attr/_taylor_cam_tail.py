"""How TaylorCAM computes its products: the recorded tail or the whole network.

The recording pass runs the layers before ``layer`` (the trunk) under
``no_grad`` and records the graph of the layers after it (the tail), counting
the FLOPs of both and the bytes the tail saves for backward. The products
``H 1_s`` then come either from that graph (reverse-over-reverse,
:class:`~captum_higher_order.hessian.recorded.RecordedGradient`: the trunk never
runs again) or from the engine's vectorised forward-over-reverse pass through
the whole network (the trunk runs once more per chunk, its output replaced by
the recorded activation). :func:`use_recorded_tail` picks the cheaper one (see
docs/taylor_cam.md, "Cost").
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Set, Tuple

import torch
from torch import Tensor

from captum_higher_order._inputs import FeatureGroups, find_module, select_objective
from captum_higher_order.hessian.budget import resolve_budget
from captum_higher_order.hessian.engine import Engine, is_oom, make_problem
from captum_higher_order.hessian.precision import resolve_precision
from captum_higher_order.hessian.recorded import RecordedGradient

__all__ = [
    "Recording",
    "RECORDED_TAIL_PENALTY",
    "budget_chunk",
    "cell_vectors",
    "tail_cross_terms",
    "use_recorded_tail",
    "weight_ptrs",
]


class Recording(NamedTuple):
    """What one forward pass with the recording hook leaves behind."""

    activation: Tensor  # (B, C, *grid), detached copy of the layer's value
    leaf: Tensor  # the same values, a leaf the tail of the graph starts from
    output: Tensor  # model output, differentiable with respect to ``leaf``
    tail_bytes: int  # bytes autograd saved for the layers after ``layer`` (no weights)
    trunk_flops: int  # matmul/conv FLOPs of the layers before ``layer``
    tail_flops: int  # ... and after it


def budget_chunk(activation: Tensor, tail_bytes: int, num: int) -> int:
    """Directions per vectorised pass: each costs about three times what the
    tail of the network saves for backward (tangent forward and backward and
    their saved values) plus a few copies of the activation."""
    per_vector = 3 * tail_bytes + 4 * activation.numel() * activation.element_size()
    budget = resolve_budget(None, activation.device)
    return int(max(1, min(num, budget // max(per_vector, 1))))


#: On the recorded tail one reverse-over-reverse product costs about this many
#: times the tail's forward more than one vectorised forward-over-reverse
#: product through the whole network (resnet18 layer3, CPU:
#: benchmarks/taylor_cam.py); the whole network costs one more trunk forward.
RECORDED_TAIL_PENALTY = 10


def use_recorded_tail(rec: Recording, mode: str, num: int) -> bool:
    """Whether the products go through the recorded tail (no second pass
    through the layers before ``layer``) rather than the whole network.

    ``rev_rev`` always does (the whole-network version only adds the trunk);
    ``auto`` does when the trunk's forward costs more than the extra work of
    reverse-over-reverse on the tail, ``num * RECORDED_TAIL_PENALTY`` tail
    forwards (counted in FLOPs in the recording pass), e.g. at the last
    convolutional stage of a ResNet, where only pooling and ``fc`` follow.
    Reduced precision (an ``hvp_precision`` block) takes the engine's
    whole-network passes, which apply it."""
    if resolve_precision(None, rec.activation.dtype) != "float32":
        return False
    if mode == "rev_rev":
        return True
    return mode == "auto" and num * RECORDED_TAIL_PENALTY * rec.tail_flops <= rec.trunk_flops


def weight_ptrs(forward_func: Callable[..., Any]) -> Set[int]:
    """Storage addresses of the model's parameters and buffers."""
    module = find_module(forward_func)
    if module is None:
        return set()
    return {t.data_ptr() for t in list(module.parameters()) + list(module.buffers())}


def cell_vectors(
    groups: FeatureGroups, activation: Tensor
) -> Tuple[Callable[[int, int], Tuple[Tensor, ...]], Callable[[Tuple[Tensor, ...]], Tensor]]:
    """The engine's ``make_vectors`` (indicators ``1_s`` of regions
    ``start..stop-1``, ``(k, B, C, *grid)``) and ``reduce`` (``(k, B, R)``:
    ``sum_{r in a} sum_k A[k, r] (H 1_s)[k, r]`` per row region ``a``)."""
    batch, dtype, device = activation.shape[0], activation.dtype, activation.device
    flat_activation = activation.reshape(batch, -1)

    def make(start: int, stop: int) -> Tuple[Tensor, ...]:
        ind = groups.indicators(start, stop, batch, dtype, device)  # (k, B, C*S)
        return (ind.view(stop - start, *activation.shape),)

    def reduce(products: Tuple[Tensor, ...]) -> Tensor:
        hv = products[0].reshape(products[0].shape[0], batch, -1)
        return groups.project(flat_activation * hv)  # (k, B, R)

    return make, reduce


def tail_cross_terms(
    rec: Recording,
    target: Optional[Tensor],
    objective: str,
    groups: FeatureGroups,
    chunk_size: int,
) -> Optional[Tensor]:
    """``M`` from the recorded tail alone: reverse-over-reverse products
    through the graph of the layers after ``layer`` (recorded once, with the
    layers before it under ``no_grad``), so nothing before the layer runs again.

    Returns None when the recorded tail has no double backward (an operator
    without one, a fused attention kernel): the caller then goes through the
    whole network, where ``auto`` can use forward-over-reverse."""
    try:
        with torch.enable_grad():
            score = select_objective(rec.output, target, objective).sum()
        recorded = RecordedGradient(score, [rec.leaf])
        # The problem fixes batch, dtype, device and precision for the engine;
        # the recorded kernel never calls its forward.
        problem = make_problem(_no_forward, rec.activation, target, None, objective, "rev_rev",
                               check_output=False)
        make, reduce = cell_vectors(groups, rec.activation)
        rows = Engine(problem, "rev_rev", rev_rev=recorded).apply(
            make, groups.num_groups, chunk_size, reduce
        )
    except RuntimeError as err:
        if is_oom(err):
            raise
        return None  # e.g. an operator without double backward
    return rows.permute(1, 2, 0)  # rows[s, b, a] -> M[b, a, s]


def _no_forward(*args: Any) -> Tensor:
    raise RuntimeError("TaylorCAM's recorded tail never re-runs the model.")  # pragma: no cover
