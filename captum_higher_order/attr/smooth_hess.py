"""SmoothHess: Gaussian-smoothed Hessians of ReLU networks from gradient calls.

Torop, Masoomi, Hill, Kose, Ioannidis & Dy, "SmoothHess: ReLU Network Feature
Interactions via Stein's Lemma", NeurIPS 2023.

A ReLU network is piecewise linear, so its Hessian is zero almost everywhere.
SmoothHess explains the network convolved with a Gaussian instead,
``f_sigma(x) = E_z[f(x + sigma z)]`` with ``z ~ N(0, I)``. Stein's lemma turns
its Hessian into an expectation of gradients (paper, Prop. 1)::

    H_sigma(x) = E_z[ grad f(x + sigma z) z^T ] / sigma

and its gradient into SmoothGrad, ``grad f_sigma(x) = E_z[grad f(x + sigma z)]``.
With a per-feature standard deviation ``s`` the same derivation gives
``H_ij = E[ grad_i f(x + s * z) z_j / s_j ]``: the "score" vector is
``w = z / s = eps / s^2`` for the perturbation ``eps = s * z``.

This implementation:

* draws antithetic pairs ``(z, -z)``: a pair contributes
  ``(g(x + eps) - g(x - eps)) w^T / 2``, which removes the ``g(x) w^T`` term
  whose variance dominates plain sampling (``E[w] = 0`` so it is zero in mean
  but not in any finite sample);
* symmetrises the estimate, ``(M + M^T) / 2``;
* evaluates many noisy points of many inputs per forward/backward pass, in
  chunks of ``batch_size`` rows;
* accumulates the projected factors ``(P^T a)(P^T w)^T`` when a ``feature_mask``
  groups features, so memory is ``G x G`` per input, never ``d x d``;
* reports a Monte-Carlo standard error per entry;
* returns SmoothGrad from the same gradient calls.
"""

from __future__ import annotations

import math
from typing import Any, Callable, List, Optional, Tuple, Union

import torch
from captum.attr import GradientAttribution
from torch import Tensor

from captum_higher_order._captum import log_usage
from captum_higher_order._inputs import (
    FeatureGroups,
    FormattedInputs,
    TargetType,
    TensorOrTuple,
    broadcast_to_input,
    check_dense_size,
    check_model_state,
    check_objective,
    expand_samples,
    expand_target,
    format_feature_mask,
    format_inputs,
    format_target,
    is_per_sample,
    resolve_target,
    run_forward,
    select_objective,
    slice_samples,
)
from captum_higher_order._noise import GeneratorType, NoiseStream, base_seed
from captum_higher_order._progress import inner_progress, progress_bar
from captum_higher_order.hessian import DEFAULT_MAX_DENSE_FEATURES
from captum_higher_order.hessian.budget import resolve_budget, saved_bytes
from captum_higher_order.hessian.engine import Problem

__all__ = ["SmoothHess"]

SigmaType = Union[float, Tensor, Tuple[Tensor, ...]]

# --------------------------------------------------------------------------- validation


def _format_sigma(sigma: SigmaType, fmt: FormattedInputs) -> Union[float, Tensor]:
    """A positive float, or a ``(1 or B, F)`` tensor of per-feature standard
    deviations built from one tensor per input, each broadcastable to its
    input (e.g. the sample shape, or ``(B, *sample_shape)``)."""
    if isinstance(sigma, bool):
        raise TypeError("`sigma` must be a positive float or a tensor of them.")
    if isinstance(sigma, (int, float)):
        if not math.isfinite(sigma) or sigma <= 0:
            raise ValueError(f"`sigma` must be a positive finite standard deviation, got {sigma}.")
        return float(sigma)
    parts = (sigma,) if isinstance(sigma, Tensor) else sigma
    if not isinstance(parts, tuple) or len(parts) != len(fmt.inputs):
        raise ValueError(
            f"A tensor `sigma` needs one tensor per input ({len(fmt.inputs)}); for tuple "
            "inputs pass a tuple of tensors or a float."
        )
    flat: List[Tensor] = []
    per_sample = False
    for i, (s, x) in enumerate(zip(parts, fmt.inputs)):
        if not isinstance(s, Tensor) or not s.is_floating_point():
            raise TypeError(f"sigma[{i}] must be a floating-point tensor.")
        s = s.detach().to(device=x.device, dtype=x.dtype)
        full = broadcast_to_input(s, x, f"sigma[{i}]")
        if not bool(torch.isfinite(s).all()) or bool((s <= 0).any()):
            raise ValueError(f"sigma[{i}] must be positive and finite everywhere.")
        per_sample = per_sample or is_per_sample(s, x)
        flat.append(full.reshape(x.shape[0], -1))
    out = torch.cat(flat, dim=1)
    return out if per_sample else out[:1]


