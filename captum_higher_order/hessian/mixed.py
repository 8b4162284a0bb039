"""Mixed partial derivatives of order three and higher (CrossDerivatives).

Lerman et al. (2021, "Explaining Local, Global, and Higher-Order Interactions
in Deep Learning", ICCV). Where the HVP kernels apply one second derivative to
many vectors, here the ``j`` directions are nested, one level of
differentiation each, and a last reverse pass returns a whole row. The rows run
on the :class:`~captum_higher_order.hessian.engine.Engine` with their own
kernels, so chunking, memory budget and fallback are the engine's.
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Tuple

import torch
from torch import Tensor

from captum_higher_order._inputs import TargetType, TensorOrTuple
from captum_higher_order.hessian.budget import BudgetLike
from captum_higher_order.hessian.engine import Engine, Problem, check_finite, make_problem

__all__ = ["mixed_rows", "mixed_derivative_rows"]


def _along(fn: Callable[..., Tensor], direction: Tuple[Tensor, ...]) -> Callable[..., Tensor]:
    """``x -> D fn(x)[direction]``: one forward-mode directional derivative.

    ``fn`` maps the inputs to per-sample values ``(B,)``; since sample ``b``'s
    value depends only on ``x_b``, the tangent is the per-sample derivative."""

    def derivative(*xs: Tensor) -> Tensor:
        return torch.func.jvp(fn, xs, direction)[1]

    return derivative


def _rows_fwd_rev(
    problem: Problem, levels: Tuple[Tuple[Tensor, ...], ...]
) -> Tuple[Tensor, ...]:
    """Nested ``jvp`` (one per direction) under one ``grad``, vmapped over the
    leading ``m`` dim of every direction tensor (each ``(m, B, *shape)``)."""
    xs = problem.fmt.inputs
    n_in, depth = len(xs), len(levels)
    argnums = tuple(range(n_in))

    def rows_for(*flat: Tensor) -> Tuple[Tensor, ...]:
        fn: Callable[..., Tensor] = problem.per_sample
        for level in range(depth):
            fn = _along(fn, tuple(flat[level * n_in : (level + 1) * n_in]))
        inner = fn
        return torch.func.grad(lambda *x: inner(*x).sum(), argnums=argnums)(*xs)

    flat_dirs = tuple(t for level in levels for t in level)
    return tuple(torch.func.vmap(rows_for)(*flat_dirs))


def _rows_rev_rev(
    problem: Problem, levels: Tuple[Tuple[Tensor, ...], ...]
) -> Tuple[Tensor, ...]:
    """Reverse-mode only (for operators without forward AD): the first-order
    graph is built once; each direction adds one ``create_graph`` backward."""
    xs = tuple(x.clone().requires_grad_(True) for x in problem.fmt.inputs)
    m = levels[0][0].shape[0]
    with torch.enable_grad():
        total = problem.total(*xs)
        first = _grads_or_zeros(total, xs)
        out: List[Tuple[Tensor, ...]] = []
        for i in range(m):
            g = first
            for level in levels:
                inner = sum((gi * vi[i]).sum() for gi, vi in zip(g, level))
                g = _grads_or_zeros(inner, xs)
            out.append(tuple(t.detach() for t in g))
    return tuple(torch.stack([o[k] for o in out]) for k in range(len(xs)))


def _grads_or_zeros(scalar: Any, xs: Tuple[Tensor, ...]) -> Tuple[Tensor, ...]:
    if not isinstance(scalar, Tensor) or not scalar.requires_grad:
        return tuple(torch.zeros_like(x) for x in xs)
    grads = torch.autograd.grad(scalar, xs, create_graph=True, allow_unused=True)
    return tuple(torch.zeros_like(x) if g is None else g for g, x in zip(grads, xs))


def mixed_rows(
    problem: Problem,
    make_directions: Callable[[int, int], Tensor],
    m: int,
    depth: int,
    mode: str = "auto",
    chunk_size: Optional[int] = None,
    memory_budget: BudgetLike = None,
    precision: Optional[str] = None,
) -> Tensor:
    """Rows ``grad_x D^depth s_b[u_1..u_depth]`` for ``m`` direction sets.

    ``make_directions(start, stop)`` returns flat directions
    ``(stop - start, depth, B, F)``; the result is ``(m, B, F)``. Runs on
    :class:`Engine` with nested-direction kernels, so chunking over ``m``
    (halving on OOM) and the reverse-over-reverse fallback are the engine's."""
    fmt = problem.fmt

    def make(start: int, stop: int) -> Tuple[Tuple[Tensor, ...], ...]:
        dirs = make_directions(start, stop)  # (c, depth, B, F)
        return tuple(fmt.unflatten(dirs[:, j]) for j in range(depth))

    engine = Engine(problem, mode, fwd_rev=_rows_fwd_rev, rev_rev=_rows_rev_rev,
                    memory_budget=memory_budget, precision=precision)
    # Nesting doubles the tangent work per level.
    return engine.apply(
        make, m, chunk_size, lambda rows: fmt.flatten(rows, lead=2),
        cost_per_vector=2 ** (depth - 1), desc="derivative rows",
    )


