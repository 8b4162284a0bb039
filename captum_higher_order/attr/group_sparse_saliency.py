"""GroupSparseSaliency: CASO with an L1 (or group-lasso) penalty, Singla et al. (2019).

Singla, Wallace, Feng and Feizi, "Understanding Impacts of High-Order Loss
Approximations and Features in Deep Learning Interpretation", ICML 2019.

The map is the sparse perturbation that maximises the second-order model of the
loss ``l`` (cross-entropy of the target class), ``g = grad_x l``,
``H = hess_x l``:

    d* = argmin_d  -g^T d - 1/2 d^T H d + lambda1 ||d||_1 + lambda2/2 ||d||^2.

Writing ``A = lambda2 I - H`` (positive definite when ``lambda2 > lambda_max(H)``),
the smooth part ``f(d) = -g^T d + 1/2 d^T A d`` has gradient ``A d - g``: one
Hessian-vector product. We minimise ``f + lambda1 ||.||_1`` by FISTA (Beck and
Teboulle 2009) with backtracking on the step and the gradient restart of
O'Donoghue and Candes (2015); the prox of the L1 norm is soft thresholding, and
with a ``feature_mask`` the group-lasso prox (block soft thresholding), so whole
groups enter or leave the map together.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Callable, NamedTuple, Optional, Sequence, Tuple, Union

import torch
from captum.attr import GradientAttribution
from torch import Tensor

from captum_higher_order._captum import log_usage
from captum_higher_order._inputs import (
    FeatureGroups,
    TargetType,
    TensorOrTuple,
    format_feature_mask,
)
from captum_higher_order._numeric import HALF_DTYPES, positive_floor
from captum_higher_order._progress import inner_progress
from captum_higher_order.attr.second_order_saliency import (
    caso_problem,
    check_caso_args,
    check_iteration_caps,
    convex_ridge,
    default_tols,
)
from captum_higher_order.hessian import check_mode

__all__ = ["GroupSparseSaliency", "GroupSparseInfo", "fista", "proximal_steps"]

Operator = Callable[[Tensor], Tensor]


class GroupSparseInfo(NamedTuple):
    """What the last :meth:`GroupSparseSaliency.attribute` call chose and used.

    Attributes:
        lambda1 (Tensor): ``(B,)`` the L1 (group-lasso) weight per sample: the
            one given, or the one the sparsity search chose.
        sparsity (Tensor): ``(B,)`` fraction of exactly-zero entries of the map.
        lambda_max (Tensor): ``(B,)`` largest Hessian eigenvalue (zeros for
            ``second_order=False``).
        lambda2_eff (Tensor): ``(B,)`` the ridge actually used.
        residual (Tensor): ``(B,)`` relative optimality residual of the answer
            (see :func:`fista`).
        iterations (Tensor): ``(B,)`` FISTA iterations of the final solve.
        hvps (int): Batched Hessian-vector-product passes in total (Lanczos,
            every FISTA iteration and backtracking step, every search step).
        in_range (Tensor): ``(B,)`` bool, whether ``sparsity`` lies in
            ``sparsity_range`` (always True when ``lambda1`` was given).
    """

    lambda1: Tensor
    sparsity: Tensor
    lambda_max: Tensor
    lambda2_eff: Tensor
    residual: Tensor
    iterations: Tensor
    hvps: int
    in_range: Tensor


# --------------------------------------------------------------------------- proximal maps


class Prox:
    """``prox_{t * lambda1 * R}`` for ``R = ||.||_1`` or the weighted group lasso
    ``R(d) = sum_a sqrt(n_a) ||d_a||_2`` over the groups ``a`` of a feature mask
    (``n_a`` features in group ``a``; the usual weights of Yuan and Lin 2006)."""

    def __init__(self, groups: Optional[FeatureGroups], batch: int, like: Tensor) -> None:
        self.groups = groups
        if groups is not None:
            ones = torch.ones(batch, like.shape[1], dtype=like.dtype, device=like.device)
            self.weights = groups.project(ones).sqrt()  # (B, G)
            self.index = groups.index.to(like.device).expand(batch, -1)

    def __call__(self, v: Tensor, threshold: Tensor) -> Tensor:
        """``threshold`` ``(B,)`` is ``t * lambda1``."""
        thr = threshold.unsqueeze(1)
        if self.groups is None:  # soft thresholding
            return v.sign() * (v.abs() - thr).clamp_min(0.0)
        norms = self.groups.project(v * v).sqrt()  # (B, G)
        keep = (1.0 - thr * self.weights / positive_floor(norms)).clamp_min(0.0)
        keep = torch.where(norms > 0, keep, torch.zeros_like(keep))
        return v * keep.gather(1, self.index)

    def penalty(self, d: Tensor) -> Tensor:
        """``R(d)`` per sample ``(B,)``."""
        if self.groups is None:
            return d.abs().sum(dim=1)
        return (self.weights * self.groups.project(d * d).sqrt()).sum(dim=1)

    def zero_threshold(self, g: Tensor) -> Tensor:
        """Per-group scores ``s`` with ``d* = 0`` for the group iff
        ``lambda1 >= s`` at ``d = 0`` (``|g_i|``, or ``||g_a|| / sqrt(n_a)``)."""
        if self.groups is None:
            return g.abs()
        norms = self.groups.project(g * g).sqrt()
        return torch.where(self.weights > 0, norms / positive_floor(self.weights),
                           torch.zeros_like(norms))


# --------------------------------------------------------------------------- solvers


def _dot(a: Tensor, b: Tensor) -> Tensor:
    return (a * b).sum(dim=1)


def fista(
    apply_a: Operator,
    g: Tensor,
    lambda1: Tensor,
    prox: Prox,
    lipschitz: Tensor,
    tol: float = 1e-6,
    max_iter: int = 500,
    x0: Optional[Tensor] = None,
) -> Tuple[Tensor, Tensor, Tensor, int]:
    r"""Minimise ``-g^T d + 1/2 d^T A d + lambda1 R(d)`` per sample by FISTA.

    FISTA with backtracking (Beck and Teboulle 2009, Alg. 4.3 with the
    quadratic's sufficient-decrease test ``delta^T A delta <= L ||delta||^2``)
    and gradient-based adaptive restart (O'Donoghue and Candes 2015), which
    keeps FISTA linearly convergent on strongly convex problems. Every iteration
    costs one batched product with ``A`` (plus one per backtracking step);
    ``A y`` for the extrapolated point comes from linearity.

    Stopping rule: the norm of the proximal-gradient mapping
    ``G_L(x) = L (x - prox_{lambda1 R / L}(x - (A x - g) / L))`` — zero exactly at
    the minimiser — is at most ``tol * ||g||`` per sample; converged samples are
    frozen.

    Args:
        apply_a (Callable): ``(B, F) -> (B, F)``, ``v -> A v``.
        g (Tensor): ``(B, F)`` linear term.
        lambda1 (Tensor): ``(B,)`` penalty weights ``>= 0``.
        prox (Prox): The proximal map of ``R``.
        lipschitz (Tensor): ``(B,)`` initial step constants ``L`` (doubled by
            backtracking when too small).
        tol (float, optional): Relative tolerance of the stopping rule.
            Default: 1e-6
        max_iter (int, optional): Iteration cap. Default: 500
        x0 (Tensor, optional): Warm start ``(B, F)``. Default: zeros

    Returns:
        tuple: ``(x, residual (B,), iterations (B,), products)`` where
        ``residual = ||G_L(x)|| / ||g||`` and ``products`` counts calls of
        ``apply_a``.
    """
    g_norm = positive_floor(g.norm(dim=1))
    lam_l = lipschitz.clone()
    products = 0
    x = torch.zeros_like(g) if x0 is None else x0.clone()
    if x0 is None or not bool(x0.any()):
        ax = torch.zeros_like(g)
    else:
        ax = apply_a(x)
        products += 1

    def residual_of(x: Tensor, ax: Tensor) -> Tensor:
        step = prox(x - (ax - g) / lam_l.unsqueeze(1), lambda1 / lam_l)
        return lam_l * (x - step).norm(dim=1) / g_norm

    res = residual_of(x, ax)
    active = res > tol
    y, ay = x.clone(), ax.clone()
    t = torch.ones_like(lam_l)
    iterations = torch.zeros(g.shape[0], dtype=torch.long)
    with inner_progress(max_iter, "FISTA", "it") as bar:
        for _ in range(max_iter):
            if not bool(active.any()):
                break
            bar.update()
            grad_y = ay - g
            x_new, ax_new = x.clone(), ax.clone()
            pending = active.clone()
            while bool(pending.any()):
                cand = prox(y - grad_y / lam_l.unsqueeze(1), lambda1 / lam_l)
                x_new = torch.where(pending.unsqueeze(1), cand, x_new)
                ax_new = torch.where(pending.unsqueeze(1), apply_a(x_new), ax_new)
                products += 1
                delta = x_new - y
                curvature = _dot(delta, ax_new - ay)
                # Relative slack: the two sides agree to rounding when L is tight.
                ok = (curvature <= lam_l * _dot(delta, delta) * (1 + 1e-10)
                      + torch.finfo(curvature.dtype).tiny)
                grow = pending & ~ok
                lam_l = torch.where(grow, 2.0 * lam_l, lam_l)
                pending = grow
            # Adaptive restart when the momentum points uphill.
            restart = _dot(y - x_new, x_new - x) > 0
            t = torch.where(restart, torch.ones_like(t), t)
            t_next = 0.5 * (1.0 + torch.sqrt(1.0 + 4.0 * t * t))
            beta = ((t - 1.0) / t_next).unsqueeze(1)
            y_new = x_new + beta * (x_new - x)
            ay_new = ax_new + beta * (ax_new - ax)
            keep = active.unsqueeze(1)
            y = torch.where(keep, y_new, y)
            ay = torch.where(keep, ay_new, ay)
            x = torch.where(keep, x_new, x)
            ax = torch.where(keep, ax_new, ax)
            t = torch.where(active, t_next, t)
            iterations += active.cpu().long()
            res = torch.where(active, residual_of(x, ax), res)
            active = active & (res > tol)
    return x, res, iterations, products


def proximal_steps(
    apply_a: Operator,
    g: Tensor,
    lambda1: Tensor,
    prox: Prox,
    lipschitz: Tensor,
    steps: int = 10,
) -> Tensor:
    """A fixed number of plain proximal-gradient (ISTA) steps from zero with
    step ``1 / lipschitz``: the solver of the authors' public code (10 steps),
    kept as the baseline of the benchmarks and tests."""
    x = torch.zeros_like(g)
    inv = (1.0 / lipschitz).unsqueeze(1)
    for _ in range(steps):
        x = prox(x - inv * (apply_a(x) - g), lambda1 * inv.squeeze(1))
    return x


def caso_objective(apply_a: Operator, g: Tensor, lambda1: Tensor, prox: Prox,
                   d: Tensor) -> Tensor:
    """``-g^T d + 1/2 d^T A d + lambda1 R(d)`` per sample ``(B,)``."""
    return -_dot(g, d) + 0.5 * _dot(d, apply_a(d)) + lambda1 * prox.penalty(d)


# --------------------------------------------------------------------------- lambda1 search


def _sparsity(d: Tensor) -> Tensor:
    return (d == 0).to(d.dtype).mean(dim=1)


def _search_lambda1(
    solve_at: Callable[[Tensor, Optional[Tensor]], Tuple[Tensor, Tensor, Tensor]],
    scores: Tensor,
    sparsity_range: Tuple[float, float],
    search_steps: int,
) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Per-sample search over ``log lambda1`` for a sparsity in the range.

    Starts at the ``mid``-quantile of the zero thresholds ``scores`` (exact for
    the first-order problem), expands by factors of 4 until the target is
    bracketed, then bisects in log space. A map with no non-zero entry never
    counts as in range. Returns ``(d, lambda1, sparsity, in_range, residual,
    iterations)`` of the in-range (else the closest) solution per sample.
    """
    lo, hi = sparsity_range
    mid = 0.5 * (lo + hi)
    # quantile has no float16/bfloat16 kernels (docs/design.md, "Dtype policy").
    work = scores.float() if scores.dtype in HALF_DTYPES else scores
    start = torch.quantile(work, min(max(mid, 0.0), 1.0), dim=1).to(scores.dtype)
    top = scores.amax(dim=1)
    start = torch.where(start > 0, start, 0.5 * top)
    trivial = top <= 0  # g = 0 (or zero in every group): d = 0 for every lambda1
    log_lam = torch.log(positive_floor(start))
    low = torch.full_like(log_lam, -math.inf)  # largest log lambda1 known too dense
    high = torch.full_like(log_lam, math.inf)  # smallest known too sparse
    step = math.log(4.0)
    best_gap = torch.full_like(log_lam, math.inf)
    best: Optional[Tuple[Tensor, ...]] = None
    done = trivial.clone()
    d_prev: Optional[Tensor] = None
    for _ in range(max(1, search_steps)):
        lam = torch.where(trivial, torch.zeros_like(log_lam), log_lam.exp())
        d, res, its = solve_at(lam, d_prev)
        d_prev = d
        s = _sparsity(d)
        nonzero = (d != 0).any(dim=1)
        ok = (s >= lo) & (s <= hi) & nonzero
        gap = torch.where(ok, torch.zeros_like(s), torch.minimum((s - lo).abs(), (s - hi).abs()))
        gap = torch.where(nonzero | trivial, gap, torch.full_like(gap, 2.0))
        better = ~done & (gap < best_gap) | (trivial & (best_gap == math.inf))
        current = (d, lam, s, ok | trivial, res, its)
        if best is None:
            best = current
        else:
            best = tuple(
                torch.where(better.view(-1, *([1] * (c.dim() - 1))).to(c.device), c, b)
                for c, b in zip(current, best)
            )
        best_gap = torch.where(better, gap, best_gap)
        done = done | ok
        if bool(done.all()):
            break
        too_sparse = ~ok & ((s > hi) | ~nonzero)
        too_dense = ~ok & ~too_sparse
        high = torch.where(~done & too_sparse, log_lam, high)
        low = torch.where(~done & too_dense, log_lam, low)
        bracketed = torch.isfinite(low) & torch.isfinite(high)
        proposal = torch.where(
            bracketed, 0.5 * (low + high),
            torch.where(too_sparse, log_lam - step, log_lam + step),
        )
        log_lam = torch.where(done, log_lam, proposal)
    assert best is not None
    d, lam, s, in_range, res, its = best
    if not bool(in_range.all()):
        bad = (~in_range).nonzero().flatten().tolist()
        warnings.warn(
            f"No lambda1 gave a sparsity in {sparsity_range} for sample(s) {bad} within "
            f"{search_steps} search steps (reached {s[~in_range].tolist()}); returning the "
            "closest. Widen sparsity_range, raise search_steps, or pass lambda1.",
            stacklevel=3,
        )
    return d, lam, s, in_range, res, its.cpu()


# --------------------------------------------------------------------------- the method


class GroupSparseSaliency(GradientAttribution):
    r"""Sparse curvature-aware saliency (CASO), Singla et al. 2019.

    For each sample, with ``l`` the cross-entropy of the target class (the class
    predicted at the input when ``target`` is None), ``g = grad_x l`` and
    ``H = hess_x l``, returns

    .. math::

        d^* = \arg\min_d\; -g^\top d - \tfrac12 d^\top H d
              + \lambda_1 R(d) + \tfrac{\lambda_2}{2}\lVert d\rVert^2 ,

    with ``R = ||.||_1``, or with a ``feature_mask`` the group lasso
    ``R(d) = sum_a sqrt(n_a) ||d_a||_2`` (``n_a`` features in group ``a``), so
    superpixels (or channels, or any groups) are selected jointly: every group
    is either entirely zero or has a non-zero norm. Solved by FISTA with
    backtracking and adaptive restart on batched Hessian-vector products (see
    :func:`fista` for the stopping rule). ``lambda2`` is read as in
    :class:`~captum_higher_order.attr.second_order_saliency.SecondOrderSaliency`
    (``"shift"``: added to ``lambda_max(H)``). ``second_order=False`` drops the
    Hessian term, giving the closed form ``prox(g, lambda1) / lambda2`` (CAFO).

    ``lambda1=None`` (default) applies the paper's rule: per sample, ``lambda1``
    is searched on a log scale until the fraction of exactly-zero entries of the
    map lies in ``sparsity_range`` (and the map is not all zero). After each
    call :attr:`last_info` holds a :class:`GroupSparseInfo` with the chosen
    ``lambda1``, the sparsity reached, the residual and the HVP count.

    Args:
        forward_func (Callable): The model or function, returning ``(B, C)``
            class scores. Batch-norm must be in eval mode.
        mode (str, optional): HVP mode of the engine (``"rev_rev"``,
            ``"fwd_rev"``, ``"auto"``, ``"ggn"``); as in SecondOrderSaliency, the
            default reuses one first-order graph for every HVP.
            Default: ``"rev_rev"``
    """

    def __init__(self, forward_func: Callable[..., Tensor], mode: str = "rev_rev") -> None:
        GradientAttribution.__init__(self, forward_func)
        check_mode(mode)
        self.mode = mode
        self.last_info: Optional[GroupSparseInfo] = None

    @log_usage()
    def attribute(
        self,
        inputs: TensorOrTuple,
        target: TargetType = None,
        additional_forward_args: Any = None,
        feature_mask: Union[None, Tensor, Tuple[Tensor, ...]] = None,
        objective: str = "cross_entropy",
        lambda1: Union[None, float, Tensor] = None,
        lambda2: float = 4.0,
        lambda2_mode: str = "shift",
        second_order: bool = True,
        sparsity_range: Sequence[float] = (0.75, 1.0),
        tol: Optional[float] = None,
        max_iter: int = 500,
        search_steps: int = 30,
        eig_tol: Optional[float] = None,
        eig_max_iter: Optional[int] = None,
        return_convergence_delta: bool = False,
    ) -> Union[TensorOrTuple, Tuple[TensorOrTuple, Tensor]]:
        r"""Sparse CASO map per sample.

        Args:
            inputs (Tensor or tuple[Tensor, ...]): Inputs with the batch in dim 0.
            target (int, tuple, Tensor or list, optional): Captum target: the
                class whose loss is explained; None uses the predicted class.
                Default: None
            additional_forward_args (Any, optional): Passed to the model after
                the inputs, not differentiated. Default: None
            feature_mask (Tensor or tuple[Tensor, ...], optional): Captum-style
                integer group ids (broadcastable to each input, first dim 1 or B,
                ids shared across the tuple). Switches the L1 penalty to the
                group lasso. Default: None
            objective (str, optional): ``"cross_entropy"`` (the paper's loss),
                ``"log_softmax"``, ``"softmax"`` or ``"output"``.
                Default: ``"cross_entropy"``
            lambda1 (float or Tensor, optional): Sparsity weight ``>= 0``, a float
                or a ``(B,)`` tensor; None searches it per sample (see
                ``sparsity_range``). Default: None
            lambda2 (float, optional): Ridge weight ``> 0``. Default: 4.0
            lambda2_mode (str, optional): ``"shift"`` or ``"absolute"``, as in
                SecondOrderSaliency. Default: ``"shift"``
            second_order (bool, optional): False drops the Hessian term (CAFO,
                closed form, no HVPs). Default: True
            sparsity_range (tuple[float, float], optional): ``(lo, hi)`` with
                ``0 <= lo <= hi <= 1``: the wanted fraction of exact zeros when
                ``lambda1`` is None (inclusive; an all-zero map never counts).
                Default: ``(0.75, 1.0)``
            tol (float, optional): FISTA stops when the proximal-gradient mapping
                has norm ``<= tol * ||g||`` (see :func:`fista`). Default: 1e-8
                for float64 inputs, 1e-4 for float32
            max_iter (int, optional): FISTA iteration cap per solve. Default: 500
            search_steps (int, optional): Solves allowed to the lambda1 search.
                Default: 30
            eig_tol (float, optional): Lanczos tolerance for ``lambda_max``.
                Default: 1e-6 (float64), 1e-3 (float32)
            eig_max_iter (int, optional): Lanczos steps. Default: ``min(F, 60)``
            return_convergence_delta (bool, optional): Also return the relative
                optimality residual per sample ``(B,)``. Default: False

        Returns:
            Tensor or tuple[Tensor, ...], or (attributions, delta): the map with
            the structure and shapes of ``inputs``; with
            ``return_convergence_delta`` also the ``(B,)`` residuals.

        Examples::

            >>> # Singla et al. (2019), "Understanding Impacts of High-Order Loss
            >>> # Approximations and Features in Deep Learning Interpretation".
            >>> import torch
            >>> from captum_higher_order.attr.group_sparse_saliency import (
            ...     GroupSparseSaliency)
            >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32),
            ...                             torch.nn.ReLU(), torch.nn.Linear(32, 10)).eval()
            >>> x = torch.randn(2, 1, 8, 8)
            >>> explainer = GroupSparseSaliency(model)
            >>> d = explainer.attribute(x)               # lambda1 searched per sample
            >>> bool(((d == 0).flatten(1).float().mean(1) >= 0.75).all())
            True
            >>> explainer.last_info.lambda1.shape
            torch.Size([2])
            >>> mask = torch.arange(64).view(1, 1, 8, 8) // 4   # 16 groups of 4 pixels
            >>> d = explainer.attribute(x, feature_mask=mask, lambda1=0.01)
        """
        check_caso_args(lambda2, lambda2_mode, objective, self.mode)
        lo, hi = _check_sparsity_range(sparsity_range)
        check_iteration_caps(optional=False, max_iter=max_iter, search_steps=search_steps)
        check_iteration_caps(eig_max_iter=eig_max_iter)
        problem, g, hessian_op = caso_problem(
            self.forward_func, inputs, target, additional_forward_args, objective,
            self.mode, second_order,
        )
        fmt = problem.fmt
        batch = fmt.batch_size
        tol, eig_tol = default_tols(fmt.dtype, tol, eig_tol)
        lam1 = _format_lambda1(lambda1, batch, g)
        groups = format_feature_mask(feature_mask, fmt)
        prox = Prox(groups, batch, g)

        if second_order:
            operator = hessian_op
            lambda_max, lambda2_eff = convex_ridge(
                problem, operator, lambda2, lambda2_mode, eig_tol, eig_max_iter
            )

            def apply_a(v: Tensor) -> Tensor:
                return lambda2_eff.unsqueeze(1) * v - operator.matvec(v)

            def solve_at(lam: Tensor, x0: Optional[Tensor]) -> Tuple[Tensor, Tensor, Tensor]:
                # For PSD H (piecewise-linear nets) lambda2_eff is exactly the
                # Lipschitz constant of grad f; backtracking covers the rest.
                d, res, its, _ = fista(apply_a, g, lam, prox, lambda2_eff.clone(), tol,
                                       max_iter, x0)
                return d, res, its
        else:
            lambda_max = torch.zeros(batch, dtype=g.dtype, device=g.device)
            lambda2_eff = torch.full_like(lambda_max, float(lambda2))
            operator = None

            def solve_at(lam: Tensor, x0: Optional[Tensor]) -> Tuple[Tensor, Tensor, Tensor]:
                d = prox(g, lam) / lambda2
                zeros = torch.zeros_like(lam)
                return d, zeros, torch.zeros(batch, dtype=torch.long)

        if lam1 is None:
            d, lam1, sparsity, in_range, res, its = _search_lambda1(
                solve_at, prox.zero_threshold(g), (lo, hi), search_steps
            )
        else:
            d, res, its = solve_at(lam1, None)
            sparsity = _sparsity(d)
            in_range = torch.ones(batch, dtype=torch.bool, device=g.device)
        if second_order and bool((res > 10 * tol).any()):
            warnings.warn(
                f"FISTA stopped at max_iter={max_iter} with relative residual "
                f"{float(res.max()):.2e} > tol={tol} for sample(s) "
                f"{(res > 10 * tol).nonzero().flatten().tolist()}; raise max_iter (or "
                "lambda2: a larger ridge is better conditioned).",
                stacklevel=2,
            )
        self.last_info = GroupSparseInfo(
            lam1, sparsity, lambda_max, lambda2_eff, res, its.cpu(),
            0 if operator is None else operator.passes, in_range,
        )
        attributions = fmt.format_like_inputs(fmt.unflatten(d))
        return (attributions, res) if return_convergence_delta else attributions

    def has_convergence_delta(self) -> bool:
        """The relative optimality residual is returned as the convergence delta."""
        return True


def _check_sparsity_range(sparsity_range: Sequence[float]) -> Tuple[float, float]:
    try:
        lo, hi = (float(v) for v in sparsity_range)
    except (TypeError, ValueError):
        raise TypeError(
            "`sparsity_range` must be a pair (lo, hi) of floats, e.g. (0.75, 1.0)."
        ) from None
    if not (0.0 <= lo <= hi <= 1.0):
        raise ValueError(
            f"`sparsity_range` must satisfy 0 <= lo <= hi <= 1 (fractions of exact "
            f"zeros), got {tuple(sparsity_range)}."
        )
    return lo, hi


def _format_lambda1(lambda1: Union[None, float, Tensor], batch: int,
                    like: Tensor) -> Optional[Tensor]:
    if lambda1 is None:
        return None
    if isinstance(lambda1, bool) or not isinstance(lambda1, (int, float, Tensor)):
        raise TypeError(
            f"`lambda1` must be None, a float or a ({batch},) tensor, got "
            f"{type(lambda1).__name__}."
        )
    if isinstance(lambda1, Tensor):
        lam = lambda1.detach().to(dtype=like.dtype, device=like.device)
    else:  # not as_tensor(float): that would round through float32
        lam = torch.tensor(float(lambda1), dtype=like.dtype, device=like.device)
    lam = lam.reshape(-1)
    if lam.numel() == 1:
        lam = lam.expand(batch).clone()
    if lam.numel() != batch:
        raise ValueError(f"`lambda1` must be a float or a ({batch},) tensor.")
    if not bool(torch.isfinite(lam).all()) or bool((lam < 0).any()):
        raise ValueError(
            f"`lambda1` must be finite and >= 0 (the L1 weight), got {lam.tolist()}; "
            "pass None to choose it from `sparsity_range`."
        )
    return lam
