r"""Integrated Hessians (Janizek, Sturmfels & Lee, JMLR 2021).

Integrated Gradients applied to itself. With ``Delta = x - x'`` and the path
``x' + a b Delta``, the paper's interaction of features ``i`` and ``j`` is

.. math::

    \Gamma_{ij} = \Delta_i \Delta_j \int_0^1\!\!\int_0^1 a b\,
        \partial_i \partial_j f(x' + a b \Delta)\, da\, db
        \;+\; \delta_{ij}\, \Delta_i \int_0^1\!\!\int_0^1
        \partial_i f(x' + a b \Delta)\, da\, db ,

(paper, eqs. 3-4): the first-order term sits on the diagonal. Row ``i`` sums to
the Integrated Gradients attribution ``IG_i`` (IG applied to ``IG_i``, which
vanishes at ``x'``), so all entries sum to ``f(x) - f(x')`` (completeness).

**One integral instead of two.** Both integrands depend on ``a`` and ``b`` only
through ``t = a b``. For fixed ``a``, ``t`` runs over ``[0, a]`` with
``db = dt / a``; swapping the order,

.. math::

    \int_0^1\!\!\int_0^1 g(ab)\, da\, db = \int_0^1 g(t)
        \Big(\int_t^1 \frac{da}{a}\Big) dt = \int_0^1 g(t)\,(-\ln t)\, dt ,

so ``(a, b)`` uniform on the unit square push forward to the density ``-ln t``
on ``[0, 1]`` (its moments are ``int t^m (-ln t) dt = 1/(m+1)^2``), and

.. math::

    \Gamma_{ij} = \int_0^1 (-\ln t)\Big[\, t\, \Delta_i \Delta_j\,
        \partial_i\partial_j f(x' + t\Delta) + \delta_{ij}\, \Delta_i\,
        \partial_i f(x' + t\Delta) \Big] dt .

Completeness in this form: with ``phi(t) = f(x' + t Delta)`` the entries sum to
``int (-ln t) (t phi')' dt = phi(1) - phi(0)`` (integrate by parts once).

**Quadrature.** The paper's double sum with a Captum rule ``(a_k, w_k)`` in both
``a`` and ``b`` is the integral against the discrete measure
``mu_n = sum_kl w_k w_l delta(t - a_k a_l)`` (``n^2`` path points). We replace
``mu_n`` by its ``n``-point Gauss rule (Lanczos on ``mu_n``): ``n`` path points
``t_k`` and weights ``W_k`` that reproduce every moment of ``mu_n`` up to degree
``2n - 1``, so the result equals the paper's ``n x n`` double sum exactly
whenever ``t -> (t-weighted) integrand`` is a polynomial of degree ``< 2n`` and
costs ``n`` instead of ``n^2`` Hessian evaluations. For ``"gausslegendre"`` the
product rule is exact to degree ``2n - 1``, so the compressed rule is the Gauss
rule for the weight ``-ln t`` itself, and the entries converge exponentially in
``n_steps`` for analytic models. Then

.. math::

    \Gamma_{AB} \approx \sum_k W_k \Big[\, t_k\, \Delta_A^\top H(t_k)\,
        \Delta_B + \delta_{AB}\, \Delta_A^\top \nabla f(t_k) \Big],

with ``Delta_A`` the difference masked to feature (or ``feature_mask`` group)
``A``: one batched Hessian-vector product per path point and group, plus one
gradient per path point.
"""

from __future__ import annotations

import functools
import numbers
from typing import Any, Callable, Optional, Tuple, Union

import torch
from captum.attr import GradientAttribution
from torch import Tensor

from captum_higher_order._captum import approximation_parameters, log_usage
from captum_higher_order._inputs import (
    BaselineType,
    FeatureGroups,
    FormattedInputs,
    TargetType,
    TensorOrTuple,
    check_dense_size,
    check_model_state,
    check_objective,
    expand_samples,
    expand_target,
    format_baselines,
    format_feature_mask,
    format_inputs,
    format_target,
    resolve_target,
    run_forward,
    select_objective,
)
from captum_higher_order.hessian import DEFAULT_MAX_DENSE_FEATURES, check_mode, value_and_grad
from captum_higher_order.hessian.engine import Engine, Problem, warn_if_zero_curvature

