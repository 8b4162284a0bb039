"""Batched conjugate gradients for shifted Hessian systems ``(lam I - H) d = b``.

:func:`conjugate_gradients` is written against a linear map on flat ``(B, F)``
vectors alone; :func:`solve` states the Hessian problem and runs it on the
engine's :class:`~captum_higher_order.hessian.engine.HessianOperator`.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, NamedTuple, Optional, Union

import torch
from torch import Tensor

from captum_higher_order._inputs import TargetType, TensorOrTuple
from captum_higher_order._numeric import positive_floor
from captum_higher_order._progress import inner_progress
from captum_higher_order.hessian.budget import BudgetLike
from captum_higher_order.hessian.engine import (
    Engine,
    HessianOperator,
    check_finite,
    make_problem,
)
from captum_higher_order.hessian.products import format_vectors

__all__ = [
    "SolveResult", "CGResult", "conjugate_gradients", "solve", "format_shift",
    "warn_unless_converged",
]


class SolveResult(NamedTuple):
    """``solution`` structured like the inputs; ``residual`` ``(B,)`` is
    ``||b - (lam I - H) d|| / ||b||``; ``iterations`` ``(B,)``; ``converged``
    ``(B,)`` bool; ``hvps`` the number of batched HVP passes used."""

    solution: TensorOrTuple
    residual: Tensor
    iterations: Tensor
    converged: Tensor
    hvps: int


class CGResult(NamedTuple):
    """Flat CG result: ``solution`` ``(B, F)``, true relative ``residual``
    ``(B,)``, ``iterations`` ``(B,)`` and the operator ``applications``."""

    solution: Tensor
    residual: Tensor
    iterations: Tensor
    applications: int


def conjugate_gradients(
    apply_a: Callable[[Tensor], Tensor],
    b: Tensor,
    tol: float,
    max_iter: int,
    x0: Optional[Tensor] = None,
) -> CGResult:
    """Solve ``A d = b`` per sample for a symmetric positive definite ``A``.

    Every step is one application of ``A`` to all samples still running;
    converged samples are frozen. A direction of non-positive curvature raises
    a ValueError naming the samples. The residual returned is the true one,
    ``||b - A d|| / ||b||`` (one more application). ``x0`` warm-starts it."""
    batch = b.shape[0]
    b_norm = positive_floor(b.norm(dim=1))
    applications = 0
    if x0 is None:
        d = torch.zeros_like(b)
        r = b.clone()
    else:
        d = x0.clone()
        r = b - apply_a(d)
        applications += 1
    p = r.clone()
    rr = (r * r).sum(dim=1)
    iterations = torch.zeros(batch, dtype=torch.long)
    active = rr.sqrt() > tol * b_norm
    with inner_progress(max_iter, "conjugate gradients", "HVP") as bar:
        for _ in range(max_iter):
            if not bool(active.any()):
                break
            bar.update()
            ap = apply_a(p)
            applications += 1
            curvature = (p * ap).sum(dim=1)
            bad = active & (curvature <= 0)
            if bool(bad.any()):
                raise ValueError(
                    "shift*I - H is not positive definite for sample(s) "
                    f"{bad.nonzero().flatten().tolist()}: raise `shift` above the largest "
                    "Hessian eigenvalue (see top_eigenpairs)."
                )
            step = torch.where(active, rr / positive_floor(curvature), torch.zeros_like(rr))
            d = d + step.unsqueeze(1) * p
            r = r - step.unsqueeze(1) * ap
            rr_new = (r * r).sum(dim=1)
            iterations += active.cpu().long()
            coef = torch.where(active, rr_new / positive_floor(rr), torch.zeros_like(rr))
            p = torch.where(active.unsqueeze(1), r + coef.unsqueeze(1) * p, p)
            rr = torch.where(active, rr_new, rr)
            active = active & (rr.sqrt() > tol * b_norm)
    # Report the true residual, not the recursive one.
    true_res = (b - apply_a(d)).norm(dim=1) / b_norm
    return CGResult(d, true_res, iterations, applications + 1)


def warn_unless_converged(result: CGResult, tol: float, max_iter: int,
                          stacklevel: int = 3) -> Tensor:
    """Converged flags ``(B,)`` (true residual ``<= 10 tol``); warns if any is not."""
    converged = result.residual <= tol * 10
    if not bool(converged.all()):
        warnings.warn(
            f"Conjugate gradients stopped after {int(result.iterations.max())} iterations "
            f"(max_iter={max_iter}) with relative residual {float(result.residual.max()):.2e}"
            f" > tol={tol}; raise max_iter or shift.",
            stacklevel=stacklevel,
        )
    return converged


def format_shift(shift: Union[float, Tensor], like: Tensor) -> Tensor:
    """``shift`` as a ``(B,)`` tensor in ``like``'s dtype and device."""
    batch = like.shape[0]
    # Python floats go straight to the dtype (via float32 they would lose digits).
    lam = shift.detach() if isinstance(shift, Tensor) else torch.tensor(shift, dtype=like.dtype)
    lam = lam.to(dtype=like.dtype, device=like.device).reshape(-1)
    if lam.numel() == 1:
        lam = lam.expand(batch)
    if lam.numel() != batch:
        raise ValueError(f"`shift` must be a float or a ({batch},) tensor.")
    return lam


