"""The top eigenvalue and a shifted solve from one block Krylov space.

CASO (SecondOrderSaliency) needs ``lambda_max(H)`` and then the solution of
``(lam I - H) d = g`` with ``lam = lambda_max + lambda2``. Done one after the
other (Lanczos, then conjugate gradients) that is two chains of one-vector
HVPs. Both answers live in Krylov spaces of ``H``: Lanczos needs one from a
random start (so no eigenvector is missed), CG the one from ``g``. Here one
block Krylov space grows from both starts at once,

    K_m = span{ [g, r], H [g, r], ..., H^{m-1} [g, r] },

two vectors per batched pass, with full re-orthogonalisation. Because every
basis vector's product ``H q`` is kept, the projected matrix ``T = Q^T H Q``,
the Ritz pairs, their true residuals ``||H Q s - theta Q s||`` and the shifted
system's Galerkin solution ``d = Q (lam I - T)^{-1} Q^T g`` with its true
residual ``||g - lam d + H Q y||`` all come without extra HVPs. It stops when
both are converged, so it takes about ``max(Lanczos steps, CG steps)`` passes
of two vectors instead of their sum of one-vector passes. The space contains
the random-start Krylov space, so ``lambda_max`` is at least as accurate as
Lanczos from the same start, and it contains ``g``'s Krylov space, so the solve
converges at least as fast as CG. If the basis reaches its size cap first, the
solve is finished by conjugate gradients warm-started from the Galerkin
solution.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Optional, Tuple

import torch
from torch import Tensor

from captum_higher_order._numeric import HALF_DTYPES, positive_floor
from captum_higher_order._progress import inner_progress
from captum_higher_order.hessian.cg import conjugate_gradients
from captum_higher_order.hessian.lanczos import FlatOperator

__all__ = ["ShiftedSolve", "lambda_max_and_shifted_solve"]


class ShiftedSolve(NamedTuple):
    """``solution`` ``(B, F)``; ``lambda_max`` ``(B,)`` and its true Ritz
    ``eig_residual``; ``shift`` ``(B,)`` the ``lam`` used; ``residual`` ``(B,)``
    ``||g - (lam I - H) d|| / ||g||``; ``steps`` block steps; ``cg_steps``
    extra CG iterations (0 unless the basis cap was hit)."""

    solution: Tensor
    lambda_max: Tensor
    eig_residual: Tensor
    shift: Tensor
    residual: Tensor
    steps: int
    cg_steps: int


class _BlockBasis:
    """Orthonormal basis ``Q`` ``(B, n, F)`` and its products ``HQ``."""

    def __init__(self, operator: FlatOperator, seed: int) -> None:
        self.operator = operator
        batch, self.n_features, _ = operator.shape
        self.gen = torch.Generator(device="cpu").manual_seed(seed)
        self.batch, self.dtype, self.device = batch, operator.dtype, operator.device
        self.q: Optional[Tensor] = None
        self.hq: Optional[Tensor] = None

    @property
    def size(self) -> int:
        return 0 if self.q is None else self.q.shape[1]

    def _random(self, count: int) -> Tensor:
        r = torch.randn(self.batch, count, self.n_features, generator=self.gen, dtype=self.dtype)
        return r.to(self.device)

    def _orthogonalise(self, block: Tensor) -> Tensor:
        if self.q is None:
            return block
        for _ in range(2):  # "twice is enough" (Kahan)
            coeff = torch.einsum("bmf,bnf->bmn", block, self.q)
            block = block - torch.einsum("bmn,bnf->bmf", coeff, self.q)
        return block

    def add(self, block: Tensor, scale: Tensor) -> None:
        """Orthonormalise ``block`` ``(B, p, F)`` against the basis and append it;
        directions that vanish (relative to ``scale`` ``(B,)``, the size of the
        vectors that produced them) are replaced by random ones."""
        block = self._orthogonalise(block)
        eps = torch.finfo(self.dtype).eps
        # QR has no float16/bfloat16 kernels: run it in float32 for those
        # (docs/design.md, "Dtype policy").
        work = torch.float32 if self.dtype in HALF_DTYPES else self.dtype
        for _ in range(3):
            q, r = torch.linalg.qr(block.transpose(1, 2).to(work))  # (B, F, p), (B, p, p)
            q = q.to(self.dtype)
            diag = torch.diagonal(r, dim1=1, dim2=2).abs()
            tiny = diag <= positive_floor(scale).unsqueeze(1) * 1e3 * eps * block.shape[-1] ** 0.5
            if not bool(tiny.any()):
                break
            fresh = self._orthogonalise(self._random(block.shape[1]))
            fresh = fresh / fresh.norm(dim=2, keepdim=True)
            # Keep the directions that survived, replace the rest.
            block = torch.where(tiny.unsqueeze(2), fresh, q.transpose(1, 2))
            block = self._orthogonalise(block)
        q = q.transpose(1, 2)
        products = self.operator.matmat(q)
        self.q = q if self.q is None else torch.cat([self.q, q], dim=1)
        self.hq = products if self.hq is None else torch.cat([self.hq, products], dim=1)

    def next_block(self, p: int) -> Tuple[Tensor, Tensor]:
        """The newest ``p`` products and their norms: the next block's seed."""
        assert self.hq is not None
        last = self.hq[:, -p:]
        return last, last.norm(dim=2).amax(dim=1)

    def projected(self) -> Tensor:
        """``T = Q^T H Q`` ``(B, n, n)``, symmetrised."""
        assert self.q is not None and self.hq is not None
        t = torch.einsum("bmf,bnf->bmn", self.q, self.hq)
        return 0.5 * (t + t.transpose(1, 2))


