"""Batched Lanczos on a Hessian operator: extreme eigenpairs per sample.

Written against the flat operator interface alone (``matvec``/``matmat`` on
``(B, F)``/``(B, m, F)``, ``shape``, ``dtype``, ``device``), so it serves the
engine's :class:`~captum_higher_order.hessian.engine.HessianOperator` and any
other symmetric operator (tests use dense matrices).
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Callable, NamedTuple, Optional, Protocol, Tuple

import torch
from torch import Tensor

from captum_higher_order._inputs import TargetType, TensorOrTuple
from captum_higher_order._numeric import positive_floor
from captum_higher_order._progress import inner_progress
from captum_higher_order.hessian.budget import BudgetLike
from captum_higher_order.hessian.engine import (
    Engine,
    HessianOperator,
    make_problem,
    warn_if_zero_curvature,
)

__all__ = ["FlatOperator", "EigenResult", "LanczosResult", "lanczos", "top_eigenpairs"]


class FlatOperator(Protocol):
    """What the solvers need of an operator: per-sample products on flat vectors."""

    @property
    def shape(self) -> Tuple[int, int, int]: ...  # (B, F, F)

    @property
    def dtype(self) -> torch.dtype: ...

    @property
    def device(self) -> torch.device: ...

    def matvec(self, vector: Tensor) -> Tensor: ...  # (B, F) -> (B, F)

    def matmat(self, vectors: Tensor) -> Tensor: ...  # (B, m, F) -> (B, m, F)


class EigenResult(NamedTuple):
    """``eigenvalues`` ``(B, k)`` in descending order (by value, or by magnitude
    for ``which="LM"``); ``eigenvectors`` unit-norm, structured like the inputs
    with ``k`` in dim 1; ``residuals`` ``(B, k)`` are ``||H v - lambda v||``."""

    eigenvalues: Tensor
    eigenvectors: TensorOrTuple
    residuals: Tensor


class LanczosResult(NamedTuple):
    """Flat Ritz pairs: ``values`` ``(B, k)``, ``vectors`` ``(B, k, F)``,
    ``residuals`` ``(B, k)``, and the Lanczos ``steps`` taken."""

    values: Tensor
    vectors: Tensor
    residuals: Tensor
    steps: int


def top_eigenpairs(
    forward_func: Callable[..., Tensor],
    inputs: TensorOrTuple,
    k: int = 1,
    target: TargetType = None,
    additional_forward_args: Any = None,
    objective: str = "output",
    which: str = "LA",
    mode: str = "auto",
    tol: float = 1e-6,
    max_iter: Optional[int] = None,
    seed: int = 0,
    memory_budget: BudgetLike = None,
    precision: Optional[str] = None,
) -> EigenResult:
    r"""Top-``k`` Hessian eigenpairs per sample by batched Lanczos.

    Lanczos with full re-orthogonalisation; every step is one batched HVP for
    all samples. When a sample's Krylov space becomes invariant (common: loss
    Hessians of ReLU classifiers have rank below the number of classes) it
    restarts from a fresh random direction, so eigenvalues outside that space
    are still found. Stops when every wanted Ritz pair has residual
    ``<= tol * max |theta|`` or after ``max_iter`` steps (then warns).

    Args:
        forward_func (Callable): The model or function.
        inputs (Tensor or tuple[Tensor, ...]): Inputs, batch in dim 0.
        k (int, optional): Eigenpairs per sample. Default: 1
        target, additional_forward_args, objective, mode: As in
            :func:`~captum_higher_order.hessian.hvp`.
        which (str, optional): ``"LA"`` largest algebraic (``lambda_max`` first)
            or ``"LM"`` largest magnitude. Default: ``"LA"``
        tol (float, optional): Relative residual tolerance. Default: 1e-6
        max_iter (int, optional): Lanczos steps. Default: ``min(F, max(60, 6k))``
        seed (int, optional): Seed of the starting vectors (drawn on the CPU, so
            CPU and CUDA start alike). Default: 0
        memory_budget, precision: As in :func:`~captum_higher_order.hessian.hvp`.

    Returns:
        EigenResult: ``(eigenvalues, eigenvectors, residuals)``.

    Examples::

        >>> import torch
        >>> from captum_higher_order.hessian import top_eigenpairs
        >>> model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(),
        ...                             torch.nn.Linear(16, 4)).eval()
        >>> res = top_eigenpairs(model, torch.randn(3, 6), k=2,
        ...                      objective="cross_entropy")
        >>> res.eigenvalues.shape
        torch.Size([3, 2])
    """
    if which not in ("LA", "LM"):
        raise ValueError("`which` must be 'LA' (largest value) or 'LM' (largest magnitude).")
    problem = make_problem(forward_func, inputs, target, additional_forward_args, objective, mode)
    fmt = problem.fmt
    num_features = fmt.num_features
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= num_features:
        raise ValueError(f"k must be between 1 and the number of features ({num_features}).")
    steps = max_iter if max_iter is not None else min(num_features, max(60, 6 * k))
    steps = max(k, min(steps, num_features))
    operator = HessianOperator(
        Engine(problem, mode, memory_budget=memory_budget, precision=precision)
    )
    result = lanczos(operator, k, which, tol, steps, seed)
    top = positive_floor(result.values.abs().amax(dim=1, keepdim=True))
    if bool((result.residuals > tol * top * 10).any()):
        warnings.warn(
            f"Lanczos did not reach tol={tol} in {steps} steps "
            f"(largest residual {float(result.residuals.max()):.2e}); raise max_iter.",
            stacklevel=2,
        )
    warn_if_zero_curvature(result.values, objective)
    vec_struct = fmt.format_like_inputs(fmt.unflatten(result.vectors))
    return EigenResult(result.values, vec_struct, result.residuals)


def _select(theta: Tensor, k: int, which: str) -> Tensor:
    key = theta if which == "LA" else theta.abs()
    return key.argsort(dim=1, descending=True)[:, :k]


def _tridiagonal_eigh(alpha: Tensor, beta: Tensor) -> Tuple[Tensor, Tensor]:
    # The tridiagonal matrix is tiny: solve it in float64 whatever the dtype
    # (eigh has no float16/bfloat16 kernels; docs/design.md, "Dtype policy").
    t = torch.diag_embed(alpha.double())
    if beta.shape[1]:
        b = beta.double()
        t = t + torch.diag_embed(b, offset=1) + torch.diag_embed(b, offset=-1)
    theta, s = torch.linalg.eigh(t)
    return theta.to(alpha.dtype), s.to(alpha.dtype)


class _Krylov:
    """The growing orthonormal basis, tridiagonal coefficients and restarts."""

    def __init__(self, operator: FlatOperator, steps: int, seed: int,
                 start: Optional[Tensor]) -> None:
        batch, n, _ = operator.shape
        self.batch, self.n = batch, n
        self.dtype, self.device = operator.dtype, operator.device
        self.gen = torch.Generator(device="cpu").manual_seed(seed)
        self.basis = torch.zeros(batch, steps + 1, n, dtype=self.dtype, device=self.device)
        self.alpha = torch.zeros(batch, steps, dtype=self.dtype, device=self.device)
        self.beta = torch.zeros(batch, steps, dtype=self.dtype, device=self.device)
        first = self.random_unit()
        if start is not None:  # a given start, random where it is zero
            norm = start.norm(dim=1, keepdim=True)
            first = torch.where(norm > 0, start / positive_floor(norm), first)
        self.basis[:, 0] = first

    def random_unit(self) -> Tensor:
        r = torch.randn(self.batch, self.n, generator=self.gen, dtype=self.dtype)
        r = r.to(self.device)
        return r / r.norm(dim=1, keepdim=True)

    def orthogonalise(self, w: Tensor, upto: int) -> Tensor:
        # Full re-orthogonalisation, twice (Kahan's "twice is enough").
        for _ in range(2):
            coeff = torch.einsum("bjn,bn->bj", self.basis[:, :upto], w)
            w = w - torch.einsum("bj,bjn->bn", coeff, self.basis[:, :upto])
        return w

    def extend(self, j: int, w: Tensor) -> None:
        """Normalise the new direction ``w`` (orthogonal to ``q_0..q_j``) into
        ``q_{j+1}``; restart where the Krylov space became invariant."""
        norm = w.norm(dim=1)
        # "Invariant" relative to the operator's size seen so far (|alpha|,
        # |beta| estimate ||H||), so tiny Hessians are not mistaken for zero.
        size = torch.maximum(self.alpha[:, : j + 1].abs().amax(dim=1),
                             self.beta[:, : j + 1].amax(dim=1))
        eps = torch.finfo(self.dtype).eps
        invariant = norm <= positive_floor(size) * 1e3 * eps * math.sqrt(self.n)
        if bool(invariant.any()) and j + 1 < self.n:
            fresh = self.orthogonalise(self.random_unit(), j + 1)
            fresh = fresh / fresh.norm(dim=1, keepdim=True)
            w = torch.where(invariant.unsqueeze(1), fresh,
                            w / positive_floor(norm).unsqueeze(1))
            norm = torch.where(invariant, torch.zeros_like(norm), norm)
        else:
            w = w / positive_floor(norm).unsqueeze(1)
        self.beta[:, j] = norm
        self.basis[:, j + 1] = w

    def ritz(self, m: int, k: int, which: str) -> Tuple[Tensor, Tensor, Tensor]:
        """Wanted Ritz values ``(B, k)``, their coordinates ``(B, m, k)`` and
        residual estimates ``|beta_m s_m|``."""
        theta, s = _tridiagonal_eigh(self.alpha[:, :m], self.beta[:, : m - 1])
        idx = _select(theta, k, which)
        coords = s.gather(2, idx.unsqueeze(1).expand(-1, m, -1))
        estimate = (self.beta[:, m - 1].unsqueeze(1) * coords[:, -1, :]).abs()
        return theta.gather(1, idx), coords, estimate


def lanczos(
    operator: FlatOperator,
    k: int,
    which: str = "LA",
    tol: float = 1e-6,
    steps: int = 60,
    seed: int = 0,
    start: Optional[Tensor] = None,
) -> LanczosResult:
    """Top-``k`` Ritz pairs of ``operator`` per sample, ``steps`` at most.

    Convergence is checked every 5 steps (each check is a small ``eigh``): every
    wanted pair's residual estimate must be ``<= tol * max |theta|``. The
    residuals returned are true ones, ``||H v - theta v||``, from one batched
    ``matmat`` of the ``k`` Ritz vectors. ``start`` ``(B, F)`` replaces the
    random first vector (e.g. the gradient, whose Krylov space also solves
    shifted systems ``(lam I - H) d = g``)."""
    batch, n, _ = operator.shape
    steps = max(1, min(steps, n))
    krylov = _Krylov(operator, steps, seed, start)
    used = steps
    with inner_progress(steps, "Lanczos", "HVP") as bar:
        for j in range(steps):
            bar.update()
            q = krylov.basis[:, j]
            w = operator.matvec(q)
            krylov.alpha[:, j] = (w * q).sum(dim=1)
            w = krylov.orthogonalise(w, j + 1)
            krylov.extend(j, w)
            m = j + 1
            if m >= k and (m == steps or m % 5 == 0 or m == n):
                values, _, estimate = krylov.ritz(m, k, which)
                top = positive_floor(values.abs().amax(dim=1, keepdim=True))
                if bool((estimate <= tol * top).all()) or m == n:
                    used = m
                    break
    values, coords, _ = krylov.ritz(used, k, which)
    vectors = torch.einsum("bmn,bmk->bkn", krylov.basis[:, :used], coords)
    vectors = vectors / vectors.norm(dim=2, keepdim=True)
    residuals = (operator.matmat(vectors) - values.unsqueeze(2) * vectors).norm(dim=2)
    return LanczosResult(values, vectors, residuals, used)
