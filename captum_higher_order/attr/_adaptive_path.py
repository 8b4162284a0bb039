r"""Choosing Integrated Hessians' number of path points from an accuracy target.

With ``phi(t) = f(x' + t Delta)`` the entries of ``Gamma`` sum to
``int_0^1 (-ln t) (t phi'' + phi') dt = phi(1) - phi(0)`` (completeness, see
:mod:`captum_higher_order.attr.integrated_hessians`), and row ``i`` sums to
``int (-ln t) [t Delta_i (H(t) Delta)_i + Delta_i d_i f(t)] dt = IG_i``. Both
need only **one** Hessian-vector product (along ``Delta``) and one gradient
per path point, against ``F`` (or ``G``) products for the whole ``Gamma``. So
the rule is chosen by a cheap search first:

* for ``n = 2, 4, 8, ...`` (doubling Gauss rules of the weight ``-ln t``) the
  row sums ``r_n`` of the ``n``-point result are computed from those single
  products, and with them the completeness gap
  ``sum_i r_n,i - (f(x) - f(x'))``;
* ``n`` is accepted when, for every sample, the gap relative to
  ``sum_i |r_n,i|`` (the L1 norm of the IG attribution, at least
  ``|f(x) - f(x')|``) is below ``tol``, and the rule difference
  ``||r_n - r_{n/2}||_1 / ||r_n||_1`` is below ``sqrt(tol)``. The second test
  guards against a gap that is small by cancellation; for a rule converging
  exponentially the error of ``r_n`` is about the square of that difference,
  which is why ``sqrt(tol)`` and not ``tol`` (the QUADPACK habit of trusting
  the finer rule);
* the search stops with a warning when the gap stops shrinking (it no longer
  halves from ``n/2`` to ``n``, ``n >= 16``: the Hessian term is missing, as in
  piecewise-linear models with ``objective="output"``, or ``tol`` is below the
  arithmetic's precision) or at :data:`MAX_STEPS`.

Then ``Gamma`` is computed once with the chosen ``n``; the search costs
``sum n`` single products, small next to ``n * G`` for the result.
"""

from __future__ import annotations

import math
import warnings
from typing import Callable, List, NamedTuple, Optional, Tuple

import torch
from torch import Tensor

from captum_higher_order._inputs import FormattedInputs
from captum_higher_order.attr._path_quadrature import path_quadrature
from captum_higher_order.attr._path_sums import path_rows
from captum_higher_order.hessian.engine import Engine, Problem

__all__ = ["FIRST_STEPS", "MAX_STEPS", "AdaptiveRule", "check_tol", "choose_n_steps",
           "completeness_rows"]

#: First rule of the doubling search.
FIRST_STEPS = 2
#: Largest rule the search tries.
MAX_STEPS = 128


class AdaptiveRule(NamedTuple):
    """Outcome of :func:`choose_n_steps`: the accepted ``n_steps``, every rule
    tried with its worst relative gap over the batch, and whether ``tol`` was
    met (False: stopped on stagnation or at :data:`MAX_STEPS`)."""

    n_steps: int
    tried: Tuple[Tuple[int, float], ...]
    converged: bool


def check_tol(tol: float) -> float:
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not (
        math.isfinite(tol) and 0 < tol < 1
    ):
        raise ValueError(
            f"`tol` must be a relative completeness gap in (0, 1), e.g. 1e-3; got {tol!r}."
        )
    return float(tol)


def completeness_rows(
    forward_func: Callable[..., Tensor],
    fmt: FormattedInputs,
    baselines: Tuple[Tensor, ...],
    target: Optional[Tensor],
    objective: str,
    t: Tensor,
    weights: Tensor,
    row_chunk: Optional[int],
    mode: str,
) -> Tensor:
    """Row sums ``(B, F)`` of the rule ``(t, weights)``'s ``Gamma``: one
    gradient and one Hessian-vector product along ``Delta`` per path point."""
    batch, dtype, device = fmt.batch_size, fmt.dtype, fmt.device
    delta = fmt.flatten(tuple(x - b for x, b in zip(fmt.inputs, baselines)))  # (B, F)
    t = t.to(device=device, dtype=dtype)
    weights = weights.to(device=device, dtype=dtype)
    total_rows = batch * t.numel()
    chunk = total_rows if row_chunk is None else min(total_rows, row_chunk)
    rows_sum = torch.zeros(batch, fmt.num_features, dtype=dtype, device=device)
    for start in range(0, total_rows, chunk):
        stop = min(total_rows, start + chunk)
        rows_fmt, rows_target, sample, node = path_rows(fmt, baselines, target, t, start, stop)
        sample, node = sample.to(device), node.to(device)
        engine = Engine(Problem(forward_func, rows_fmt, rows_target, objective), mode)
        d = delta[sample]  # (rows, F)
        grad = rows_fmt.flatten(engine.gradient())
        hvp = rows_fmt.flatten(engine.products(rows_fmt.unflatten(d.unsqueeze(0))), lead=2)[0]
        term = d * (t[node].unsqueeze(1) * hvp + grad)
        rows_sum.index_add_(0, sample, term * weights[node].unsqueeze(1))
    return rows_sum


def choose_n_steps(
    rows_of: Callable[[Tensor, Tensor], Tensor],
    f_diff: Tensor,
    method: str,
    tol: float,
) -> AdaptiveRule:
    """The smallest doubling rule that meets ``tol`` (module docstring).

    Args:
        rows_of: ``(t, weights) -> (B, F)`` row sums, e.g. a
            :func:`completeness_rows` closure.
        f_diff: ``(B,)`` ``f(x) - f(x')``.
        method: Captum quadrature rule (see
            :func:`~captum_higher_order.attr.integrated_hessians.path_quadrature`).
        tol: Relative completeness gap to reach.
    """
    tried: List[Tuple[int, float]] = []
    previous: Optional[Tensor] = None
    n = FIRST_STEPS
    while True:
        rows = rows_of(*path_quadrature(method, n))
        scale = rows.abs().sum(1)
        floor = torch.finfo(rows.dtype).tiny
        gap = float(((rows.sum(1) - f_diff).abs() / scale.clamp_min(floor)).max())
        change = math.inf if previous is None else float(
            ((rows - previous).abs().sum(1) / scale.clamp_min(floor)).max()
        )
        tried.append((n, gap))
        if gap < tol and change < math.sqrt(tol):
            return AdaptiveRule(n, tuple(tried), True)
        stalled = n >= 16 and gap > 0.5 * tried[-2][1]
        if stalled or n >= MAX_STEPS:
            why = ("stopped shrinking (is the model piecewise linear for this objective, "
                   "or tol below the arithmetic's precision?)" if stalled
                   else f"is still above tol at the largest rule, {MAX_STEPS}")
            warnings.warn(
                f"IntegratedHessians(n_steps=None): the relative completeness gap "
                f"{gap:.2e} {why}; using n_steps={n}. Pass an int n_steps to choose "
                "it yourself.",
                stacklevel=4,
            )
            return AdaptiveRule(n, tuple(tried), False)
        previous = rows
        n *= 2