def solve(
    forward_func: Callable[..., Tensor],
    inputs: TensorOrTuple,
    rhs: TensorOrTuple,
    shift: Union[float, Tensor],
    target: TargetType = None,
    additional_forward_args: Any = None,
    objective: str = "output",
    mode: str = "auto",
    tol: float = 1e-6,
    max_iter: Optional[int] = None,
    memory_budget: BudgetLike = None,
    precision: Optional[str] = None,
) -> SolveResult:
    r"""Solve ``(shift I - H_b) d_b = rhs_b`` per sample by conjugate gradients.

    ``shift I - H`` must be positive definite (``shift > lambda_max(H)``, see
    :func:`~captum_higher_order.hessian.top_eigenpairs`); a direction of
    non-positive curvature raises a ValueError that says so. Every CG step is
    one batched HVP for all samples still running; converged samples are frozen.

    Args:
        forward_func (Callable): The model or function.
        inputs (Tensor or tuple[Tensor, ...]): Inputs, batch in dim 0.
        rhs (Tensor or tuple[Tensor, ...]): Right-hand sides, shaped like inputs.
        shift (float or Tensor): ``lam``, a float or a ``(B,)`` tensor.
        target, additional_forward_args, objective, mode: As in
            :func:`~captum_higher_order.hessian.hvp`.
        tol (float, optional): Stop when ``||r|| <= tol * ||rhs||``.
            Default: 1e-6
        max_iter (int, optional): Iteration cap. Default: ``min(F, 500)``
        memory_budget, precision: As in :func:`~captum_higher_order.hessian.hvp`.

    Returns:
        SolveResult: solution, relative residual, iterations, converged flags
        and the number of HVP passes.

    Examples::

        >>> import torch
        >>> from captum_higher_order.hessian import solve
        >>> model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(),
        ...                             torch.nn.Linear(8, 3)).eval()
        >>> x = torch.randn(2, 5)
        >>> res = solve(model, x, torch.randn(2, 5), shift=10.0,
        ...             objective="cross_entropy")
        >>> bool(res.converged.all())
        True
    """
    problem = make_problem(forward_func, inputs, target, additional_forward_args, objective, mode)
    fmt = problem.fmt
    rhs_tuple = format_vectors(rhs, fmt)
    if rhs_tuple[0].dim() != fmt.inputs[0].dim():
        raise ValueError("`rhs` must be shaped like the inputs (one vector per sample).")
    b = fmt.flatten(rhs_tuple)
    check_finite((b,), "`rhs`")
    lam = format_shift(shift, b)
    cap = max_iter if max_iter is not None else min(b.shape[1], 500)
    operator = HessianOperator(
        Engine(problem, mode, memory_budget=memory_budget, precision=precision)
    )

    def apply_a(v: Tensor) -> Tensor:
        return lam.unsqueeze(1) * v - operator.matvec(v)

    result = conjugate_gradients(apply_a, b, tol, cap)
    converged = warn_unless_converged(result, tol, cap)
    solution = fmt.format_like_inputs(fmt.unflatten(result.solution))
    return SolveResult(
        solution, result.residual, result.iterations, converged.cpu(), result.applications
    )
