"""The path sums behind Integrated Hessians: Hessian-vector products and
gradients at the path points ``x' + t_k (x - x')`` of every sample, batched
over samples, path points and directions (the formulas are in
:mod:`captum_higher_order.attr.integrated_hessians`)."""

from __future__ import annotations

from typing import Callable, Optional, Tuple

import torch
from torch import Tensor

from captum_higher_order._inputs import (
    FeatureGroups,
    FormattedInputs,
    run_forward,
    select_objective,
)
from captum_higher_order.hessian import value_and_grad
from captum_higher_order.hessian.engine import Engine, Problem

__all__ = ["objective_values", "path_rows", "path_sums", "rows_groups"]


def objective_values(
    forward_func: Callable[..., Tensor],
    xs: Tuple[Tensor, ...],
    fmt: FormattedInputs,
    target: Optional[Tensor],
    objective: str,
) -> Tensor:
    with torch.no_grad():
        out = run_forward(forward_func, xs, fmt.additional_forward_args)
        return select_objective(out, target, objective).detach()


def path_rows(
    fmt: FormattedInputs,
    baselines: Tuple[Tensor, ...],
    target: Optional[Tensor],
    t: Tensor,
    start: int,
    stop: int,
) -> Tuple[FormattedInputs, Optional[Tensor], Tensor, Tensor]:
    """Rows ``start..stop-1`` of the path points: row ``r`` is sample ``r // K``
    at node ``r % K``, i.e. ``x'_b + t_k (x_b - x'_b)``."""
    num_nodes = t.numel()
    rows = torch.arange(start, stop)
    sample, node = rows // num_nodes, rows % num_nodes
    dev_sample, dev_node = sample.to(fmt.device), node.to(fmt.device)
    points = []
    for x, base in zip(fmt.inputs, baselines):
        scale = t[dev_node].view(-1, *([1] * (x.dim() - 1)))
        points.append(base[dev_sample] + scale * (x[dev_sample] - base[dev_sample]))
    args = fmt.additional_forward_args
    if args is not None:
        args = tuple(
            a[dev_sample.to(a.device)]
            if isinstance(a, Tensor) and a.dim() > 0 and a.shape[0] == fmt.batch_size
            else a
            for a in args
        )
    rows_fmt = FormattedInputs(tuple(points), fmt.is_tuple, args, stop - start)
    rows_target = None if target is None else target[sample]
    return rows_fmt, rows_target, sample, node


def path_sums(
    forward_func: Callable[..., Tensor],
    fmt: FormattedInputs,
    baselines: Tuple[Tensor, ...],
    target: Optional[Tensor],
    objective: str,
    groups: Optional[FeatureGroups],
    t: Tensor,
    weights: Tensor,
    multiply_by_inputs: bool,
    internal_batch_size: Optional[int],
    mode: str,
) -> Tuple[Tensor, Tensor]:
    """The Hessian part ``sum_k W_k t_k D_A^T H(t_k) D_B`` ``(B, G, G)`` and the
    first-order part ``sum_k W_k D_A^T grad f(t_k)`` ``(B, G)``, where ``D`` is
    ``x - x'`` (``multiply_by_inputs``) or ones."""
    batch, dtype, device = fmt.batch_size, fmt.dtype, fmt.device
    num_groups = fmt.num_features if groups is None else groups.num_groups
    delta_flat = fmt.flatten(tuple(x - b for x, b in zip(fmt.inputs, baselines)))  # (B, F)
    t = t.to(device=device, dtype=dtype)
    weights = weights.to(device=device, dtype=dtype)
    total_rows = batch * t.numel()
    if internal_batch_size is None:
        row_chunk, direction_chunk = total_rows, None
    else:
        # internal_batch_size bounds the HVPs (path point x direction) per pass.
        row_chunk = min(total_rows, internal_batch_size)
        direction_chunk = max(1, internal_batch_size // row_chunk)

    hessian_part = torch.zeros(batch, num_groups, num_groups, dtype=dtype, device=device)
    first_order = torch.zeros(batch, num_groups, dtype=dtype, device=device)
    for start in range(0, total_rows, row_chunk):
        stop = min(total_rows, start + row_chunk)
        rows_fmt, rows_target, sample, node = path_rows(
            fmt, baselines, target, t, start, stop
        )
        sample, node = sample.to(device), node.to(device)
        row_groups = rows_groups(groups, sample)
        # Directions D_A: x - x' masked to group A (or the group indicator).
        scale = delta_flat[sample] if multiply_by_inputs else torch.ones_like(
            delta_flat[sample]
        )
        problem = Problem(forward_func, rows_fmt, rows_target, objective)
        hessian_part += weighted_hessian_rows(
            Engine(problem, mode), row_groups, scale, (weights * t)[node], sample,
            batch, direction_chunk,
        )
        if multiply_by_inputs:
            _, grads = value_and_grad(
                forward_func, rows_fmt.inputs, rows_target,
                rows_fmt.additional_forward_args, objective,
            )
            # rows_fmt.inputs is a tuple, so the gradient comes back as one too.
            assert isinstance(grads, tuple)
            projected = rows_fmt.flatten(grads) * scale
            if row_groups is not None:
                projected = row_groups.project(projected)
            first_order.index_add_(0, sample, projected * weights[node].view(-1, 1))
    hessian_part = 0.5 * (hessian_part + hessian_part.transpose(1, 2))
    return hessian_part, first_order


def weighted_hessian_rows(
    engine: Engine,
    groups: Optional[FeatureGroups],
    scale: Tensor,
    row_weight: Tensor,
    sample: Tensor,
    batch: int,
    direction_chunk: Optional[int],
) -> Tensor:
    """``sum_rows row_weight * D_A^T H_row D_C`` for every pair of groups (or
    features, ``groups=None``), summed over the rows (path points) of each
    sample: ``(B, G, G)``. The HVPs run for all rows at once and in chunks of
    directions ``D_A``."""
    fmt = engine.problem.fmt
    rows = fmt.batch_size
    size = fmt.num_features if groups is None else groups.num_groups
    dtype, device = fmt.dtype, fmt.device
    # (B, rows): sums each sample's path points with their weights, as a matmul.
    to_samples = torch.zeros(batch, rows, dtype=dtype, device=device)
    to_samples[sample, torch.arange(rows, device=device)] = row_weight

    def make(lo: int, hi: int) -> Tuple[Tensor, ...]:
        if groups is None:  # unit vectors e_lo .. e_{hi-1}
            basis = torch.zeros(hi - lo, 1, size, dtype=dtype, device=device)
            index = torch.arange(hi - lo, device=device)
            basis[index, 0, lo + index] = 1.0
            return fmt.unflatten(basis * scale)
        return fmt.unflatten(groups.indicators(lo, hi, rows, dtype, device) * scale)

    def reduce(prods: Tuple[Tensor, ...]) -> Tensor:
        # (directions, rows, F) -> D_C^T (H D_A) -> weighted sum over path points.
        flat = fmt.flatten(prods, lead=2) * scale
        projected = flat if groups is None else groups.project(flat)
        return torch.einsum("crg,br->cbg", projected, to_samples)

    return engine.apply(make, size, direction_chunk, reduce).movedim(0, 1)


def rows_groups(groups: Optional[FeatureGroups], sample: Tensor) -> Optional[FeatureGroups]:
    if groups is None or groups.index.shape[0] == 1:
        return groups
    return FeatureGroups(groups.index.to(sample.device)[sample], groups.ids)
