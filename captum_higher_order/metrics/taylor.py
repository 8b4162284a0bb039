"""Taylor-model quality: the perturbation mean-squared error (P-MSE).

Torop, Masoomi et al. (NeurIPS 2023, Sec. 5.1) score a gradient ``g`` and a
Hessian ``H`` at ``x`` by how well the local Taylor model predicts the model in
a ball of radius ``r``::

    P-MSE(r) = E_{D ~ U(B_r)} [ (f(x + D) - f(x) - g^T D - 1/2 D^T H D)^2 ]

with ``D`` uniform in the ball's *volume*. We draw ``D = r * U^(1/d) * u``
with ``u`` uniform on the unit sphere and ``U ~ U(0, 1)``, so that
``P(|D| <= rho) = (rho / r)^d``. The authors' code (``SampleFromBall``) draws
the radius uniformly, ``r * U``: that puts as many points at ``|D| < r/2`` as
beyond it, although the shell ``r/2 < |D| <= r`` holds a fraction
``1 - 2^-d`` of the volume, so it under-samples the outer shell (and its
P-MSE is smaller than the volume average, more so in high dimension).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional, Union

import torch
from torch import Tensor

from captum_higher_order._inputs import (
    FormattedInputs,
    TargetType,
    TensorOrTuple,
    check_model_state,
    check_objective,
    expand_samples,
    expand_target,
    format_inputs,
    format_target,
    resolve_target,
    run_forward,
    select_objective,
    slice_samples,
)
from captum_higher_order._noise import GeneratorType, NoiseStream, base_seed
from captum_higher_order._numeric import positive_floor

__all__ = ["taylor_pmse", "sample_ball"]

#: Noisy points per forward pass when ``batch_size`` is None.
DEFAULT_ROWS_PER_PASS = 1024


def sample_ball(
    n: int,
    dim: int,
    radius: float,
    generator: GeneratorType = None,
    dtype: torch.dtype = torch.float32,
    device: Union[str, torch.device] = "cpu",
) -> Tensor:
    r"""``n`` points uniform in the volume of the ``dim``-ball of ``radius``.

    ``D = radius * U^(1/dim) * z / |z|`` with ``z ~ N(0, I)``, ``U ~ U(0, 1)``
    (the uniform is ``Phi`` of one more normal draw, so one noise stream serves
    both). The same seed gives the same points as :func:`taylor_pmse` uses.

    Args:
        n (int): Number of points.
        dim (int): Dimension.
        radius (float): Ball radius.
        generator (int or torch.Generator, optional): Seed or generator; None
            uses torch's global RNG. Default: None
        dtype (torch.dtype, optional): Default: torch.float32
        device (str or torch.device, optional): Default: ``"cpu"``

    Returns:
        Tensor: ``(n, dim)``.

    Examples::

        >>> from captum_higher_order.metrics.taylor import sample_ball
        >>> d = sample_ball(1000, 8, radius=2.0, generator=0)
        >>> bool((d.norm(dim=1) <= 2.0).all())
        True
    """
    stream = NoiseStream(base_seed(generator), dim + 1, dtype, torch.device(device))
    return _ball_points(stream.draw(0, n), radius)


def _ball_points(z: Tensor, radius: float) -> Tensor:
    """``(k, d + 1)`` normals to ``(k, d)`` points uniform in the ball."""
    direction, last = z[:, :-1], z[:, -1:]
    dim = direction.shape[1]
    uniform = 0.5 * (1 + torch.erf(last / math.sqrt(2)))
    rho = radius * uniform.pow(1.0 / dim)
    return direction / positive_floor(direction.norm(dim=1, keepdim=True)) * rho


def _flat_gradient(gradient: TensorOrTuple, fmt: FormattedInputs) -> Tensor:
    parts = (gradient,) if isinstance(gradient, Tensor) else gradient
    batch, num = fmt.batch_size, fmt.num_features
    if isinstance(parts, tuple) and len(parts) == 1 and parts[0].shape == (batch, num):
        return parts[0].detach().to(fmt.dtype)
    if (
        not isinstance(parts, tuple)
        or len(parts) != len(fmt.inputs)
        or any(g.shape != x.shape for g, x in zip(parts, fmt.inputs))
    ):
        raise ValueError(
            "`gradient` must have the structure and shapes of `inputs` (as "
            f"returned by Saliency or SmoothHess) or be flat ({batch}, {num})."
        )
    return fmt.flatten([g.detach().to(fmt.dtype) for g in parts])


def taylor_pmse(
    forward_func: Callable[..., Tensor],
    inputs: TensorOrTuple,
    gradient: TensorOrTuple,
    hessian: Optional[Tensor],
    radius: float,
    n_perturbations: int = 1000,
    target: TargetType = None,
    additional_forward_args: Any = None,
    objective: str = "output",
    batch_size: Optional[int] = None,
    generator: GeneratorType = None,
) -> Tensor:
    r"""Perturbation MSE of the first- or second-order Taylor model per input
    (Torop, Masoomi et al., NeurIPS 2023).

    ``mean_k (f(x + D_k) - f(x) - g^T D_k - 1/2 D_k^T H D_k)^2`` over
    ``n_perturbations`` points ``D_k`` uniform in the volume of the ball of
    ``radius`` around ``x`` (see the module docstring for why this differs from
    the authors' code). ``hessian=None`` scores the first-order model. Every
    input sees the same ``D_k`` for a given seed, so two explanations scored
    with one seed are compared on the same points.

    Args:
        forward_func (Callable): The model or function.
        inputs (Tensor or tuple[Tensor, ...]): Inputs, batch in dim 0.
        gradient (Tensor or tuple[Tensor, ...]): First-order term, shaped like
            ``inputs`` (e.g. a Saliency or SmoothGrad map) or flat ``(B, F)``.
        hessian (Tensor or None): ``(B, F, F)`` over the flattened features,
            or None for the first-order model.
        radius (float): Radius of the ball.
        n_perturbations (int, optional): Points per input. Default: 1000
        target (int, tuple, Tensor or list, optional): Captum target; None with
            a class objective uses the class predicted at the clean input.
            Default: None
        additional_forward_args (Any, optional): Extra forward arguments.
            Default: None
        objective (str, optional): The scalar that is modelled, as in the
            attribution methods. Default: ``"output"``
        batch_size (int, optional): Perturbed points per forward pass.
            Default: None (1024)
        generator (int or torch.Generator, optional): Seed or generator for the
            perturbations; None uses torch's global RNG. Default: None

    Returns:
        Tensor: ``(B,)`` P-MSE per input.

    Examples::

        >>> # P-MSE of SmoothHess + SmoothGrad vs SmoothGrad (Torop et al. 2023)
        >>> import torch
        >>> from captum_higher_order.attr.smooth_hess import SmoothHess
        >>> from captum_higher_order.metrics.taylor import taylor_pmse
        >>> model = torch.nn.Sequential(torch.nn.Linear(5, 32), torch.nn.ReLU(),
        ...                             torch.nn.Linear(32, 1)).eval()
        >>> x = torch.randn(3, 5)
        >>> h, g = SmoothHess(model).attribute(x, sigma=0.3, n_samples=512,
        ...                                    return_gradient=True, generator=0)
        >>> second = taylor_pmse(model, x, g, h, radius=0.5, generator=1)
        >>> first = taylor_pmse(model, x, g, None, radius=0.5, generator=1)
        >>> second.shape
        torch.Size([3])
    """
    check_objective(objective)
    check_model_state(forward_func)
    if not (isinstance(radius, (int, float)) and math.isfinite(radius) and radius > 0):
        raise ValueError(f"`radius` must be a positive float, got {radius!r}.")
    n_ok = isinstance(n_perturbations, int) and not isinstance(n_perturbations, bool)
    if not n_ok or n_perturbations < 1:
        raise ValueError(f"`n_perturbations` must be a positive int, got {n_perturbations!r}.")
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"`batch_size` must be None or a positive int, got {batch_size!r}.")
    fmt = format_inputs(inputs, additional_forward_args)
    batch, num = fmt.batch_size, fmt.num_features
    grad = _flat_gradient(gradient, fmt)
    hess = None
    if hessian is not None:
        if not isinstance(hessian, Tensor) or hessian.shape != (batch, num, num):
            shape = tuple(hessian.shape) if isinstance(hessian, Tensor) else type(hessian).__name__
            raise ValueError(
                f"`hessian` must be ({batch}, {num}, {num}) over the flattened "
                f"features (group Hessians cannot score a perturbation), got {shape}."
            )
        hess = hessian.detach().to(fmt.dtype)
    target_t = resolve_target(forward_func, fmt, format_target(target, batch), objective)
    stream = NoiseStream(base_seed(generator), num + 1, fmt.dtype, fmt.device)
    rows = batch_size or DEFAULT_ROWS_PER_PASS
    inputs_per_pass = min(batch, rows)
    per_pass = max(1, min(n_perturbations, rows // inputs_per_pass))

    with torch.no_grad():
        f_x = select_objective(
            run_forward(forward_func, fmt.inputs, fmt.additional_forward_args),
            target_t, objective,
        )
        total = torch.zeros(batch, dtype=fmt.dtype, device=fmt.device)
        for b0 in range(0, batch, inputs_per_pass):
            b1 = min(batch, b0 + inputs_per_pass)
            block = slice_samples(fmt, b0, b1)
            block_target = None if target_t is None else target_t[b0:b1]
            block_hess = None if hess is None else hess[b0:b1]
            for k0 in range(0, n_perturbations, per_pass):
                k1 = min(n_perturbations, k0 + per_pass)
                points = _ball_points(stream.draw(k0, k1), float(radius))  # (k, F)
                total[b0:b1] += _squared_residuals(
                    forward_func, block, block_target, objective, points,
                    f_x[b0:b1], grad[b0:b1], block_hess,
                ).sum(dim=1)
    return total / n_perturbations


def _squared_residuals(
    forward_func: Callable[..., Tensor],
    block: FormattedInputs,
    target: Optional[Tensor],
    objective: str,
    points: Tensor,
    f_x: Tensor,
    grad: Tensor,
    hess: Optional[Tensor],
) -> Tensor:
    """``(f(x + D) - Taylor(D))^2``, ``(b, k)``, for a block of ``b`` inputs and
    the ``(k, F)`` points shared by all of them."""
    nb, k = block.batch_size, points.shape[0]
    expanded = expand_samples(block, k)  # row b * k + j is input b moved by D_j
    flat = expanded.flatten(expanded.inputs).view(nb, k, -1) + points
    values = select_objective(
        run_forward(forward_func, expanded.unflatten(flat.view(nb * k, -1)),
                    expanded.additional_forward_args),
        expand_target(target, k), objective,
    ).view(nb, k)
    model = f_x.unsqueeze(1) + grad @ points.T  # (b, k)
    if hess is not None:
        model = model + 0.5 * torch.einsum("kf,bfg,kg->bk", points, hess, points)
    return (values - model) ** 2
