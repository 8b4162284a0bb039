"""Hessian spectra and the rank-one analysis of Singla et al. (2019).

Singla, Wallace, Feng and Feizi, "Understanding Impacts of High-Order Loss
Approximations and Features in Deep Learning Interpretation", ICML 2019.

For a network that is piecewise linear in its input (ReLU, max-pool, linear
layers, eval-mode batch-norm) with logits ``z = f(x)``, ``p = softmax(z)`` and
logit Jacobian ``J``, the Hessian of the cross-entropy loss is

    H = J^T (diag(p) - p p^T) J                                   (Singla et al.)

because the logits have zero curvature almost everywhere. When the predicted
class has probability near one and there are many classes, ``diag(p) - p p^T``
is nearly rank one, so ``H`` is nearly rank one with its top eigenvector almost
parallel to the gradient ``g = J^T (p - e_y)``: the second-order CASO map then
barely differs from the gradient. :func:`hessian_spectrum` reports, per sample,
the confidence, the top eigenvalues and ``|cos(v_1, g)|`` so a user can see
where curvature matters; :func:`closed_form_check` tests the formula on a model.

:func:`caso_display_map` turns a CASO map into the authors' display: ``|d|``
summed over colour channels and clipped at a percentile.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, NamedTuple, Optional, Union

import torch
from torch import Tensor

from captum_higher_order._inputs import (
    TargetType,
    TensorOrTuple,
    check_dense_size,
    format_inputs,
    format_target,
    run_forward,
)
from captum_higher_order._numeric import positive_floor
from captum_higher_order.attr.second_order_saliency import caso_problem
from captum_higher_order.hessian import DEFAULT_MAX_DENSE_FEATURES, hessian
from captum_higher_order.hessian.engine import warn_if_zero_curvature
from captum_higher_order.hessian.lanczos import lanczos

__all__ = [
    "SpectrumReport",
    "hessian_spectrum",
    "softmax_gauss_newton",
    "ClosedFormCheck",
    "closed_form_check",
    "caso_display_map",
]


class SpectrumReport(NamedTuple):
    """Per-sample curvature report of :func:`hessian_spectrum`.

    Attributes:
        target (Tensor): ``(B,)`` the class whose loss was analysed.
        probability (Tensor): ``(B,)`` its softmax probability (the confidence
            when ``target`` is the predicted class).
        eigenvalues (Tensor): ``(B, k)`` the top-``k`` Hessian eigenvalues of
            the objective, largest first.
        alignment (Tensor): ``(B,)`` ``|cos(v_1, g)|`` between the top
            eigenvector and the gradient (0 where ``g = 0``).
        gradient_norm (Tensor): ``(B,)`` ``||g||``.
        residuals (Tensor): ``(B, k)`` Lanczos residuals ``||H v - lambda v||``.
    """

    target: Tensor
    probability: Tensor
    eigenvalues: Tensor
    alignment: Tensor
    gradient_norm: Tensor
    residuals: Tensor


def _flat(fmt: Any, tensors: TensorOrTuple, lead: int = 1) -> Tensor:
    tup = tensors if isinstance(tensors, tuple) else (tensors,)
    return fmt.flatten(tup, lead=lead)


def hessian_spectrum(
    forward_func: Callable[..., Tensor],
    inputs: TensorOrTuple,
    k: int = 5,
    target: TargetType = None,
    additional_forward_args: Any = None,
    objective: str = "cross_entropy",
    mode: str = "auto",
    tol: Optional[float] = None,
    max_iter: Optional[int] = None,
    seed: int = 0,
) -> SpectrumReport:
    r"""Confidence, top Hessian eigenvalues and gradient alignment per sample.

    The quantities of Singla et al.'s rank-one theorem: for a confident
    prediction among many classes, ``eigenvalues[:, 0]`` dominates the rest and
    ``alignment`` is close to 1, so curvature-aware maps (CASO) equal the
    gradient up to scale; low-confidence inputs are where they differ.
    Eigenpairs come from the engine's batched Lanczos (``k`` largest algebraic),
    run on a rescaled Hessian so tiny float32 loss Hessians are resolved too.

    Args:
        forward_func (Callable): The model, returning ``(B, C)`` class scores.
        inputs (Tensor or tuple[Tensor, ...]): Inputs with the batch in dim 0.
        k (int, optional): Eigenvalues per sample. Default: 5
        target (int, tuple, Tensor or list, optional): Captum target; None uses
            the predicted class. Default: None
        additional_forward_args (Any, optional): Extra forward arguments.
            Default: None
        objective (str, optional): The differentiated loss. Default:
            ``"cross_entropy"``
        mode (str, optional): HVP mode (``"auto"``, ``"fwd_rev"``, ``"rev_rev"``,
            ``"ggn"``). Default: ``"auto"``
        tol (float, optional): Lanczos relative residual tolerance.
            Default: 1e-6 for float64 inputs, 1e-4 otherwise
        max_iter (int, optional): Lanczos steps. Default: ``min(F, max(60, 6k))``
        seed (int, optional): Lanczos start-vector seed. Default: 0

    Returns:
        SpectrumReport: ``target``, ``probability``, ``eigenvalues``,
        ``alignment``, ``gradient_norm`` and ``residuals``.

    Examples::

        >>> # Singla et al. (2019): confident predictions give rank-one Hessians.
        >>> import torch
        >>> from captum_higher_order.analysis import hessian_spectrum
        >>> model = torch.nn.Sequential(torch.nn.Linear(20, 64), torch.nn.ReLU(),
        ...                             torch.nn.Linear(64, 50)).eval()
        >>> report = hessian_spectrum(model, torch.randn(3, 20), k=3)
        >>> report.eigenvalues.shape, report.alignment.shape
        (torch.Size([3, 3]), torch.Size([3]))
    """
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"`k` must be a positive int, got {k!r}.")
    problem, g, operator = caso_problem(
        forward_func, inputs, target, additional_forward_args, objective, mode
    )
    fmt = problem.fmt
    n = fmt.num_features
    if k > n:
        raise ValueError(f"k={k} is more than the number of features ({n}).")
    with torch.no_grad():
        logits = run_forward(forward_func, fmt.inputs, fmt.additional_forward_args)
    if logits.dim() != 2 or logits.shape[1] < 2:
        raise ValueError(
            "hessian_spectrum needs class scores of shape (B, C) with C >= 2, got "
            f"{tuple(logits.shape)}."
        )
    resolved = problem.target
    assert resolved is not None  # (B, C) outputs always resolve to a class
    index = resolved.to(logits.device).view(-1, 1)
    probability = torch.softmax(logits, dim=1).gather(1, index).squeeze(1)
    if tol is None:
        tol = 1e-6 if fmt.dtype == torch.float64 else 1e-4
    steps = max_iter if max_iter is not None else min(n, max(60, 6 * k))
    steps = max(k, min(steps, n))
    values, vectors, residuals, _ = lanczos(operator, k, "LA", tol, steps, seed)
    top = positive_floor(values.abs().amax(dim=1, keepdim=True))
    if bool((residuals > 10 * tol * top).any()):
        warnings.warn(
            f"Lanczos did not reach tol={tol} in {steps} steps (largest residual "
            f"{float(residuals.max()):.2e}); raise max_iter.",
            stacklevel=2,
        )
    warn_if_zero_curvature(values, objective)
    v1 = vectors[:, 0]
    g_norm = g.norm(dim=1)
    cos = (v1 * g).sum(dim=1).abs() / positive_floor(v1.norm(dim=1) * g_norm)
    alignment = torch.where(g_norm > 0, cos, torch.zeros_like(cos))
    return SpectrumReport(
        resolved.cpu(), probability.detach(), values, alignment.detach(),
        g_norm.detach(), residuals,
    )


# --------------------------------------------------------------------------- closed form


def _logit_jacobian(
    forward_func: Callable[..., Tensor], fmt: Any
) -> tuple:
    """Logits ``(B, C)`` and their input Jacobian ``(B, C, F)`` (first order:
    one backward per class; samples are independent, so the batch sum of each
    logit column gives every sample's row)."""
    xs = tuple(x.clone().requires_grad_(True) for x in fmt.inputs)
    with torch.enable_grad():
        z = run_forward(forward_func, xs, fmt.additional_forward_args)
        if z.dim() != 2 or z.shape[1] < 2:
            raise ValueError(
                "The closed form needs class scores of shape (B, C) with C >= 2, got "
                f"{tuple(z.shape)}."
            )
        rows = []
        for c in range(z.shape[1]):
            grads = torch.autograd.grad(
                z[:, c].sum(), xs, retain_graph=c + 1 < z.shape[1], allow_unused=True
            )
            grads = tuple(
                torch.zeros_like(x) if gr is None else gr for gr, x in zip(grads, xs)
            )
            rows.append(fmt.flatten(grads))
    return z.detach(), torch.stack(rows, dim=1).detach()


def softmax_gauss_newton(
    forward_func: Callable[..., Tensor],
    inputs: TensorOrTuple,
    target: TargetType = None,
    additional_forward_args: Any = None,
    max_features: int = DEFAULT_MAX_DENSE_FEATURES,
) -> Tensor:
    r"""The closed form ``J^T (diag(p) - p p^T) J`` per sample, ``(B, F, F)``.

    Singla et al. (2019) show that it equals the input Hessian of the
    cross-entropy loss for networks that are piecewise linear in the input. It
    does not depend on the target class (only ``p`` does); ``target`` is
    accepted for symmetry with :func:`closed_form_check` and validated.

    Args:
        forward_func (Callable): The model, returning ``(B, C)`` logits.
        inputs (Tensor or tuple[Tensor, ...]): Inputs with the batch in dim 0.
        target (int, tuple, Tensor or list, optional): Captum target (unused
            by the formula). Default: None
        additional_forward_args (Any, optional): Extra forward arguments.
            Default: None
        max_features (int, optional): Largest ``F`` for the dense result.
            Default: 4096

    Returns:
        Tensor: ``(B, F, F)``.

    Examples::

        >>> import torch
        >>> from captum_higher_order.analysis import softmax_gauss_newton
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(),
        ...                             torch.nn.Linear(8, 3)).eval()
        >>> softmax_gauss_newton(model, torch.randn(2, 4)).shape
        torch.Size([2, 4, 4])
    """
    fmt = format_inputs(inputs, additional_forward_args)
    check_dense_size(fmt.num_features, max_features, "The closed-form Hessian")
    format_target(target, fmt.batch_size)
    z, jac = _logit_jacobian(forward_func, fmt)
    p = torch.softmax(z, dim=1)
    middle = torch.diag_embed(p) - p.unsqueeze(2) * p.unsqueeze(1)  # (B, C, C)
    return jac.transpose(1, 2) @ middle @ jac


class ClosedFormCheck(NamedTuple):
    """Result of :func:`closed_form_check`.

    Attributes:
        closed_form (Tensor): ``(B, F, F)`` ``J^T (diag(p) - p p^T) J``.
        exact (Tensor): ``(B, F, F)`` the exact cross-entropy Hessian (engine,
            true second derivatives, not the Gauss-Newton mode).
        relative_error (Tensor): ``(B,)`` Frobenius ``||exact - closed|| /
            ||exact||``: rounding level for piecewise-linear networks, large
            for smooth ones (the logits' own curvature is missing).
    """

    closed_form: Tensor
    exact: Tensor
    relative_error: Tensor


def closed_form_check(
    forward_func: Callable[..., Tensor],
    inputs: TensorOrTuple,
    target: TargetType = None,
    additional_forward_args: Any = None,
    mode: str = "auto",
    max_features: int = DEFAULT_MAX_DENSE_FEATURES,
) -> ClosedFormCheck:
    r"""Compare the exact cross-entropy Hessian with ``J^T (diag(p) - p p^T) J``.

    Args:
        forward_func (Callable): The model, returning ``(B, C)`` logits.
        inputs (Tensor or tuple[Tensor, ...]): Inputs with the batch in dim 0.
        target (int, tuple, Tensor or list, optional): Captum target; None uses
            the predicted class. Default: None
        additional_forward_args (Any, optional): Extra forward arguments.
            Default: None
        mode (str, optional): Exact HVP mode: ``"auto"``, ``"fwd_rev"`` or
            ``"rev_rev"`` (``"ggn"`` would compare the formula with itself).
            Default: ``"auto"``
        max_features (int, optional): Largest ``F`` for dense results.
            Default: 4096

    Returns:
        ClosedFormCheck: both matrices and the relative error per sample.

    Examples::

        >>> # Singla et al. (2019), H = J^T (diag(p) - p p^T) J for ReLU networks.
        >>> import torch
        >>> from captum_higher_order.analysis import closed_form_check
        >>> model = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.ReLU(),
        ...                             torch.nn.Linear(16, 4)).double().eval()
        >>> check = closed_form_check(model, torch.randn(3, 5, dtype=torch.float64))
        >>> bool((check.relative_error < 1e-10).all())
        True
    """
    if mode == "ggn":
        raise ValueError(
            "mode='ggn' computes the closed form itself; use 'auto', 'fwd_rev' or "
            "'rev_rev' for the exact Hessian."
        )
    closed = softmax_gauss_newton(
        forward_func, inputs, target, additional_forward_args, max_features
    )
    exact = hessian(
        forward_func, inputs, target=target,
        additional_forward_args=additional_forward_args, objective="cross_entropy",
        mode=mode, max_features=max_features,
    )
    err = (exact - closed).flatten(1).norm(dim=1)
    scale = positive_floor(exact.flatten(1).norm(dim=1))
    return ClosedFormCheck(closed, exact, err / scale)


# --------------------------------------------------------------------------- display


def caso_display_map(
    attributions: Union[Tensor, tuple],
    percentile: float = 99.0,
    channel_dim: int = 1,
) -> Tensor:
    r"""The CASO authors' display: ``|d|`` summed over channels, clipped at a
    per-sample percentile and scaled to ``[0, 1]``.

    The result is channels-last ``(B, H, W, 1)``, so one sample goes straight to
    Captum's ``visualize_image_attr`` (pass ``sign="positive"`` and
    ``outlier_perc=0``, since the clipping is already done).

    Args:
        attributions (Tensor): ``(B, C, H, W)`` maps (e.g. from
            SecondOrderSaliency or GroupSparseSaliency), or a 1-tuple of one.
        percentile (float, optional): Clip level in ``(0, 100]``. Default: 99.0
        channel_dim (int, optional): The channel dimension of ``attributions``.
            Default: 1

    Returns:
        Tensor: ``(B, H, W, 1)`` in ``[0, 1]`` (all zero for an all-zero map).

    Examples::

        >>> import torch
        >>> from captum.attr import visualization as viz
        >>> from captum_higher_order.analysis import caso_display_map
        >>> d = torch.randn(2, 3, 16, 16)
        >>> m = caso_display_map(d)
        >>> fig, ax = viz.visualize_image_attr(m[0].numpy(), method="heat_map",
        ...     sign="positive", outlier_perc=0, use_pyplot=False)
    """
    if isinstance(attributions, tuple):
        if len(attributions) != 1:
            raise ValueError(
                "caso_display_map takes one image map; call it per input tensor."
            )
        attributions = attributions[0]
    if not isinstance(attributions, Tensor):
        raise TypeError("`attributions` must be a Tensor of shape (B, C, H, W).")
    if attributions.dim() != 4:
        raise ValueError(
            f"`attributions` must be (B, C, H, W) image maps, got shape "
            f"{tuple(attributions.shape)}; add the batch dim with unsqueeze(0)."
        )
    if not 0 < percentile <= 100:
        raise ValueError(f"`percentile` must be in (0, 100], got {percentile}.")
    summed = attributions.detach().abs().sum(dim=channel_dim)  # (B, H, W)
    flat = summed.flatten(1).to(torch.float64)
    clip = torch.quantile(flat, percentile / 100.0, dim=1)
    clip = torch.where(clip > 0, clip, flat.amax(dim=1))
    scaled = torch.minimum(flat, clip.unsqueeze(1)) / positive_floor(clip).unsqueeze(1)
    return scaled.to(summed.dtype).view_as(summed).unsqueeze(-1)