def lambda_max_and_shifted_solve(
    operator: FlatOperator,
    rhs: Tensor,
    shift_of: Callable[[Tensor], Tensor],
    eig_tol: float,
    tol: float,
    max_steps: int,
    ridge: Tensor,
    seed: int = 0,
    max_basis: Optional[int] = None,
    cg_max_iter: int = 500,
) -> ShiftedSolve:
    """``lambda_max`` and ``(lam I - H) d = rhs`` with ``lam = shift_of(lambda_max)``.

    Args:
        operator (FlatOperator): The symmetric operator ``H`` per sample.
        rhs (Tensor): ``(B, F)`` right-hand sides ``g``.
        shift_of (Callable): ``lambda_max (B,) -> lam (B,)``; may raise (e.g. a
            fixed ridge that is not above ``lambda_max``).
        eig_tol (float): ``lambda_max`` is converged when its Ritz residual is
            ``<= eig_tol * (|lambda_max| + ridge)``.
        tol (float): The solve is converged at relative residual ``<= tol``.
        max_steps (int): Block steps (two vectors each) at most.
        ridge (Tensor): ``(B,)`` the margin ``lam - lambda_max`` scale used in
            the eigenvalue criterion (``lambda2``).
        seed (int, optional): Seed of the random start (drawn on the CPU).
        max_basis (int, optional): Basis size cap (memory); CG finishes the
            solve if it is reached. Default: ``min(F, 2 * max_steps)``
        cg_max_iter (int, optional): CG iterations after the cap. Default: 500
    """
    batch, n_features, _ = operator.shape
    cap = min(n_features, 2 * max_steps if max_basis is None else max_basis)
    basis = _BlockBasis(operator, seed)
    g_norm = positive_floor(rhs.norm(dim=1))
    start = torch.stack([rhs, basis._random(1)[:, 0]], dim=1)
    with inner_progress(max_steps, "block Krylov", "pass") as bar:
        basis.add(start[:, : min(2, cap)], g_norm)
        bar.update()
        steps = 1
        while True:
            lam_max, eig_res, lam, d, res = _evaluate(basis, rhs, shift_of, g_norm)
            eig_ok = eig_res <= eig_tol * (lam_max.abs() + ridge)
            done = bool((eig_ok & (res <= tol)).all())
            if done or basis.size >= cap or steps >= max_steps:
                break
            seed_block, scale = basis.next_block(2)
            basis.add(seed_block[:, : min(2, cap - basis.size)], scale)
            bar.update()
            steps += 1
    cg_steps = 0
    if not bool((res <= tol).all()):
        # The basis cap came first: finish by CG from the Galerkin solution.
        def apply_a(v: Tensor) -> Tensor:
            return lam.unsqueeze(1) * v - operator.matvec(v)

        finished = conjugate_gradients(apply_a, rhs, tol, cg_max_iter, x0=d)
        d, res, cg_steps = finished.solution, finished.residual, int(finished.iterations.max())
    return ShiftedSolve(d, lam_max, eig_res, lam, res, steps, cg_steps)


def _evaluate(
    basis: _BlockBasis, rhs: Tensor, shift_of: Callable[[Tensor], Tensor], g_norm: Tensor
) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Ritz ``lambda_max`` with its true residual, and the Galerkin solve with its."""
    assert basis.q is not None and basis.hq is not None
    t = basis.projected()
    # The projected problem is tiny: solve it in float64 whatever the dtype.
    theta, s = torch.linalg.eigh(t.double())
    lam_max = theta[:, -1].to(rhs.dtype)
    top = s[:, :, -1].to(rhs.dtype)
    ritz_res = torch.einsum("bnf,bn->bf", basis.hq, top) - lam_max.unsqueeze(1) * torch.einsum(
        "bnf,bn->bf", basis.q, top)
    eig_res = ritz_res.norm(dim=1)
    lam = shift_of(lam_max)
    coords = torch.einsum("bnf,bf->bn", basis.q, rhs)
    eye = torch.eye(t.shape[1], dtype=torch.float64, device=t.device)
    system = lam.double().view(-1, 1, 1) * eye - t.double()
    y = torch.linalg.solve(system, coords.double().unsqueeze(2)).squeeze(2).to(rhs.dtype)
    d = torch.einsum("bnf,bn->bf", basis.q, y)
    residual = rhs - lam.unsqueeze(1) * d + torch.einsum("bnf,bn->bf", basis.hq, y)
    return lam_max, eig_res, lam, d, residual.norm(dim=1) / g_norm