def mixed_derivative_rows(
    forward_func: Callable[..., Tensor],
    inputs: TensorOrTuple,
    directions: Tensor,
    target: TargetType = None,
    additional_forward_args: Any = None,
    objective: str = "output",
    mode: str = "auto",
    chunk_size: Optional[int] = None,
    memory_budget: BudgetLike = None,
    precision: Optional[str] = None,
) -> Tensor:
    r"""Rows of the ``(j+1)``-th derivative tensor, contracted with ``j`` directions.

    For a per-sample objective ``s_b`` and each of ``m`` direction sets
    ``(u_1, ..., u_j)`` this returns, for every sample, the vector

    .. math::
        r_b = \nabla_x \, \frac{\partial^j}{\partial t_1 \cdots \partial t_j}
              s_b\Big(x_b + \sum_i t_i u_i\Big)\Big|_{t=0},

    i.e. ``r_b[l] = D^{j+1} s_b(x_b)[u_1, ..., u_j, e_l]``. With basis
    directions ``u_i = e_{a_i}`` entry ``l`` is the mixed partial
    ``d^{j+1} s_b / dx_{a_1} ... dx_{a_j} dx_l``; with ``j = 1`` it is a
    Hessian-vector product. Order ``k = j + 1`` interactions of Lerman et al.
    (2021, "Explaining Local, Global, and Higher-Order Interactions in Deep
    Learning", ICCV) are entries of these rows.

    Computed as ``j`` nested forward-mode ``torch.func.jvp`` under one
    ``torch.func.grad`` (so one pass yields all ``F`` last indices), vmapped
    over the ``m`` direction sets and batched over samples. ``mode="rev_rev"``
    (and the ``"auto"`` fallback) uses nested ``autograd.grad`` instead.

    Args:
        forward_func (Callable): The model or function.
        inputs (Tensor or tuple[Tensor, ...]): Inputs, batch in dim 0.
        directions (Tensor): Flat directions over the ``F`` flattened features
            of all inputs: ``(m, j, F)`` shared by every sample, or
            ``(m, j, B, F)`` per sample; ``j >= 1``.
        target, additional_forward_args, objective: As in :func:`hvp`.
        mode (str, optional): ``"auto"``, ``"fwd_rev"`` or ``"rev_rev"``.
            Default: ``"auto"``
        chunk_size (int, optional): Direction sets per pass. None picks one
            from the memory budget. Default: None
        memory_budget, precision: As in :func:`~captum_higher_order.hessian.hvp`.

    Returns:
        Tensor: ``(m, B, F)``.

    Examples::

        >>> import torch
        >>> from captum_higher_order.hessian import mixed_derivative_rows
        >>> f = lambda x: x[:, 0] * x[:, 1] * x[:, 2]
        >>> e = torch.eye(3, dtype=torch.float64)
        >>> dirs = torch.stack([e[0], e[1]]).unsqueeze(0)   # one set (e_0, e_1)
        >>> mixed_derivative_rows(f, torch.ones(1, 3, dtype=torch.float64), dirs)
        tensor([[[0., 0., 1.]]], dtype=torch.float64)
    """
    if mode not in ("auto", "fwd_rev", "rev_rev"):
        raise ValueError(
            f"mode={mode!r} is not available for mixed derivatives; choose 'auto', "
            "'fwd_rev' or 'rev_rev'."
        )
    problem = make_problem(
        forward_func, inputs, target, additional_forward_args, objective, mode
    )
    fmt = problem.fmt
    if not isinstance(directions, Tensor):
        raise TypeError("`directions` must be a Tensor of shape (m, j, F) or (m, j, B, F).")
    batch, num_features = fmt.batch_size, fmt.num_features
    if directions.dim() == 3:
        directions = directions.unsqueeze(2).expand(-1, -1, batch, -1)
    if (
        directions.dim() != 4
        or directions.shape[1] < 1
        or directions.shape[2] != batch
        or directions.shape[3] != num_features
    ):
        raise ValueError(
            f"`directions` must be (m, j, F) or (m, j, B, F) with j >= 1, B={batch} "
            f"and F={num_features} (the flattened features of all inputs), got "
            f"{tuple(directions.shape)}."
        )
    directions = directions.detach().to(dtype=fmt.dtype, device=fmt.device)
    check_finite((directions,), "`directions`")
    return mixed_rows(
        problem,
        lambda s, e: directions[s:e],
        directions.shape[0],
        directions.shape[1],
        mode,
        chunk_size,
        memory_budget,
        precision,
    )