__all__ = ["IntegratedHessians", "ExpectedHessians", "path_quadrature"]

MaskType = Union[None, Tensor, Tuple[Tensor, ...]]

_METHODS = (
    "gausslegendre",
    "riemann_left",
    "riemann_right",
    "riemann_middle",
    "riemann_trapezoid",
)


# --------------------------------------------------------------------------- quadrature


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
    if method not in _METHODS:
        raise ValueError(
            f"Unknown method {method!r}; choose one of Captum's quadrature rules: "
            f"{', '.join(_METHODS)}."
        )
    if isinstance(n_steps, bool) or not isinstance(n_steps, numbers.Integral) or n_steps < 1:
        raise ValueError(f"`n_steps` must be a positive int, got {n_steps!r}.")
    t, w = _path_rule_cached(method, int(n_steps))
    return t.clone(), w.clone()


# --------------------------------------------------------------------------- baselines


# --------------------------------------------------------------------------- core


def _objective_values(
    forward_func: Callable[..., Tensor],
    xs: Tuple[Tensor, ...],
    fmt: FormattedInputs,
    target: Optional[Tensor],
    objective: str,
) -> Tensor:
    with torch.no_grad():
        out = run_forward(forward_func, xs, fmt.additional_forward_args)
        return select_objective(out, target, objective).detach()