def _check_counts(n_samples: int, antithetic: bool, batch_size: Optional[int]) -> int:
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise ValueError(f"`n_samples` must be a positive int, got {n_samples!r}.")
    if antithetic and n_samples % 2:
        raise ValueError(
            f"n_samples={n_samples} is odd, but antithetic=True uses pairs (z, -z): "
            "pass an even n_samples or antithetic=False."
        )
    if batch_size is not None and (
        isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
    ):
        raise ValueError(f"`batch_size` must be None or a positive int, got {batch_size!r}.")
    return n_samples // 2 if antithetic else n_samples


# --------------------------------------------------------------------------- accumulation


class _Accumulator:
    """Running sums for the Stein estimate of one block of inputs.

    Each Monte-Carlo unit ``k`` (a sample, or an antithetic pair) gives the
    rank-one estimate ``S_k = a_k w_k^T`` (gradient factor ``a``, score ``w``,
    both projected on groups when grouped). Kept: ``sum S_k``; for standard
    errors ``sum (a_k^2)(w_k^2)^T`` and ``sum (a_k w_k)(a_k w_k)^T``, which give
    ``sum S_k * S_k`` (entrywise) for the plain and for the symmetrised
    estimate without storing the ``S_k``.

    The constant factors (``1 / units``, the ``1/2`` of an antithetic pair and
    of the symmetrisation) are folded into the small score ``w`` by the caller
    (``score_factor``), so the ``size x size`` sums need no pass of their own:
    ``first`` is the mean already (half of it when symmetrising).
    """

    def __init__(self, batch: int, size: int, dtype: torch.dtype, device: Any, stderr: bool):
        zeros = lambda: torch.zeros(batch, size, size, dtype=dtype, device=device)  # noqa: E731
        self.first = zeros()
        self.squares = zeros() if stderr else None
        self.cross = zeros() if stderr else None

    def add(self, a: Tensor, w: Tensor) -> None:
        """``a``: ``(batch, units, size)``; ``w``: the same or ``(1, units, size)``
        when all inputs share it."""
        at = a.transpose(1, 2)
        self.first.baddbmm_(at, w.expand(a.shape[0], -1, -1))
        if self.squares is not None and self.cross is not None:
            self.squares.baddbmm_(at * at, (w * w).expand(a.shape[0], -1, -1))
            aw = a * w
            self.cross.baddbmm_(aw.transpose(1, 2), aw)


def score_factor(units: int, antithetic: bool, symmetrize: bool) -> float:
    """What :class:`_Accumulator` expects ``w`` to be multiplied by."""
    return (0.5 if antithetic else 1.0) * (0.5 if symmetrize else 1.0) / units


def _finish(
    acc: _Accumulator, units: int, symmetrize: bool
) -> Tuple[Tensor, Optional[Tensor]]:
    # first = (d / units) sum S_k with d = 1/2 when symmetrising (score_factor)
    mean = acc.first + acc.first.transpose(1, 2) if symmetrize else acc.first
    if acc.squares is None or acc.cross is None:
        return mean, None
    rescale = (units * (2.0 if symmetrize else 1.0)) ** 2  # back to sum S_k * S_k
    if symmetrize:  # S = (a w^T + w a^T) / 2
        second = 0.25 * (acc.squares + acc.squares.transpose(1, 2) + 2 * acc.cross)
    else:
        second = acc.squares
    second = second * rescale
    var = (second / units - mean * mean).clamp_min(0) * (units / (units - 1))
    return mean, (var / units).sqrt()


# --------------------------------------------------------------------------- method


