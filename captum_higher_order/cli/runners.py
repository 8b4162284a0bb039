"""How each ``captum-ho`` method is called on one batch (:class:`Context`).

One small function per method; each records the keyword arguments it used in
``ctx.settings`` so that the saved ``.pt`` says how every result was made.
SmoothHess and SmoothGrad come from the same noisy gradient calls: the first of
the two to run computes both, and ``ctx.owners`` remembers which one did, so
the timing line can say "shared with ..." instead of a misleading 0 s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional, Tuple

from captum.attr import IntegratedGradients, Saliency
from torch import Tensor, nn

from captum_higher_order import (
    CrossDerivatives,
    DTDRootCheck,
    GroupSparseSaliency,
    IntegratedHessians,
    SecondOrderSaliency,
    SmoothHess,
    TaylorCAM,
)
from captum_higher_order.hessian import hessian

__all__ = ["Context", "ExactHessian", "plain_settings"]


@dataclass
class Context:
    """What a method needs: the model, one batch, resolved targets and settings.

    ``objective`` None means each method's own CLI default (``MethodSpec.objective``);
    a string applies to every method that takes an objective.
    """

    model: nn.Module
    inputs: Tensor
    target: Optional[Tensor]
    layer: Optional[nn.Module] = None
    feature_mask: Optional[Tensor] = None
    n_samples: int = 256
    sigma: float = 0.25
    n_steps: int = 16
    seed: int = 0
    objective: Optional[str] = None
    default_objectives: Dict[str, str] = field(default_factory=dict)
    cache: Dict[str, Any] = field(default_factory=dict)
    owners: Dict[str, str] = field(default_factory=dict)
    settings: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    extra: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    current: str = ""

    def objective_for(self, name: str) -> str:
        """The objective method ``name`` runs with."""
        return self.objective or self.default_objectives.get(name, "output")


class ExactHessian:
    """Exact per-sample (group) Hessians from the engine, as an attribution.

    Args:
        forward_func (Callable): The model, returning ``(B,)`` or ``(B, C)``.

    Examples::

        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(),
        ...                           torch.nn.Linear(4, 2))
        >>> ExactHessian(net).attribute(torch.randn(2, 3), target=0).shape
        torch.Size([2, 3, 3])
    """

    def __init__(self, forward_func: Callable[..., Tensor]) -> None:
        self.forward_func = forward_func

    def attribute(self, inputs: Any, target: Any = None, **kwargs: Any) -> Tensor:
        """:func:`captum_higher_order.hessian.hessian`: ``(B, F, F)`` or ``(B, G, G)``.

        Args:
            inputs (Tensor): Inputs with the batch in dim 0.
            target (Any, optional): Captum target. Default: None
            **kwargs: ``objective``, ``feature_mask``, ... of ``hessian``.

        Returns:
            Tensor: the per-sample Hessians.
        """
        return hessian(self.forward_func, inputs, target=target, **kwargs)


def plain_settings(kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """Settings that ``torch.load(weights_only=True)`` can read back (masks left out)."""
    out: Dict[str, Any] = {}
    for key, value in kwargs.items():
        if isinstance(value, Tensor):
            continue
        out[key] = value if isinstance(value, (int, float, str, bool, type(None))) else repr(value)
    return out


def _call(ctx: Context, name: str, method: Any, **kwargs: Any) -> Any:
    kwargs.update(ctx.extra.get(name, {}))  # --method-arg wins over the CLI's settings
    if name == "smooth_hess":
        kwargs.update(ctx.extra.get("smoothgrad", {}))
    ctx.settings[name] = plain_settings(kwargs)
    if "feature_mask" in kwargs:
        ctx.settings[name]["feature_mask"] = kwargs["feature_mask"] is not None
    return method.attribute(ctx.inputs, target=ctx.target, **kwargs)


def run_ig(ctx: Context) -> Tensor:
    return _call(ctx, "ig", IntegratedGradients(ctx.model), n_steps=2 * ctx.n_steps)


def run_saliency(ctx: Context) -> Tensor:
    return _call(ctx, "saliency", Saliency(ctx.model))


def run_second_order(ctx: Context) -> Tensor:
    return _call(ctx, "second_order", SecondOrderSaliency(ctx.model, mode="rev_rev"),
                 objective=ctx.objective_for("second_order"))


def run_group_sparse(ctx: Context) -> Tensor:
    return _call(ctx, "group_sparse", GroupSparseSaliency(ctx.model, mode="rev_rev"),
                 objective=ctx.objective_for("group_sparse"))


def _smooth_hess(ctx: Context) -> Tuple[Tensor, Tensor]:
    """SmoothHess interactions and SmoothGrad from the same gradient calls (cached)."""
    if "smooth_hess" not in ctx.cache:
        hess, grad = _call(
            ctx, "smooth_hess", SmoothHess(ctx.model), sigma=ctx.sigma,
            n_samples=ctx.n_samples, feature_mask=ctx.feature_mask, return_gradient=True,
            generator=ctx.seed, objective=ctx.objective_for("smooth_hess"),
        )
        ctx.settings["smoothgrad"] = dict(ctx.settings["smooth_hess"])
        ctx.cache["smooth_hess"] = (hess, grad)
        ctx.owners["smooth_hess"] = ctx.current
    return ctx.cache["smooth_hess"]


def run_smoothgrad(ctx: Context) -> Tensor:
    return _smooth_hess(ctx)[1]


def run_smooth_hess(ctx: Context) -> Tensor:
    return _smooth_hess(ctx)[0]


def run_dtd(ctx: Context) -> Tensor:
    return _call(ctx, "dtd", DTDRootCheck(ctx.model, rule="z+"))


def run_taylor_cam(ctx: Context) -> Tensor:
    if ctx.layer is None:
        from captum_higher_order.cli.common import CLIError

        raise CLIError("TaylorCAM needs a convolutional layer: pass --layer NAME.")
    return _call(ctx, "taylor_cam", TaylorCAM(ctx.model, ctx.layer),
                 objective=ctx.objective_for("taylor_cam"))


def run_integrated_hessians(ctx: Context) -> Tensor:
    return _call(ctx, "integrated_hessians", IntegratedHessians(ctx.model),
                 objective=ctx.objective_for("integrated_hessians"), n_steps=ctx.n_steps,
                 feature_mask=ctx.feature_mask)


def run_cross_derivatives(ctx: Context) -> Tensor:
    return _call(ctx, "cross_derivatives", CrossDerivatives(ctx.model),
                 objective=ctx.objective_for("cross_derivatives"),
                 feature_mask=ctx.feature_mask, absolute=False)


def run_hessian(ctx: Context) -> Tensor:
    return _call(ctx, "hessian", ExactHessian(ctx.model), objective=ctx.objective_for("hessian"),
                 feature_mask=ctx.feature_mask)