def _path_rows(
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


def _integrated_hessians(
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
        rows_fmt, rows_target, sample, node = _path_rows(
            fmt, baselines, target, t, start, stop
        )
        sample, node = sample.to(device), node.to(device)
        rows_groups = _rows_groups(groups, sample)
        # Directions D_A: x - x' masked to group A (or the group indicator).
        scale = delta_flat[sample] if multiply_by_inputs else torch.ones_like(
            delta_flat[sample]
        )
        problem = Problem(forward_func, rows_fmt, rows_target, objective)
        hessian_part += _weighted_hessian_rows(
            Engine(problem, mode), rows_groups, scale, (weights * t)[node], sample,
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
            if rows_groups is not None:
                projected = rows_groups.project(projected)
            first_order.index_add_(0, sample, projected * weights[node].view(-1, 1))
    hessian_part = 0.5 * (hessian_part + hessian_part.transpose(1, 2))
    return hessian_part, first_order


def _weighted_hessian_rows(
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


def _rows_groups(groups: Optional[FeatureGroups], sample: Tensor) -> Optional[FeatureGroups]:
    if groups is None or groups.index.shape[0] == 1:
        return groups
    return FeatureGroups(groups.index.to(sample.device)[sample], groups.ids)


# --------------------------------------------------------------------------- attribution


class IntegratedHessians(GradientAttribution):
    r"""Integrated Hessians (Janizek, Sturmfels & Lee, "Explaining Explanations:
    Axiomatic Feature Interactions for Deep Networks", JMLR 22(104), 2021).

    Pairwise interactions ``Gamma (B, F, F)`` (or ``(B, G, G)`` over
    ``feature_mask`` groups) from the path-integrated Hessian along
    ``x' + a b (x - x')`` with weight ``a b``; the diagonal also carries the
    first-order (IG-like) term, so

    * row ``i`` sums to Integrated Gradients' ``IG_i`` for the same baseline;
    * all entries sum to ``f(x) - f(x')`` (completeness; the gap is the
      convergence delta);
    * ``Gamma`` is symmetric and its off-diagonal entries vanish for additive
      models.

    The double integral is evaluated as one integral over ``t = a b`` with
    weight ``-ln t`` (see the module docstring for the derivation): ``n_steps``
    path points reproduce the paper's ``n_steps x n_steps`` double sum on
    polynomials of degree below ``2 n_steps``. Every path point costs one
    gradient plus ``F`` (or ``G``) Hessian-vector products, batched over path
    points and directions by :mod:`captum_higher_order.hessian`.

    For ReLU networks and ``objective="output"`` the Hessian vanishes almost
    everywhere and completeness fails (the paper swaps ReLU for SoftPlus); use
    a smooth surrogate of the activations or a curved objective.

    Args:
        forward_func (Callable): The model or function, called as
            ``forward_func(*inputs, *additional_forward_args)``; returns ``(B,)``
            or ``(B, C)``.
        multiply_by_inputs (bool, optional): True gives the paper's ``Gamma``
            (local attribution, with completeness). False gives the
            path-weighted Hessian ``int int a b 1_A^T H(x' + a b (x - x')) 1_B
            da db`` alone (the "global" variant, as in Captum's IG: no
            ``(x - x')`` factors, no first-order term, no completeness).
            Default: True

    Examples::

        >>> # Janizek et al. 2021: interactions of a smooth model, IG beside IH.
        >>> import torch
        >>> from captum.attr import IntegratedGradients
        >>> from captum_higher_order.attr.integrated_hessians import IntegratedHessians
        >>> _ = torch.manual_seed(0)
        >>> model = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.Softplus(),
        ...                             torch.nn.Linear(16, 3)).double().eval()
        >>> x = torch.randn(2, 5, dtype=torch.float64)
        >>> ih, delta = IntegratedHessians(model).attribute(
        ...     x, target=1, n_steps=16, return_convergence_delta=True)
        >>> ih.shape
        torch.Size([2, 5, 5])
        >>> bool(delta.abs().max() < 1e-10)                # completeness
        True
        >>> ig = IntegratedGradients(model).attribute(x, target=1, n_steps=200)
        >>> bool(torch.allclose(ih.sum(2), ig, atol=1e-8))  # rows sum to IG
        True
    """

    def __init__(self, forward_func: Callable[..., Tensor], multiply_by_inputs: bool = True):
        GradientAttribution.__init__(self, forward_func)
        self._multiply_by_inputs = bool(multiply_by_inputs)

    @property
    def multiplies_by_inputs(self) -> bool:
        return self._multiply_by_inputs

    def has_convergence_delta(self) -> bool:
        return True

    @log_usage()
    def attribute(
        self,
        inputs: TensorOrTuple,
        baselines: BaselineType = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        objective: str = "output",
        n_steps: int = 16,
        method: str = "gausslegendre",
        feature_mask: MaskType = None,
        internal_batch_size: Optional[int] = None,
        return_convergence_delta: bool = False,
        mode: str = "auto",
        max_features: int = DEFAULT_MAX_DENSE_FEATURES,
    ) -> Union[Tensor, Tuple[Tensor, Tensor]]:
        r"""Integrated Hessians of every sample.

        Args:
            inputs (Tensor or tuple[Tensor, ...]): Inputs, batch in dim 0, any
                shape; features are the flattened elements of all inputs.
            baselines (scalar, Tensor or tuple, optional): The reference
                ``x'``, in any Captum form: None (zeros), a number, a tensor
                shaped like the inputs or with first dim 1 (or the per-sample
                shape), or a tuple of those, one per input. Default: None
            target (int, tuple, Tensor or list, optional): Captum target. It is
                fixed at the clean input (the class predicted at ``x`` when
                None and the objective is a class objective), never re-chosen
                at path points. Default: None
            additional_forward_args (Any, optional): Passed to the model after
                the inputs, not differentiated. Default: None
            objective (str, optional): ``"output"``, ``"log_softmax"``,
                ``"softmax"`` or ``"cross_entropy"``. Default: ``"output"``
            n_steps (int, optional): Path points (see :func:`path_quadrature`).
                Default: 16
            method (str, optional): Captum quadrature rule used in both ``a``
                and ``b``: ``"gausslegendre"``, ``"riemann_left"``,
                ``"riemann_right"``, ``"riemann_middle"`` or
                ``"riemann_trapezoid"``. Default: ``"gausslegendre"``
            feature_mask (Tensor or tuple[Tensor, ...], optional): Captum-style
                integer group ids (broadcastable to each input, ids shared
                across the tuple); the result is ``(B, G, G)`` with
                ``Gamma_AB = sum_{i in A, j in B} Gamma_ij``. Default: None
            internal_batch_size (int, optional): Most Hessian-vector products
                (path point x direction) per pass; None decides from a memory
                budget. Default: None
            return_convergence_delta (bool, optional): Also return
                ``sum(Gamma) - (f(x) - f(x'))`` per sample (needs
                ``multiply_by_inputs=True``). Default: False
            mode (str, optional): HVP mode of the engine (``"auto"``,
                ``"fwd_rev"``, ``"rev_rev"``, ``"ggn"``). Default: ``"auto"``
            max_features (int, optional): Largest ``F`` (or ``G``) for the
                dense result; above it a ValueError asks for a
                ``feature_mask``. Default: 4096

        Returns:
            Tensor or (Tensor, Tensor): ``(B, F, F)`` or ``(B, G, G)``
            interactions; with ``return_convergence_delta`` also the ``(B,)``
            completeness gap.
        """
        check_objective(objective)
        fmt, target_t, baselines_t, groups, t, w = self._prepare(
            inputs, baselines, target, additional_forward_args, objective, n_steps,
            method, feature_mask, internal_batch_size, return_convergence_delta, mode,
            max_features,
        )
        gamma = self._gamma(fmt, baselines_t, target_t, objective, groups, t, w,
                            internal_batch_size, mode)
        if not return_convergence_delta:
            return gamma
        f_x = _objective_values(self.forward_func, fmt.inputs, fmt, target_t, objective)
        f_base = _objective_values(self.forward_func, baselines_t, fmt, target_t, objective)
        return gamma, gamma.sum(dim=(1, 2)) - (f_x - f_base)

    # ----------------------------------------------------------------- helpers

    def _prepare(
        self,
        inputs: TensorOrTuple,
        baselines: BaselineType,
        target: TargetType,
        additional_forward_args: Any,
        objective: str,
        n_steps: int,
        method: str,
        feature_mask: MaskType,
        internal_batch_size: Optional[int],
        return_convergence_delta: bool,
        mode: str,
        max_features: int,
    ) -> Tuple[FormattedInputs, Optional[Tensor], Tuple[Tensor, ...],
               Optional[FeatureGroups], Tensor, Tensor]:
        check_mode(mode)
        if not callable(self.forward_func):
            raise TypeError("`forward_func` must be callable (a model or a function).")
        if internal_batch_size is not None and (
            isinstance(internal_batch_size, bool)
            or not isinstance(internal_batch_size, numbers.Integral)
            or internal_batch_size < 1
        ):
            raise ValueError(
                f"`internal_batch_size` must be a positive int or None, got "
                f"{internal_batch_size!r}."
            )
        if return_convergence_delta and not self._multiply_by_inputs:
            raise ValueError(
                "Completeness holds for the multiplied attribution only: use "
                "multiply_by_inputs=True to get a convergence delta."
            )
        t, w = path_quadrature(method, n_steps)
        check_model_state(self.forward_func)
        fmt = format_inputs(inputs, additional_forward_args)
        groups = format_feature_mask(feature_mask, fmt)
        size = fmt.num_features if groups is None else groups.num_groups
        check_dense_size(
            size, max_features,
            "IntegratedHessians" if groups is None else "The grouped IntegratedHessians",
        )
        target_t = format_target(target, fmt.batch_size)
        target_t = resolve_target(self.forward_func, fmt, target_t, objective)
        baselines_t = format_baselines(baselines, fmt)
        return fmt, target_t, baselines_t, groups, t, w

    def _gamma(
        self,
        fmt: FormattedInputs,
        baselines: Tuple[Tensor, ...],
        target: Optional[Tensor],
        objective: str,
        groups: Optional[FeatureGroups],
        t: Tensor,
        w: Tensor,
        internal_batch_size: Optional[int],
        mode: str,
    ) -> Tensor:
        hessian_part, first_order = _integrated_hessians(
            self.forward_func, fmt, baselines, target, objective, groups, t, w,
            self._multiply_by_inputs, internal_batch_size, mode,
        )
        moved = any(bool((x != b).any()) for x, b in zip(fmt.inputs, baselines))
        if moved or not self._multiply_by_inputs:
            warn_if_zero_curvature(hessian_part, objective)
        return hessian_part + torch.diag_embed(first_order)


class ExpectedHessians(IntegratedHessians):
    r"""Expected Hessians (Janizek et al. 2021, Sec. 3.2): Integrated Hessians
    averaged over baselines drawn from a reference set ``D``,

    ``Gamma(x) = E_{x' ~ D}[ Gamma(x; x') ]``, so the entries sum to
    ``f(x) - E_{x' ~ D} f(x')``.

    The paper samples ``(x', a, b)`` jointly by Monte Carlo; here each drawn
    reference keeps the deterministic path rule of :class:`IntegratedHessians`
    (``n_steps`` points over ``t = a b``), so only the choice of references is
    random (none is, when every reference is used).

    Args:
        forward_func (Callable): The model or function.
        multiply_by_inputs (bool, optional): As in :class:`IntegratedHessians`.
            Default: True

    Examples::

        >>> import torch
        >>> from captum_higher_order.attr.integrated_hessians import ExpectedHessians
        >>> _ = torch.manual_seed(0)
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(),
        ...                             torch.nn.Linear(8, 1)).double().eval()
        >>> x = torch.randn(3, 4, dtype=torch.float64)
        >>> references = torch.randn(20, 4, dtype=torch.float64)
        >>> eh, delta = ExpectedHessians(model).attribute(
        ...     x, references, n_references=5, seed=0, return_convergence_delta=True)
        >>> eh.shape, bool(delta.abs().max() < 1e-8)
        (torch.Size([3, 4, 4]), True)
    """

    @log_usage()
    def attribute(  # type: ignore[override]
        self,
        inputs: TensorOrTuple,
        baselines: TensorOrTuple,
        target: TargetType = None,
        additional_forward_args: Any = None,
        objective: str = "output",
        n_steps: int = 16,
        method: str = "gausslegendre",
        feature_mask: MaskType = None,
        n_references: Optional[int] = None,
        seed: int = 0,
        generator: Optional[torch.Generator] = None,
        internal_batch_size: Optional[int] = None,
        return_convergence_delta: bool = False,
        mode: str = "auto",
        max_features: int = DEFAULT_MAX_DENSE_FEATURES,
    ) -> Union[Tensor, Tuple[Tensor, Tensor]]:
        r"""Integrated Hessians averaged over reference baselines.

        Args:
            inputs (Tensor or tuple[Tensor, ...]): Inputs, batch in dim 0.
            baselines (Tensor or tuple[Tensor, ...]): The reference set: ``R``
                rows per input tensor, shaped ``(R, *sample_shape)``.
            target, additional_forward_args, objective, n_steps, method,
            feature_mask, internal_batch_size, mode, max_features: As in
                :meth:`IntegratedHessians.attribute`.
            n_references (int, optional): References drawn (with replacement)
                once per call and shared by every sample; None uses all ``R``
                (deterministic). Default: None
            seed (int, optional): Seed of the draw when no ``generator`` is
                given. Default: 0
            generator (torch.Generator, optional): Random source of the draw
                (on the CPU). Default: None
            return_convergence_delta (bool, optional): Also return
                ``sum(Gamma) - (f(x) - mean_r f(x'_r))`` over the drawn
                references. Default: False

        Returns:
            Tensor or (Tensor, Tensor): ``(B, F, F)`` or ``(B, G, G)``, and the
            ``(B,)`` gap when asked.
        """
        check_objective(objective)
        fmt0 = format_inputs(inputs, additional_forward_args)
        refs = _format_references(baselines, fmt0)
        num_refs = refs[0].shape[0]
        if n_references is None:
            picks = torch.arange(num_refs).repeat(fmt0.batch_size)
            per_sample = num_refs
        else:
            if isinstance(n_references, bool) or not isinstance(
                n_references, numbers.Integral
            ) or n_references < 1:
                raise ValueError(
                    f"`n_references` must be a positive int or None, got {n_references!r}."
                )
            gen = generator if generator is not None else torch.Generator().manual_seed(seed)
            per_sample = int(n_references)
            # One draw shared by the whole batch: a sample's result does not
            # depend on the rest of the batch, and samples are compared against
            # the same references.
            picks = torch.randint(num_refs, (per_sample,), generator=gen).repeat(
                fmt0.batch_size
            )
        # Every sample repeated once per drawn reference (rows b*M .. b*M+M-1).
        target_t = resolve_target(
            self.forward_func, fmt0, format_target(target, fmt0.batch_size), objective
        )
        fmt = expand_samples(fmt0, per_sample)
        drawn = tuple(r[picks.to(r.device)] for r in refs)
        if feature_mask is not None:
            groups0 = format_feature_mask(feature_mask, fmt0)
            assert groups0 is not None
            feature_mask = _expand_mask(feature_mask, fmt0, per_sample, groups0)
        expanded_inputs = fmt.inputs if fmt.is_tuple else fmt.inputs[0]
        expanded_args = fmt.additional_forward_args
        out = IntegratedHessians.attribute.__wrapped__(  # type: ignore[attr-defined]
            self, expanded_inputs, drawn if fmt.is_tuple else drawn[0],
            expand_target(target_t, per_sample), expanded_args, objective, n_steps,
            method, feature_mask, internal_batch_size, return_convergence_delta, mode,
            max_features,
        )
        if return_convergence_delta:
            gamma, delta = out
            return (
                gamma.view(fmt0.batch_size, per_sample, *gamma.shape[1:]).mean(1),
                delta.view(fmt0.batch_size, per_sample).mean(1),
            )
        return out.view(fmt0.batch_size, per_sample, *out.shape[1:]).mean(1)


def _format_references(baselines: Any, fmt: FormattedInputs) -> Tuple[Tensor, ...]:
    refs = (baselines,) if isinstance(baselines, Tensor) else baselines
    if not isinstance(refs, tuple) or len(refs) != len(fmt.inputs):
        raise TypeError(
            "ExpectedHessians needs `baselines` as a reference set: a Tensor "
            f"(R, ...) or a tuple of {len(fmt.inputs)} such tensors, one per input."
        )
    out = []
    for i, (r, x) in enumerate(zip(refs, fmt.inputs)):
        if not isinstance(r, Tensor):
            raise TypeError(f"baselines[{i}] must be a Tensor of reference rows.")
        if r.shape[1:] != x.shape[1:] or r.shape[0] < 1:
            raise ValueError(
                f"baselines[{i}] has shape {tuple(r.shape)}; a reference set needs "
                f"shape (R, {', '.join(str(s) for s in x.shape[1:])}) with R >= 1."
            )
        if r.shape[0] != refs[0].shape[0]:
            raise ValueError("Every tensor of the reference set needs the same R rows.")
        out.append(r.detach().to(device=x.device, dtype=x.dtype))
    return tuple(out)


def _expand_mask(
    feature_mask: Any, fmt: FormattedInputs, n: int, groups: FeatureGroups
) -> Any:
    """Repeat per-sample mask rows like :func:`expand_samples` repeats samples."""
    if groups.index.shape[0] == 1:
        return feature_mask
    masks = (feature_mask,) if isinstance(feature_mask, Tensor) else feature_mask
    expanded = tuple(
        torch.broadcast_to(m, x.shape).repeat_interleave(n, dim=0)
        for m, x in zip(masks, fmt.inputs)
    )
    return expanded if isinstance(feature_mask, tuple) else expanded[0]
