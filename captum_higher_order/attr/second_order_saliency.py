"""SecondOrderSaliency: the curvature-aware saliency map of Singla et al. (2019).

Singla, Wallace, Feng and Feizi, "Understanding Impacts of High-Order Loss
Approximations and Features in Deep Learning Interpretation", ICML 2019 (CASO).

With ``l`` the loss of the target class at the input ``x``, ``g = grad_x l`` and
``H = hess_x l``, the map is the perturbation that maximises the second-order
model of the loss under a ridge penalty:

    d* = argmin_d  -g^T d - 1/2 d^T H d + lambda2/2 ||d||^2
       = (lambda2 I - H)^{-1} g,

which is convex when ``lambda2 > lambda_max(H)``. We solve the linear system
with conjugate gradients on batched Hessian-vector products (every step is one
HVP for the whole batch), instead of a fixed number of gradient steps. Without
the Hessian term (``second_order=False``, "CAFO") the map is ``g / lambda2``.
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Any, Callable, NamedTuple, Optional, Tuple, Union

import torch
from captum.attr import GradientAttribution
from torch import Tensor

from captum_higher_order._captum import log_usage
from captum_higher_order._inputs import (
    TargetType,
    TensorOrTuple,
    check_objective,
    resolve_target,
)
from captum_higher_order.hessian import check_mode, value_and_grad
from captum_higher_order.hessian.budget import resolve_budget
from captum_higher_order.hessian.engine import (
    Engine,
    HessianOperator,
    Problem,
    make_problem,
    warn_if_zero_curvature,
)
from captum_higher_order.hessian.krylov import ShiftedSolve, lambda_max_and_shifted_solve
from captum_higher_order.hessian.lanczos import lanczos

__all__ = ["SecondOrderSaliency", "SecondOrderInfo", "LAMBDA2_MODES"]

#: How ``lambda2`` is read: ``"shift"`` adds it to ``lambda_max(H)`` (the public
#: CASO code's rule, always convex), ``"absolute"`` uses it as given.
LAMBDA2_MODES = ("shift", "absolute")


class SecondOrderInfo(NamedTuple):
    """What the last :meth:`SecondOrderSaliency.attribute` call used.

    Attributes:
        lambda_max (Tensor): ``(B,)`` largest Hessian eigenvalue per sample
            (zeros when ``second_order=False``).
        lambda2_eff (Tensor): ``(B,)`` the ridge actually used.
        residual (Tensor): ``(B,)`` relative residual
            ``||g - (lambda2_eff I - H) d|| / ||g||`` (zeros for CAFO).
        iterations (Tensor): ``(B,)`` solver iterations per sample (block
            Krylov steps plus any conjugate-gradient steps after them).
        hvps (int): Hessian-vector products per sample.
        passes (int): Batched passes through the model that computed them
            (a pass can carry several vectors).
        seconds (float): Wall time of the call.
    """

    lambda_max: Tensor
    lambda2_eff: Tensor
    residual: Tensor
    iterations: Tensor
    hvps: int
    passes: int = 0
    seconds: float = 0.0


# --------------------------------------------------------------------------- shared with
# GroupSparseSaliency: argument checks, the loss gradient and the convex ridge.


def check_caso_args(lambda2: float, lambda2_mode: str, objective: str, mode: str) -> None:
    """Validate the arguments both CASO methods share."""
    if isinstance(lambda2, bool) or not isinstance(lambda2, (int, float)):
        raise TypeError(f"`lambda2` must be a positive float, got {type(lambda2).__name__}.")
    if not math.isfinite(lambda2) or lambda2 <= 0:
        raise ValueError(
            f"`lambda2` must be a positive finite float (the ridge weight), got {lambda2}."
        )
    if lambda2_mode not in LAMBDA2_MODES:
        raise ValueError(
            f"Unknown lambda2_mode {lambda2_mode!r}; choose 'shift' (lambda2 is added to "
            "the largest Hessian eigenvalue) or 'absolute' (lambda2 is used as given)."
        )
    check_objective(objective)
    check_mode(mode)


def check_iteration_caps(optional: bool = True, **caps: Optional[int]) -> None:
    """Refuse iteration caps that are not positive ints (None, the default,
    is accepted when ``optional``)."""
    for name, value in caps.items():
        if optional and value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            allowed = "a positive int or None" if optional else "a positive int"
            raise ValueError(f"`{name}` must be {allowed}, got {value!r}.")


#: Default tolerances by input dtype: (solver, Lanczos). In float32 the
#: cross-entropy HVPs of confident samples carry relative rounding errors near
#: eps / (1 - p) (softmax cancellation), so tighter residuals are unreachable.
_DEFAULT_TOLS = {torch.float64: (1e-8, 1e-6), torch.float32: (1e-4, 1e-3)}


def default_tols(dtype: torch.dtype, tol: Optional[float],
                 eig_tol: Optional[float], tol_name: str = "tol") -> Tuple[float, float]:
    """Fill in ``None`` tolerances for ``dtype`` (half precision: 1e-2);
    ``tol_name`` is the solver tolerance's parameter name, for the message."""
    solver_tol, lanczos_tol = _DEFAULT_TOLS.get(dtype, (1e-2, 1e-2))
    tol = solver_tol if tol is None else tol
    eig_tol = lanczos_tol if eig_tol is None else eig_tol
    for name, value in ((tol_name, tol), ("eig_tol", eig_tol)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ValueError(f"`{name}` must be a positive float or None, got {value!r}.")
    return float(tol), float(eig_tol)


def caso_problem(
    forward_func: Callable[..., Tensor],
    inputs: TensorOrTuple,
    target: TargetType,
    additional_forward_args: Any,
    objective: str,
    mode: str,
    second_order: bool = True,
) -> Tuple[Problem, Tensor, HessianOperator]:
    """The engine problem with the target fixed at the clean input (the predicted
    class when None), the flat loss gradient ``g`` ``(B, F)`` and the Hessian
    operator every solver step uses. With ``second_order`` the gradient comes
    from the operator's first-order state (in ``rev_rev`` mode the graph its
    HVPs reuse), so it is computed once."""
    problem = make_problem(
        forward_func, inputs, target, additional_forward_args, objective, mode
    )
    fmt = problem.fmt
    problem.target = resolve_target(forward_func, fmt, problem.target, objective)
    operator = hessian_operator(problem, mode)
    if second_order:
        grads: Any = operator.engine.gradient()
    else:
        _, grads = value_and_grad(
            forward_func, fmt.inputs, problem.target, fmt.additional_forward_args, objective
        )
        grads = grads if isinstance(grads, tuple) else (grads,)
    return problem, fmt.flatten(grads), operator


def hessian_operator(problem: Problem, mode: str) -> HessianOperator:
    """One operator for the eigenvalue and solve phases: its first-order state
    (the reverse-over-reverse graph) is built once and reused by every step,
    and it counts the HVPs and batched passes (the cost units the benchmarks
    report)."""
    return HessianOperator(Engine(problem, mode))


def convex_ridge(
    problem: Problem,
    operator: HessianOperator,
    lambda2: float,
    lambda2_mode: str,
    eig_tol: float,
    eig_max_iter: Optional[int],
) -> Tuple[Tensor, Tensor]:
    """``(lambda_max, lambda2_eff)`` per sample.

    ``lambda_max`` is the largest (algebraic) Hessian eigenvalue, from the
    engine's batched Lanczos (as in
    :func:`~captum_higher_order.hessian.top_eigenpairs`). In ``"shift"`` mode
    ``lambda2_eff = lambda_max + lambda2``; in ``"absolute"`` mode
    ``lambda2_eff = lambda2``, refused when it does not make
    ``lambda2_eff I - H`` positive definite.
    """
    fmt = problem.fmt
    n = fmt.num_features
    steps = eig_max_iter if eig_max_iter is not None else min(n, 60)
    steps = max(1, min(steps, n))
    values, _, residuals, _ = lanczos(operator, 1, "LA", eig_tol, steps, seed=0)
    lambda_max = values[:, 0]
    # lambda_max only enters through lambda2_eff, so its error is judged
    # against lambda2 too (a confident sample has lambda_max ~ 0).
    scale = lambda_max.abs() + lambda2
    if bool((residuals[:, 0] > 10 * eig_tol * scale).any()):
        warnings.warn(
            f"Lanczos did not reach eig_tol={eig_tol} (relative to lambda_max + "
            f"lambda2) for lambda_max in {steps} steps (largest residual "
            f"{float(residuals.max()):.2e}); raise eig_max_iter. In float32 the HVPs "
            "of very confident samples are dominated by rounding: use float64 inputs "
            "and model, or a larger lambda2.",
            stacklevel=3,
        )
    warn_if_zero_curvature(values, problem.objective)
    if lambda2_mode == "shift":
        return lambda_max, lambda_max + lambda2
    lam = torch.full_like(lambda_max, float(lambda2))
    _refuse_non_convex(lambda_max, lambda2)
    return lambda_max, lam


def caso_solve(
    problem: Problem,
    operator: HessianOperator,
    g: Tensor,
    lambda2: float,
    lambda2_mode: str,
    tol: float,
    cg_max_iter: int,
    eig_tol: float,
    eig_max_iter: Optional[int],
) -> ShiftedSolve:
    """``lambda_max`` and ``(lambda2_eff I - H) d = g`` from one block Krylov
    space (two vectors per pass: see :mod:`captum_higher_order.hessian.krylov`).

    ``lambda2_eff = lambda_max + lambda2`` in ``"shift"`` mode; ``lambda2`` in
    ``"absolute"`` mode, refused when not above ``lambda_max`` (non-convex)."""
    fmt = problem.fmt
    n = fmt.num_features
    ridge = torch.full((fmt.batch_size,), float(lambda2), dtype=g.dtype, device=g.device)

    def shift_of(lambda_max: Tensor) -> Tensor:
        if lambda2_mode == "shift":
            return lambda_max + lambda2
        _refuse_non_convex(lambda_max, lambda2)
        return ridge

    steps = max(eig_max_iter if eig_max_iter is not None else 60, 1)
    # Q and HQ hold two floats per basis vector and feature, per sample.
    per_vector = 2 * fmt.batch_size * n * g.element_size()
    max_basis = max(2, min(n, 2 * steps, resolve_budget(None, g.device) // 4 // per_vector))
    result = lambda_max_and_shifted_solve(
        operator, g, shift_of, eig_tol, tol, steps, ridge, seed=0, max_basis=max_basis,
        cg_max_iter=cg_max_iter,
    )
    scale = result.lambda_max.abs() + lambda2
    if bool((result.eig_residual > 10 * eig_tol * scale).any()):
        warnings.warn(
            f"lambda_max did not reach eig_tol={eig_tol} (relative to lambda_max + lambda2) "
            f"in {result.steps} block Krylov steps (largest residual "
            f"{float(result.eig_residual.max()):.2e}); raise eig_max_iter. In float32 the "
            "HVPs of very confident samples are dominated by rounding: use float64 inputs "
            "and model, or a larger lambda2.",
            stacklevel=3,
        )
    warn_if_zero_curvature(result.lambda_max.unsqueeze(1), problem.objective)
    if not bool((result.residual <= 10 * tol).all()):
        warnings.warn(
            f"The solve stopped after {result.steps} block Krylov steps and {result.cg_steps} "
            f"conjugate-gradient steps (cg_max_iter={cg_max_iter}) with relative residual "
            f"{float(result.residual.max()):.2e} > tol={tol}; raise cg_max_iter or lambda2.",
            stacklevel=3,
        )
    return result


def _refuse_non_convex(lambda_max: Tensor, lambda2: float) -> None:
    bad = lambda_max >= lambda2
    if bool(bad.any()):
        worst = float(lambda_max.max())
        raise ValueError(
            f"lambda2={lambda2} with lambda2_mode='absolute' makes the CASO problem "
            f"non-convex for sample(s) {bad.nonzero().flatten().tolist()}: the largest "
            f"Hessian eigenvalue is {worst:.6g}. Choose lambda2 > {worst:.6g}, or use "
            "lambda2_mode='shift' (lambda2 is then added to lambda_max per sample)."
        )


# --------------------------------------------------------------------------- the method


class SecondOrderSaliency(GradientAttribution):
    r"""Curvature-aware saliency (CASO without sparsity), Singla et al. 2019.

    For each sample, with ``l`` the cross-entropy of the target class (the class
    predicted at the input when ``target`` is None), ``g = grad_x l`` and
    ``H = hess_x l``, returns the maximiser of the regularised second-order model
    of the loss,

    .. math::

        d^* = \arg\min_d\; -g^\top d - \tfrac12 d^\top H d
              + \tfrac{\lambda_2}{2}\lVert d\rVert^2
            = (\lambda_2 I - H)^{-1} g ,

    solved by conjugate gradients on batched Hessian-vector products. The map
    points in the direction that increases the loss (a positive entry raises
    the loss of the target class). ``lambda2_mode="shift"`` (default, as in the
    authors' code) uses ``lambda2_eff = lambda_max(H) + lambda2``, which keeps
    the problem convex for any ``lambda2 > 0``; ``lambda_max`` comes from batched
    Lanczos. ``second_order=False`` gives the first-order map ``g / lambda2``
    (CAFO), for comparison.

    For piecewise-linear networks (ReLU, max-pool) the cross-entropy Hessian is
    ``J^T (diag(p) - p p^T) J`` and is nearly rank one, parallel to ``g``, when
    the prediction is confident; then ``d*`` is nearly parallel to ``g``. See
    :func:`captum_higher_order.analysis.hessian_spectrum` to check that per
    sample. After each call, :attr:`last_info` holds a :class:`SecondOrderInfo`
    (``lambda_max``, ``lambda2_eff``, CG residual, iterations, HVP count).

    Args:
        forward_func (Callable): The model or function, returning ``(B, C)``
            class scores (or ``(B,)`` with ``objective="output"``). Batch-norm
            must be in eval mode.
        mode (str, optional): HVP mode of the engine: ``"rev_rev"``,
            ``"fwd_rev"``, ``"auto"`` or ``"ggn"`` (exact for piecewise-linear
            networks). The default reverse-over-reverse builds the first-order
            graph once and reuses it for every Lanczos and CG step (about 2x
            faster than ``"fwd_rev"`` on resnet18, see benchmarks/caso.py); use
            ``"fwd_rev"`` for operators without double backward.
            Default: ``"rev_rev"``
    """

    def __init__(self, forward_func: Callable[..., Tensor], mode: str = "rev_rev") -> None:
        GradientAttribution.__init__(self, forward_func)
        check_mode(mode)
        self.mode = mode
        self.last_info: Optional[SecondOrderInfo] = None

    @log_usage()
    def attribute(
        self,
        inputs: TensorOrTuple,
        target: TargetType = None,
        additional_forward_args: Any = None,
        objective: str = "cross_entropy",
        lambda2: float = 4.0,
        lambda2_mode: str = "shift",
        second_order: bool = True,
        cg_tol: Optional[float] = None,
        cg_max_iter: int = 500,
        eig_tol: Optional[float] = None,
        eig_max_iter: Optional[int] = None,
        return_convergence_delta: bool = False,
    ) -> Union[TensorOrTuple, Tuple[TensorOrTuple, Tensor]]:
        r"""Solve ``(lambda2_eff I - H) d = g`` per sample.

        Args:
            inputs (Tensor or tuple[Tensor, ...]): Inputs with the batch in dim 0.
            target (int, tuple, Tensor or list, optional): Captum target: the class
                whose loss is explained. None uses the class predicted at
                ``inputs``. Default: None
            additional_forward_args (Any, optional): Passed to the model after
                the inputs, not differentiated. Default: None
            objective (str, optional): The differentiated scalar:
                ``"cross_entropy"`` (the paper's loss), ``"log_softmax"``,
                ``"softmax"`` or ``"output"``. Default: ``"cross_entropy"``
            lambda2 (float, optional): Ridge weight ``> 0``. Default: 4.0
            lambda2_mode (str, optional): ``"shift"``: ``lambda2_eff =
                lambda_max(H) + lambda2``; ``"absolute"``: ``lambda2_eff =
                lambda2``, with a ValueError when ``lambda2 <= lambda_max(H)``
                (non-convex). Default: ``"shift"``
            second_order (bool, optional): False drops the Hessian term and
                returns ``g / lambda2`` (CAFO; no HVPs). Default: True
            cg_tol (float, optional): CG stops when the relative residual
                ``||g - (lambda2_eff I - H) d|| / ||g||`` is at most this.
                Default: 1e-8 for float64 inputs, 1e-4 for float32 (rounding in
                the HVPs of confident samples sets a floor there)
            cg_max_iter (int, optional): CG iteration cap (a warning when hit;
                in float32, rounding can need more than ``F`` steps). Default: 500
            eig_tol (float, optional): Relative residual tolerance of the Lanczos
                estimate of ``lambda_max``. Default: 1e-6 (float64), 1e-3 (float32)
            eig_max_iter (int, optional): Lanczos steps. Default: ``min(F, 60)``
            return_convergence_delta (bool, optional): Also return the relative
                CG residual per sample ``(B,)`` as the convergence delta.
                Default: False

        Returns:
            Tensor or tuple[Tensor, ...], or (attributions, delta): ``d*`` with
            the structure and shapes of ``inputs``; with
            ``return_convergence_delta`` also the ``(B,)`` residuals.

        Examples::

            >>> # Singla et al. (2019), "Understanding Impacts of High-Order Loss
            >>> # Approximations and Features in Deep Learning Interpretation".
            >>> import torch
            >>> from captum_higher_order.attr.second_order_saliency import (
            ...     SecondOrderSaliency)
            >>> model = torch.nn.Sequential(torch.nn.Linear(10, 32), torch.nn.ReLU(),
            ...                             torch.nn.Linear(32, 5)).eval()
            >>> caso = SecondOrderSaliency(model)
            >>> x = torch.randn(4, 10)
            >>> d, delta = caso.attribute(x, return_convergence_delta=True)
            >>> d.shape, delta.shape      # delta: relative CG residual per sample
            (torch.Size([4, 10]), torch.Size([4]))
            >>> cafo = caso.attribute(x, second_order=False)   # g / lambda2
        """
        started = time.perf_counter()
        check_caso_args(lambda2, lambda2_mode, objective, self.mode)
        check_iteration_caps(cg_max_iter=cg_max_iter, eig_max_iter=eig_max_iter)
        problem, g, operator = caso_problem(
            self.forward_func, inputs, target, additional_forward_args, objective,
            self.mode, second_order,
        )
        fmt = problem.fmt
        batch = fmt.batch_size
        cg_tol, eig_tol = default_tols(fmt.dtype, cg_tol, eig_tol, "cg_tol")
        if not second_order:
            zeros = torch.zeros(batch, dtype=g.dtype, device=g.device)
            self.last_info = SecondOrderInfo(
                zeros, torch.full_like(zeros, float(lambda2)), zeros,
                torch.zeros(batch, dtype=torch.long), 0,
            )
            return self._finish(fmt, g / lambda2, zeros, return_convergence_delta)

        result = caso_solve(problem, operator, g, lambda2, lambda2_mode, cg_tol, cg_max_iter,
                            eig_tol, eig_max_iter)
        iterations = torch.full((batch,), result.steps + result.cg_steps, dtype=torch.long)
        self.last_info = SecondOrderInfo(
            result.lambda_max, result.shift, result.residual, iterations, operator.hvps,
            operator.passes, time.perf_counter() - started,
        )
        return self._finish(fmt, result.solution, result.residual, return_convergence_delta)

    @staticmethod
    def _finish(fmt: Any, flat: Tensor, delta: Tensor, with_delta: bool) -> Any:
        attributions = fmt.format_like_inputs(fmt.unflatten(flat))
        return (attributions, delta) if with_delta else attributions

    def has_convergence_delta(self) -> bool:
        """The relative CG residual is returned as the convergence delta."""
        return True
