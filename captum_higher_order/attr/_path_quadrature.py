"""Path rules for Integrated Hessians' single integral ``int_0^1 g(t) (-ln t) dt``.

The derivation (``t = a b`` pushes the unit square forward to the density
``-ln t``) is in :mod:`captum_higher_order.attr.integrated_hessians`; here are
the rules: the ``n``-point Gauss rule of the paper's ``n x n`` double sum.
"""

from __future__ import annotations

import functools
import numbers
from typing import Tuple

import torch
from torch import Tensor

from captum_higher_order._captum import approximation_parameters

__all__ = ["METHODS", "path_quadrature"]

METHODS = (
    "gausslegendre",
    "riemann_left",
    "riemann_right",
    "riemann_middle",
    "riemann_trapezoid",
)


@functools.lru_cache(maxsize=64)
def _path_rule_cached(method: str, n_steps: int) -> Tuple[Tensor, Tensor]:
    step_sizes, alphas = approximation_parameters(method)
    a = torch.tensor(list(alphas(n_steps)), dtype=torch.float64)
    w = torch.tensor(list(step_sizes(n_steps)), dtype=torch.float64)
    # The paper's double sum: path points t = a_k a_l with weights w_k w_l
    # (the same rule in a and b). Merge coincident points (a_k a_l = a_l a_k).
    points, inverse = torch.unique((a[:, None] * a[None, :]).flatten(), return_inverse=True)
    mass = torch.zeros_like(points).index_add_(
        0, inverse, (w[:, None] * w[None, :]).flatten()
    )
    if points.numel() <= n_steps:  # nothing to compress
        return points, mass
    return _gauss_rule(points, mass, n_steps)


def _gauss_rule(points: Tensor, mass: Tensor, n: int) -> Tuple[Tensor, Tensor]:
    """``n``-point Gauss rule of the discrete measure ``sum_m mass_m delta(points_m)``.

    Lanczos on ``diag(points)`` from the start vector ``sqrt(mass / total)``
    gives the Jacobi matrix of the measure's orthonormal polynomials
    (Golub & Welsch 1969); its eigenvalues are the nodes and the squared first
    components of its eigenvectors times the total mass the weights. Full
    re-orthogonalisation (twice) keeps the recurrence exact in float64.
    """
    total = mass.sum()
    basis = torch.zeros(n, points.numel(), dtype=torch.float64)
    basis[0] = torch.sqrt(mass / total)
    diag = torch.zeros(n, dtype=torch.float64)
    off = torch.zeros(max(n - 1, 0), dtype=torch.float64)
    for j in range(n):
        v = points * basis[j]
        diag[j] = v @ basis[j]
        for _ in range(2):
            v = v - basis[: j + 1].T @ (basis[: j + 1] @ v)
        if j + 1 < n:
            off[j] = v.norm()
            basis[j + 1] = v / off[j]
    jacobi = torch.diag(diag) + torch.diag(off, 1) + torch.diag(off, -1)
    nodes, vectors = torch.linalg.eigh(jacobi)
    return nodes.clamp(0.0, 1.0), total * vectors[0] ** 2


def path_quadrature(method: str = "gausslegendre", n_steps: int = 16) -> Tuple[Tensor, Tensor]:
    r"""Path points ``t_k`` and weights ``W_k`` for ``int_0^1 g(t) (-ln t) dt``.

    ``(a, b)`` uniform on the unit square push ``t = a b`` forward to the density
    ``-ln t``, so the paper's double integrals ``int int g(ab) da db`` are
    ``int g(t) (-ln t) dt``. The rule returned is the ``n_steps``-point Gauss
    rule of the paper's ``n_steps x n_steps`` double sum with Captum's rule
    ``method`` in both ``a`` and ``b``: it reproduces that sum for every
    polynomial ``g`` of degree below ``2 n_steps``. For ``"gausslegendre"`` it
    is the Gauss rule of the weight ``-ln t`` (exponential convergence).

    Args:
        method (str, optional): A Captum quadrature name: ``"gausslegendre"``,
            ``"riemann_left"``, ``"riemann_right"``, ``"riemann_middle"`` or
            ``"riemann_trapezoid"``. Default: ``"gausslegendre"``
        n_steps (int, optional): Number of path points. Default: 16

    Returns:
        tuple[Tensor, Tensor]: float64 ``(t, W)``, each ``(m,)`` with
        ``m <= n_steps``, ``t`` in ``[0, 1]``, ``W > 0``, ``sum W = 1``.

    Examples::

        >>> from captum_higher_order.attr.integrated_hessians import path_quadrature
        >>> t, w = path_quadrature("gausslegendre", 8)
        >>> round(float((w * t ** 3).sum()), 12)   # int t^3 (-ln t) dt = 1/16
        0.0625
    """
    if method not in METHODS:
        raise ValueError(
            f"Unknown method {method!r}; choose one of Captum's quadrature rules: "
            f"{', '.join(METHODS)}."
        )
    if isinstance(n_steps, bool) or not isinstance(n_steps, numbers.Integral) or n_steps < 1:
        raise ValueError(f"`n_steps` must be a positive int, got {n_steps!r}.")
    t, w = _path_rule_cached(method, int(n_steps))
    return t.clone(), w.clone()