class SmoothHess(GradientAttribution):
    r"""SmoothHess (Torop, Masoomi et al., NeurIPS 2023): the Hessian of the
    model convolved with a Gaussian, estimated from gradient calls only.

    For ``f_sigma(x) = E_z[f(x + sigma z)]``, ``z ~ N(0, I)``, Stein's lemma
    gives ``H_sigma(x) = E_z[grad f(x + sigma z) z^T] / sigma`` (Prop. 1 of the
    paper). Samples come in antithetic pairs ``(z, -z)`` and the estimate is
    symmetrised; the mean of the same gradients is SmoothGrad
    (Smilkov et al. 2017), returned at no extra cost with ``return_gradient``.

    ``sigma`` is a **standard deviation**. The authors' code passes a
    *variance* (its ``std`` argument is square-rooted before use), so their
    ``std=v`` is ``sigma=sqrt(v)`` here. Their experiments use about 1e5
    gradient calls per MNIST point and grid-search ``sigma`` to minimise the
    P-MSE (:func:`captum_higher_order.metrics.taylor_pmse`).

    Dense results are ``(B, F, F)`` over the flattened features of all inputs;
    above ``max_features`` the call is refused with an error that asks for a
    ``feature_mask`` (a documented choice: we do not return a low-rank
    operator). With a ``feature_mask`` the result is the group matrix
    ``P^T H_sigma P`` of shape ``(B, G, G)``, accumulated from projected
    factors so that no ``d x d`` matrix is ever formed.

    Noise: every input of a call shares the same draws ``z_k`` (common random
    numbers), drawn in blocks from generators derived from one seed, so the
    result for an input does not depend on ``batch_size`` or on the other
    inputs. ``generator=None`` draws that seed from torch's global RNG, so
    ``torch.manual_seed`` makes a call reproducible, as with ``NoiseTunnel``.

    Args:
        forward_func (Callable): The model or function, called as
            ``forward_func(*inputs, *additional_forward_args)``; returns
            ``(B,)`` or ``(B, C)``.

    Examples::

        >>> # Torop et al. 2023: interactions of a ReLU network
        >>> import torch
        >>> from captum_higher_order.attr.smooth_hess import SmoothHess
        >>> model = torch.nn.Sequential(torch.nn.Linear(6, 32), torch.nn.ReLU(),
        ...                             torch.nn.Linear(32, 3)).eval()
        >>> x = torch.randn(4, 6)
        >>> sh = SmoothHess(model)
        >>> hess, grad, err = sh.attribute(x, target=1, sigma=0.5, n_samples=512,
        ...                                return_gradient=True, return_stderr=True,
        ...                                generator=0)
        >>> hess.shape, grad.shape, err.shape
        (torch.Size([4, 6, 6]), torch.Size([4, 6]), torch.Size([4, 6, 6]))
    """

    def __init__(self, forward_func: Callable[..., Tensor]) -> None:
        GradientAttribution.__init__(self, forward_func)

    @log_usage()
    def attribute(  # type: ignore[override]
        self,
        inputs: TensorOrTuple,
        target: TargetType = None,
        additional_forward_args: Any = None,
        objective: str = "output",
        sigma: SigmaType = 0.1,
        n_samples: int = 256,
        antithetic: bool = True,
        symmetrize: bool = True,
        feature_mask: Union[None, Tensor, Tuple[Tensor, ...]] = None,
        batch_size: Optional[int] = None,
        return_gradient: bool = False,
        return_stderr: bool = False,
        generator: GeneratorType = None,
        max_features: int = DEFAULT_MAX_DENSE_FEATURES,
        show_progress: bool = False,
    ) -> Union[Tensor, Tuple[Any, ...]]:
        r"""Estimate the smoothed Hessian ``H_sigma`` at each input.

        Args:
            inputs (Tensor or tuple[Tensor, ...]): Inputs with the batch in dim 0.
            target (int, tuple, Tensor or list, optional): Captum target: the
                output to explain per sample. With ``None`` and a class
                objective, the class predicted at the clean input (fixed
                before any noise is added). Default: None
            additional_forward_args (Any, optional): Passed to
                ``forward_func`` after the inputs; batched tensors are
                repeated with the noisy copies. Default: None
            objective (str, optional): The scalar that is smoothed:
                ``"output"``, ``"log_softmax"``, ``"softmax"`` or
                ``"cross_entropy"``. Default: ``"output"``
            sigma (float, Tensor or tuple[Tensor, ...], optional): Standard
                deviation of the Gaussian (not a variance, unlike the authors'
                code). A float, or per-feature values: one tensor per input,
                broadcastable to it (sample shape, or with a batch dim).
                Tune it, e.g. by minimising P-MSE. Default: 0.1
            n_samples (int, optional): Gradient calls per input (noisy
                points). Even when ``antithetic``: ``n_samples / 2`` pairs.
                Default: 256
            antithetic (bool, optional): Use pairs ``(z, -z)``; lower variance
                at the same number of gradient calls. Default: True
            symmetrize (bool, optional): Return ``(M + M^T) / 2`` of the Stein
                estimate ``M``. Default: True
            feature_mask (Tensor or tuple[Tensor, ...], optional): Captum-style
                integer group ids, broadcastable to each input (first dim 1 or
                B), ids shared across the tuple. The result is then
                ``(B, G, G)`` with entry ``1_a^T H_sigma 1_b``. Default: None
            batch_size (int, optional): Noisy points per forward/backward
                pass, over inputs and samples together. None picks it from a
                memory budget (see :func:`captum_higher_order.hessian.memory_budget`).
                Default: None
            return_gradient (bool, optional): Also return SmoothGrad, the mean
                of the same gradients, shaped like ``inputs``. Default: False
            return_stderr (bool, optional): Also return the Monte-Carlo
                standard error of every entry, ``(B, F, F)`` or ``(B, G, G)``.
                Needs at least two samples (pairs). Default: False
            generator (int or torch.Generator, optional): Seed or generator
                for the noise; None uses torch's global RNG. Default: None
            max_features (int, optional): Largest ``F`` for a dense result
                without ``feature_mask``; above it a ValueError asks for one.
                Default: 4096
            show_progress (bool, optional): Show a tqdm progress bar over
                passes. Default: False

        Returns:
            Tensor or tuple: ``interactions`` of shape ``(B, F, F)`` (or
            ``(B, G, G)``); with ``return_gradient`` and/or ``return_stderr`` a
            tuple ``(interactions[, smoothgrad][, stderr])`` in that order.

        Examples::

            >>> # SmoothHess, Torop et al. 2023, grouped over 4 image quadrants
            >>> import torch
            >>> from captum_higher_order.attr.smooth_hess import SmoothHess
            >>> model = torch.nn.Sequential(
            ...     torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(),
            ...     torch.nn.Flatten(), torch.nn.Linear(256, 3)).eval()
            >>> x = torch.randn(2, 1, 8, 8)
            >>> mask = (torch.arange(8) // 4).view(8, 1) * 2 + torch.arange(8) // 4
            >>> h = SmoothHess(model).attribute(x, target=0, sigma=0.3,
            ...     n_samples=64, feature_mask=mask.view(1, 1, 8, 8), generator=0)
            >>> h.shape
            torch.Size([2, 4, 4])
        """
        forward_func = self.forward_func
        check_objective(objective)
        check_model_state(forward_func)
        units = _check_counts(n_samples, antithetic, batch_size)
        if return_stderr and units < 2:
            raise ValueError(
                "return_stderr needs at least two Monte-Carlo units (pairs when "
                "antithetic=True): raise n_samples."
            )
        fmt = format_inputs(inputs, additional_forward_args)
        groups = format_feature_mask(feature_mask, fmt)
        if groups is None:
            check_dense_size(fmt.num_features, max_features, "The SmoothHess matrix")
        else:
            check_dense_size(groups.num_groups, max_features, "The group SmoothHess matrix")
        scale = _format_sigma(sigma, fmt)
        # The class to explain is fixed at the clean input, before any noise.
        target_t = resolve_target(
            forward_func, fmt, format_target(target, fmt.batch_size), objective
        )
        noise = NoiseStream(base_seed(generator), fmt.num_features, fmt.dtype, fmt.device)
        rows_per_unit = 2 if antithetic else 1
        if batch_size is None:
            batch_size = _auto_batch_size(forward_func, fmt, target_t, objective)
        return _smooth_hess(
            forward_func, fmt, target_t, objective, scale, noise, units, rows_per_unit,
            groups, symmetrize, batch_size, return_gradient, return_stderr, show_progress,
        )


