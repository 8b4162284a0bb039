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

import numbers
import time
from typing import Any, Callable, NamedTuple, Optional, Tuple, Union

import torch
from captum.attr import GradientAttribution
from torch import Tensor

from captum_higher_order._captum import log_usage
from captum_higher_order._inputs import (
    BaselineType,
    FeatureGroups,
    FormattedInputs,
    TargetType,
    TensorOrTuple,
    check_dense_size,
    check_model_state,
    check_objective,
    format_baselines,
    format_feature_mask,
    format_inputs,
    format_target,
    resolve_target,
)
from captum_higher_order.attr._adaptive_path import (
    AdaptiveRule,
    check_tol,
    choose_n_steps,
    completeness_rows,
)
from captum_higher_order.attr._path_quadrature import path_quadrature
from captum_higher_order.attr._path_sums import objective_values, path_sums
from captum_higher_order.hessian import DEFAULT_MAX_DENSE_FEATURES, check_mode
from captum_higher_order.hessian.engine import warn_if_zero_curvature

__all__ = ["IntegratedHessians", "ExpectedHessians", "path_quadrature"]  # noqa: F822

MaskType = Union[None, Tensor, Tuple[Tensor, ...]]


class IntegratedHessiansInfo(NamedTuple):
    """What the last :meth:`IntegratedHessians.attribute` call used.

    Attributes:
        n_steps (int): The rule's ``n_steps`` (chosen by the search when the
            call passed ``n_steps=None``).
        path_points (int): Path points per sample (``<= n_steps``).
        relative_gap (Tensor or None): ``(B,)`` completeness gap of the
            result, ``|sum Gamma - (f(x) - f(x'))|``, over ``sum_i |IG_i|``
            (the row sums' L1 norm); None when not computed (fixed
            ``n_steps`` without ``return_convergence_delta``, or
            ``multiply_by_inputs=False``).
        tried (tuple[tuple[int, float], ...]): The adaptive search's rules and
            their worst relative gap over the batch (empty for fixed
            ``n_steps``).
        converged (bool or None): Whether the search met ``tol`` (None for
            fixed ``n_steps``).
        seconds (float): Wall time of the call.
    """

    n_steps: int
    path_points: int
    relative_gap: Optional[Tensor]
    tried: Tuple[Tuple[int, float], ...] = ()
    converged: Optional[bool] = None
    seconds: float = 0.0


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

    ``n_steps=None`` picks the rule from an accuracy target: doubling Gauss
    rules until the relative completeness gap is below ``tol``, found with
    one Hessian-vector product per path point (see
    :mod:`captum_higher_order.attr._adaptive_path`). After each call
    :attr:`last_info` holds an :class:`IntegratedHessiansInfo` (rule used,
    relative gap reached).

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
        >>> explainer = IntegratedHessians(model)   # rule chosen from an accuracy target
        >>> ih_auto = explainer.attribute(x, target=1, n_steps=None, tol=1e-6)
        >>> info = explainer.last_info
        >>> info.converged, bool(info.relative_gap.max() < 1e-6), info.n_steps <= 16
        (True, True, True)
    """

    def __init__(self, forward_func: Callable[..., Tensor], multiply_by_inputs: bool = True):
        GradientAttribution.__init__(self, forward_func)
        self._multiply_by_inputs = bool(multiply_by_inputs)
        self.last_info: Optional[IntegratedHessiansInfo] = None

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
        n_steps: Optional[int] = 16,
        method: str = "gausslegendre",
        feature_mask: MaskType = None,
        internal_batch_size: Optional[int] = None,
        return_convergence_delta: bool = False,
        mode: str = "auto",
        max_features: int = DEFAULT_MAX_DENSE_FEATURES,
        tol: float = 1e-3,
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
            n_steps (int or None, optional): Path points (see
                :func:`path_quadrature`). None doubles the rule from 2 points
                until the relative completeness gap (over ``sum_i |IG_i|``) of
                every sample is below ``tol`` (needs
                ``multiply_by_inputs=True``); :attr:`last_info` reports the
                rule used and the gap reached. Default: 16
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
            tol (float, optional): Relative completeness gap that
                ``n_steps=None`` aims for. Default: 1e-3

        Returns:
            Tensor or (Tensor, Tensor): ``(B, F, F)`` or ``(B, G, G)``
            interactions; with ``return_convergence_delta`` also the ``(B,)``
            completeness gap.
        """
        check_objective(objective)
        start = time.perf_counter()
        fmt, target_t, baselines_t, groups = self._prepare(
            inputs, baselines, target, additional_forward_args, objective, n_steps,
            method, feature_mask, internal_batch_size, return_convergence_delta, mode,
            max_features, tol,
        )
        f_diff: Optional[Tensor] = None
        if n_steps is None or return_convergence_delta:
            f_diff = objective_values(
                self.forward_func, fmt.inputs, fmt, target_t, objective
            ) - objective_values(self.forward_func, baselines_t, fmt, target_t, objective)
        search: Optional[AdaptiveRule] = None
        if n_steps is None:
            assert f_diff is not None
            search = self._search(fmt, baselines_t, target_t, objective, method,
                                  internal_batch_size, mode, f_diff, tol)
        n = search.n_steps if search is not None else int(n_steps)  # type: ignore[arg-type]
        t, w = path_quadrature(method, n)
        gamma = self._gamma(fmt, baselines_t, target_t, objective, groups, t, w,
                            internal_batch_size, mode)
        delta = None if f_diff is None else gamma.sum(dim=(1, 2)) - f_diff
        self.last_info = IntegratedHessiansInfo(
            n, t.numel(), None if delta is None else _relative_gap(gamma, delta),
            () if search is None else search.tried,
            None if search is None else search.converged, time.perf_counter() - start,
        )
        if not return_convergence_delta:
            return gamma
        assert delta is not None
        return gamma, delta

    # ----------------------------------------------------------------- helpers

    def _prepare(
        self,
        inputs: TensorOrTuple,
        baselines: BaselineType,
        target: TargetType,
        additional_forward_args: Any,
        objective: str,
        n_steps: Optional[int],
        method: str,
        feature_mask: MaskType,
        internal_batch_size: Optional[int],
        return_convergence_delta: bool,
        mode: str,
        max_features: int,
        tol: float,
    ) -> Tuple[FormattedInputs, Optional[Tensor], Tuple[Tensor, ...],
               Optional[FeatureGroups]]:
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
        if n_steps is None:
            check_tol(tol)
            if not self._multiply_by_inputs:
                raise ValueError(
                    "n_steps=None chooses the rule from the completeness gap, which "
                    "multiply_by_inputs=False does not have: pass an int n_steps."
                )
            path_quadrature(method, 1)  # validates the method name
        else:
            path_quadrature(method, n_steps)  # validates both
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
        return fmt, target_t, baselines_t, groups

    def _search(
        self,
        fmt: FormattedInputs,
        baselines: Tuple[Tensor, ...],
        target: Optional[Tensor],
        objective: str,
        method: str,
        internal_batch_size: Optional[int],
        mode: str,
        f_diff: Tensor,
        tol: float,
    ) -> AdaptiveRule:
        def rows_of(t: Tensor, w: Tensor) -> Tensor:
            return completeness_rows(self.forward_func, fmt, baselines, target, objective,
                                     t, w, internal_batch_size, mode)

        return choose_n_steps(rows_of, f_diff, method, tol)

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
        hessian_part, first_order = path_sums(
            self.forward_func, fmt, baselines, target, objective, groups, t, w,
            self._multiply_by_inputs, internal_batch_size, mode,
        )
        moved = any(bool((x != b).any()) for x, b in zip(fmt.inputs, baselines))
        if moved or not self._multiply_by_inputs:
            warn_if_zero_curvature(hessian_part, objective)
        return hessian_part + torch.diag_embed(first_order)



def _relative_gap(gamma: Tensor, delta: Tensor) -> Tensor:
    """``|delta|`` over the L1 norm of ``gamma``'s row sums (``sum_i |IG_i|``)."""
    scale = gamma.sum(2).abs().sum(1)
    return delta.abs() / scale.clamp_min(torch.finfo(scale.dtype).tiny)


def __getattr__(name: str) -> Any:
    # ExpectedHessians lives in its own module (it subclasses IntegratedHessians,
    # so importing it here eagerly would be circular); the old path still works.
    if name == "ExpectedHessians":
        from captum_higher_order.attr.expected_hessians import ExpectedHessians

        return ExpectedHessians
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