# --------------------------------------------------------------------------- the algorithm


def _smooth_hess(
    forward_func: Callable[..., Tensor],
    fmt: FormattedInputs,
    target: Optional[Tensor],
    objective: str,
    scale: Union[float, Tensor],
    noise: NoiseStream,
    units: int,
    rows_per_unit: int,
    groups: Optional[FeatureGroups],
    symmetrize: bool,
    batch_size: int,
    return_gradient: bool,
    return_stderr: bool,
    show_progress: bool,
) -> Union[Tensor, Tuple[Any, ...]]:
    batch, num_features = fmt.batch_size, fmt.num_features
    # A pass holds `inputs_per_pass` inputs x `units_per_pass` units x
    # rows_per_unit noisy points.
    budget_units = max(1, batch_size // rows_per_unit)
    inputs_per_pass = min(batch, budget_units)
    units_per_pass = max(1, min(units, budget_units // inputs_per_pass))
    passes = math.ceil(batch / inputs_per_pass) * math.ceil(units / units_per_pass)
    progress = (
        progress_bar(passes, "SmoothHess", "pass")
        if show_progress
        else inner_progress(passes, "SmoothHess", "pass")
    )
    size = num_features if groups is None else groups.num_groups

    factor = score_factor(units, rows_per_unit == 2, symmetrize)
    hessians, gradients, errors = [], [], []
    try:
        for b0 in range(0, batch, inputs_per_pass):
            b1 = min(batch, b0 + inputs_per_pass)
            block = _Block(forward_func, slice_samples(fmt, b0, b1),
                           None if target is None else target[b0:b1], objective)
            block_scale = scale if isinstance(scale, float) or scale.shape[0] == 1 else scale[b0:b1]
            block_groups = _slice_groups(groups, b0, b1)
            acc = _Accumulator(b1 - b0, size, fmt.dtype, fmt.device, return_stderr)
            grad_sum = torch.zeros(b1 - b0, num_features, dtype=fmt.dtype, device=fmt.device)
            for k0 in range(0, units, units_per_pass):
                k1 = min(units, k0 + units_per_pass)
                a, w = block.stein_factors(
                    block_scale, noise.draw(k0, k1), rows_per_unit == 2, block_groups,
                    grad_sum if return_gradient else None, factor,
                )
                acc.add(a, w)
                del a, w
                progress.update(1)
            hess, err = _finish(acc, units, symmetrize)
            hessians.append(hess)
            errors.append(err)
            gradients.append(grad_sum / (units * rows_per_unit))
    finally:
        progress.close()

    result: List[Any] = [_cat(hessians)]
    if return_gradient:
        smoothgrad = fmt.unflatten(_cat(gradients))
        result.append(fmt.format_like_inputs(smoothgrad))
    if return_stderr:
        result.append(_cat([e for e in errors if e is not None]))
    return result[0] if len(result) == 1 else tuple(result)


def _cat(blocks: List[Tensor]) -> Tensor:
    return blocks[0] if len(blocks) == 1 else torch.cat(blocks)


class _Block:
    """A block of inputs and the gradients of their objective at noisy points."""

    def __init__(
        self,
        forward_func: Callable[..., Tensor],
        block: FormattedInputs,
        target: Optional[Tensor],
        objective: str,
    ) -> None:
        self.forward_func, self.fmt, self.target, self.objective = (
            forward_func, block, target, objective,
        )
        self.x = block.flatten(block.inputs)  # (b, F)
        self._expanded: dict = {}

    def _rows(self, m: int) -> Tuple[Any, Optional[Tensor]]:
        """Extra args and targets repeated ``m`` times per input (cached: the
        chunk size changes at most once, for the last chunk)."""
        if m not in self._expanded:
            # expand_samples on the args only; the inputs are built with noise.
            args_only = FormattedInputs(
                (), self.fmt.is_tuple, self.fmt.additional_forward_args, self.fmt.batch_size
            )
            args = expand_samples(args_only, m).additional_forward_args
            self._expanded[m] = (args, expand_target(self.target, m))
        return self._expanded[m]

    def gradients(self, points: Tensor) -> Tensor:
        """Objective gradients at ``points`` ``(b, m, F)``, same shape.

        First order only. The noisy points are fresh tensors of ours, so they
        are made leaves that require grad directly (no copy, no re-validation
        of every row as :func:`~captum_higher_order.hessian.value_and_grad`
        does for user inputs)."""
        nb, m, num = points.shape
        args, target = self._rows(m)
        xs = tuple(t.requires_grad_(True) for t in self.fmt.unflatten(points.view(nb * m, num)))
        with torch.enable_grad():
            values = select_objective(run_forward(self.forward_func, xs, args), target,
                                      self.objective)
            grads = torch.autograd.grad(values.sum(), xs, allow_unused=True)
        grads = tuple(torch.zeros_like(x) if g is None else g for g, x in zip(grads, xs))
        if len(grads) == 1:
            return grads[0].reshape(nb, m, num)
        return self.fmt.flatten(grads).view(nb, m, num)

    def stein_factors(
        self,
        scale: Union[float, Tensor],
        z: Tensor,
        antithetic: bool,
        groups: Optional[FeatureGroups],
        grad_sum: Optional[Tensor],
        factor: float,
    ) -> Tuple[Tensor, Tensor]:
        """For draws ``z`` ``(k, F)``: the gradient factor ``a`` ``(b, k, S)``
        and score ``w`` ``(1 or b, k, S)`` of each unit, with ``S = G`` when
        ``groups`` projects them and ``F`` otherwise; adds the sum of all
        gradients ``(b, F)`` to ``grad_sum`` when given (SmoothGrad). ``w``
        comes multiplied by ``factor`` (:func:`score_factor`) and ``a`` of a
        pair is ``g(x + eps) - g(x - eps)``: the pair's ``1/2`` is in ``factor``.

        Work beyond the gradient batch, which is what NoiseTunnel's SmoothGrad
        does too: one pass over the gradients (the antithetic difference in
        place, or the group projection of all rows at once, whose ``(b, 2k, G)``
        result is then differenced), and the ``(k, F)`` score, shared by the
        inputs when ``sigma`` is."""
        k = z.shape[0]
        s = scale if isinstance(scale, float) else scale.unsqueeze(1)  # (1 or b, 1, F)
        eps = (z * s) if isinstance(s, float) else z.unsqueeze(0) * s
        # w = eps / s^2 = z / s, times the accumulator's constant factor
        w = (z * (factor / s)).unsqueeze(0) if isinstance(s, float) else (
            z.unsqueeze(0) * (factor / s))
        eps = eps if eps.dim() == 3 else eps.unsqueeze(0)
        x = self.x.unsqueeze(1)  # (b, 1, F)
        nb, num = self.x.shape
        points = torch.empty(nb, 2 * k if antithetic else k, num, dtype=z.dtype,
                             device=z.device)
        torch.add(x, eps, out=points[:, :k])
        if antithetic:
            torch.sub(x, eps, out=points[:, k:])  # pairs: rows j and k + j
        del eps
        g = self.gradients(points)
        del points
        if grad_sum is not None:
            grad_sum += g.sum(dim=1)
        if groups is not None:
            g, w = _project(groups, g), _project(groups, w)
        if antithetic:
            # (g(x+eps) w^T + g(x-eps) (-w)^T) / 2: the g(x) w^T term cancels.
            # In place: no second (b, k, F) buffer; the 1/2 is in `factor`.
            g = g[:, :k].sub_(g[:, k:])
        return g, w


def _slice_groups(
    groups: Optional[FeatureGroups], start: int, stop: int
) -> Optional[FeatureGroups]:
    if groups is None or groups.index.shape[0] == 1:
        return groups
    return FeatureGroups(groups.index[start:stop], groups.ids)


def _project(groups: FeatureGroups, flat: Tensor) -> Tensor:
    """``P^T v`` for ``(b, k, F)`` factors (groups' batch dim is ``b``) in one
    scatter over the contiguous rows; a shared ``(1, k, F)`` factor is
    expanded for per-sample masks."""
    nb, k, num = flat.shape
    index = groups.index.to(flat.device)
    if index.shape[0] > 1:
        if nb == 1:
            flat = flat.expand(index.shape[0], -1, -1)
            nb = index.shape[0]
        index = index.unsqueeze(1)  # (b, 1, F)
    out = torch.zeros(nb, k, groups.num_groups, dtype=flat.dtype, device=flat.device)
    return out.scatter_add_(-1, index.expand(nb, k, num), flat)


def _auto_batch_size(
    forward_func: Callable[..., Tensor],
    fmt: FormattedInputs,
    target: Optional[Tensor],
    objective: str,
) -> int:
    """Noisy points per pass under the memory budget: each point costs the
    activations one forward pass saves for backward (measured on the first
    input) plus a few copies of the input."""
    one = slice_samples(fmt, 0, 1)
    problem = Problem(forward_func, one, None if target is None else target[:1], objective)
    per_row = saved_bytes(problem.total, one.inputs)
    per_row += 8 * fmt.num_features * fmt.inputs[0].element_size()
    budget = resolve_budget(None, fmt.device)
    return int(max(2, budget // max(per_row, 1)))

