"""Layer parsing, BatchNorm folding and the linear algebra of DTD rules.

:class:`~captum_higher_order.attr.dtd_root_check.DTDRootCheck` works on a chain
of simple operations read off the user's model: weight layers (``nn.Linear``,
``nn.Conv2d``) with any following ``BatchNorm`` folded into them, ReLUs,
max/avg pooling and flattening. The chain holds detached copies of the
weights, so nothing done here can touch the user's model.

Rules (DESIGN §6; Montavon et al. 2017, "Explaining nonlinear classification
decisions with deep Taylor decomposition"; Sixt & Landgraf 2022, "A rigorous
study of the deep Taylor decomposition"): for neuron ``j`` with weights
``w_j`` and layer input ``a``, the root is searched along a direction ``v_j``,
``r_j = a - t_j v_j``, and the relevance share of input ``i`` is
``v_ij w_ij / (v_j^T w_j) * R_j``:

============  ==============================================  =====================
rule          direction ``v_j``                               ``v_ij w_ij``
============  ==============================================  =====================
``lrp0``      ``a``                                           ``a_i w_ij``
``z+``        ``a * [w_ij >= 0]``                             ``a_i w_ij^+``
``w2``        ``w_j``                                         ``w_ij^2``
``zbox``      ``a_i - low_i`` if ``w_ij > 0`` else            ``a_i w_ij - low_i w_ij^+
              ``a_i - high_i``                                - high_i w_ij^-``
``gamma``     ``a * (1 + gamma [w_ij >= 0])``                 ``a_i (w_ij + gamma w_ij^+)``
============  ==============================================  =====================

Every share is a bias-free linear map of the input, so relevance is
propagated with "modified weights" and the transposed layer (a vector-Jacobian
product), never with a Python loop over neurons.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "RULES",
    "SUPPORTED_MODULES",
    "UnsupportedModuleError",
    "fold_batchnorm",
    "FoldedNet",
]

RULES = ("lrp0", "z+", "w2", "zbox", "gamma")

SUPPORTED_MODULES = (
    "nn.Linear, nn.Conv2d (padding_mode='zeros'), nn.ReLU, nn.MaxPool2d, "
    "nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Flatten (start_dim=1), nn.Identity, "
    "nn.Dropout (eval mode), nn.BatchNorm1d / nn.BatchNorm2d directly after a "
    "Linear / Conv2d (folded into it), and containers (nn.Sequential or modules "
    "whose forward calls their children in registration order; a flatten before "
    "a Linear may be done in forward)"
)

#: Stabiliser added to rule denominators (with their sign), as Captum's LRP does.
DEFAULT_EPSILON = 1e-9


class UnsupportedModuleError(TypeError):
    """The model contains a module that DTD cannot propagate through.

    The message names the module and lists :data:`SUPPORTED_MODULES`.
    """


# --------------------------------------------------------------------------- the chain


@dataclass
class WeightOp:
    """A Linear or Conv2d layer (BatchNorm folded in), as detached tensors."""

    kind: str  # "linear" | "conv"
    name: str
    weight: Tensor
    bias: Tensor
    conv_args: Dict[str, Any] = field(default_factory=dict)

    def apply(self, x: Tensor, weight: Optional[Tensor] = None, bias: bool = True) -> Tensor:
        """``W x + b`` (``weight`` replaces ``W``; ``bias=False`` drops ``b``)."""
        w = self.weight if weight is None else weight
        b = self.bias if bias else None
        if self.kind == "linear":
            return F.linear(x.flatten(1) if x.dim() > 2 else x, w, b)
        return F.conv2d(x, w, b, **self.conv_args)

    def apply_transposed(self, s: Tensor, weight: Tensor, like: Tensor) -> Tensor:
        """``W'^T s`` shaped like the layer input ``like`` (a vector-Jacobian
        product of the bias-free layer, which is linear)."""
        with torch.enable_grad():
            x = torch.zeros_like(like, requires_grad=True)
            (out,) = torch.autograd.grad(self.apply(x, weight, bias=False), x, s)
        return out

    def describe(self) -> str:
        w = self.weight
        if self.kind == "linear":
            return f"{self.name}: Linear({w.shape[1]}->{w.shape[0]})"
        return f"{self.name}: Conv2d({w.shape[1]}->{w.shape[0]}, {w.shape[2]}x{w.shape[3]})"


@dataclass
class ActOp:
    """A weight-free operation: relu, maxpool, avgpool, adaptiveavgpool, flatten."""

    kind: str
    name: str
    args: Dict[str, Any] = field(default_factory=dict)

    def apply(self, x: Tensor) -> Tensor:
        if self.kind == "relu":
            return torch.relu(x)
        if self.kind == "flatten":
            return x.flatten(1)
        if self.kind == "maxpool":
            return F.max_pool2d(x, **self.args)
        if self.kind == "avgpool":
            return F.avg_pool2d(x, **self.args)
        return F.adaptive_avg_pool2d(x, **self.args)

    @property
    def is_pool(self) -> bool:
        return self.kind in ("maxpool", "avgpool", "adaptiveavgpool")


Op = Any  # WeightOp | ActOp


def _leaves(module: nn.Module, prefix: str) -> List[Tuple[str, nn.Module]]:
    children = list(module.named_children())
    if not children:
        return [(prefix, module)]
    if any(True for _ in module.named_parameters(recurse=False)):
        raise UnsupportedModuleError(
            f"Module {prefix or type(module).__name__!r} ({type(module).__name__}) holds "
            f"its own parameters besides its children, so its forward is not a plain "
            f"chain. DTDRootCheck supports: {SUPPORTED_MODULES}."
        )
    out: List[Tuple[str, nn.Module]] = []
    for name, child in children:
        out.extend(_leaves(child, f"{prefix}.{name}" if prefix else name))
    return out


def _fold_bn(op: WeightOp, bn: nn.BatchNorm1d | nn.BatchNorm2d, name: str) -> None:
    """Fold an eval-mode BatchNorm into the weight layer before it:
    ``gamma (W x + b - mu) / sqrt(var + eps) + beta``."""
    if bn.running_mean is None or bn.running_var is None:
        raise UnsupportedModuleError(
            f"BatchNorm {name!r} has track_running_stats=False, so it cannot be folded "
            "into the layer before it; DTD needs a fixed affine map."
        )
    std = torch.sqrt(bn.running_var.detach() + bn.eps)
    gamma = bn.weight.detach() if bn.weight is not None else torch.ones_like(std)
    beta = bn.bias.detach() if bn.bias is not None else torch.zeros_like(std)
    scale = (gamma / std).to(op.weight.dtype)
    if scale.numel() != op.weight.shape[0]:
        raise UnsupportedModuleError(
            f"BatchNorm {name!r} has {scale.numel()} features but the layer before it "
            f"has {op.weight.shape[0]} outputs."
        )
    op.weight = op.weight * scale.view(-1, *([1] * (op.weight.dim() - 1)))
    op.bias = (op.bias - bn.running_mean.detach().to(op.bias.dtype)) * scale + beta.to(
        op.bias.dtype
    )
    op.name = f"{op.name}+{name}"


def _unsupported(name: str, module: nn.Module, why: str = "") -> UnsupportedModuleError:
    return UnsupportedModuleError(
        f"Module {name!r} ({type(module).__name__}) is not supported by DTDRootCheck"
        f"{': ' + why if why else ''}. DTD needs a chain of Linear/Conv2d layers with "
        f"ReLU; supported modules: {SUPPORTED_MODULES}."
    )


def parse_model(model: nn.Module) -> List[Op]:
    """Read ``model`` into a list of :class:`WeightOp` / :class:`ActOp`.

    Raises:
        UnsupportedModuleError: for any module outside :data:`SUPPORTED_MODULES`
            (for example ``nn.LSTM`` or an ``nn.Sigmoid`` between layers), a
            BatchNorm that does not directly follow a Linear/Conv2d, or a model
            without a weight layer.
    """
    ops: List[Op] = []
    for name, m in _leaves(model, ""):
        name = name or type(model).__name__
        if isinstance(m, nn.Linear):
            bias = m.bias.detach().clone() if m.bias is not None else None
            w = m.weight.detach().clone()
            ops.append(WeightOp("linear", name, w, bias if bias is not None else w.new_zeros(
                w.shape[0])))
        elif isinstance(m, nn.Conv2d):
            if m.padding_mode != "zeros":
                raise _unsupported(name, m, f"padding_mode={m.padding_mode!r}")
            w = m.weight.detach().clone()
            bias = m.bias.detach().clone() if m.bias is not None else w.new_zeros(w.shape[0])
            args = dict(stride=m.stride, padding=m.padding, dilation=m.dilation,
                        groups=m.groups)
            ops.append(WeightOp("conv", name, w, bias, args))
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            if not ops or not isinstance(ops[-1], WeightOp) or "+" in ops[-1].name:
                raise _unsupported(name, m, "a BatchNorm must directly follow a Linear or "
                                   "Conv2d layer to be folded into it")
            if m.training:
                raise ValueError(
                    f"BatchNorm {name!r} is in training mode; call model.eval() first.")
            _fold_bn(ops[-1], m, name)
        elif isinstance(m, nn.ReLU):
            ops.append(ActOp("relu", name))
        elif isinstance(m, nn.MaxPool2d):
            if m.return_indices:
                raise _unsupported(name, m, "return_indices=True")
            ops.append(ActOp("maxpool", name, dict(
                kernel_size=m.kernel_size, stride=m.stride, padding=m.padding,
                dilation=m.dilation, ceil_mode=m.ceil_mode)))
        elif isinstance(m, nn.AvgPool2d):
            ops.append(ActOp("avgpool", name, dict(
                kernel_size=m.kernel_size, stride=m.stride, padding=m.padding,
                ceil_mode=m.ceil_mode, count_include_pad=m.count_include_pad,
                divisor_override=m.divisor_override)))
        elif isinstance(m, nn.AdaptiveAvgPool2d):
            ops.append(ActOp("adaptiveavgpool", name, dict(output_size=m.output_size)))
        elif isinstance(m, nn.Flatten):
            if m.start_dim != 1 or m.end_dim != -1:
                raise _unsupported(name, m, "only start_dim=1, end_dim=-1 is supported")
            ops.append(ActOp("flatten", name))
        elif isinstance(m, nn.Dropout):
            if m.training and m.p > 0:
                raise ValueError(
                    f"Dropout {name!r} is in training mode; call model.eval() first.")
        elif isinstance(m, nn.Identity):
            continue
        else:
            raise _unsupported(name, m)
    if not any(isinstance(op, WeightOp) for op in ops):
        raise UnsupportedModuleError(
            f"The model has no Linear or Conv2d layer; supported modules: {SUPPORTED_MODULES}.")
    return ops


def run_chain(ops: Sequence[Op], x: Tensor, start: int = 0) -> Tuple[Tensor, List[Tensor]]:
    """Run ``ops[start:]`` on ``x``; return the output and the input of every op."""
    inputs: List[Tensor] = []
    for op in ops[start:]:
        inputs.append(x)
        x = op.apply(x)
    return x, inputs


class FoldedNet(nn.Module):
    """The chain of :func:`fold_batchnorm`: ``layers`` run in order, with the
    input of every ``nn.Linear`` flattened in ``forward`` (no ``nn.Flatten``
    module, which Captum's ``LRP`` has no rule for)."""

    def __init__(self, layers: Sequence[nn.Module], flatten_output: bool) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.flatten_output = flatten_output

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            if isinstance(layer, nn.Linear) and x.dim() > 2:
                x = x.flatten(1)
            x = layer(x)
        return x.flatten(1) if self.flatten_output else x


def fold_batchnorm(model: nn.Module) -> FoldedNet:
    """A new network equal to ``model`` with every BatchNorm folded into the
    Linear/Conv2d before it (Dropout, Identity and Flatten modules dropped; the
    flatten before a Linear is done in ``forward``). ``model`` is not modified.

    Useful on its own: Captum's ``LRP`` rules such as ``Alpha1_Beta0_Rule`` do
    not apply to BatchNorm (nor to ``nn.Flatten``), but do apply to the result.

    Args:
        model (nn.Module): A chain of :data:`SUPPORTED_MODULES`, in eval mode.

    Returns:
        FoldedNet: The folded network (same dtype and device, eval mode).

    Examples::

        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.ReLU(),
        ...                     nn.Linear(3, 2)).eval()
        >>> folded = fold_batchnorm(net)
        >>> x = torch.randn(5, 4)
        >>> bool(torch.allclose(folded(x), net(x), atol=1e-6))
        True
    """
    layers: List[nn.Module] = []
    ops = parse_model(model)
    for op in ops:
        if isinstance(op, WeightOp):
            w = op.weight
            if op.kind == "linear":
                lin: nn.Linear | nn.Conv2d = nn.Linear(w.shape[1], w.shape[0],
                                                       device=w.device, dtype=w.dtype)
            else:
                lin = nn.Conv2d(w.shape[1] * op.conv_args["groups"], w.shape[0],
                                (w.shape[2], w.shape[3]), device=w.device, dtype=w.dtype,
                                **op.conv_args)
            assert lin.bias is not None  # built with the default bias=True
            with torch.no_grad():
                lin.weight.copy_(w)
                lin.bias.copy_(op.bias)
            layers.append(lin)
        elif op.kind == "relu":
            layers.append(nn.ReLU())
        elif op.kind == "maxpool":
            layers.append(nn.MaxPool2d(**op.args))
        elif op.kind == "avgpool":
            layers.append(nn.AvgPool2d(**op.args))
        elif op.kind == "adaptiveavgpool":
            layers.append(nn.AdaptiveAvgPool2d(**op.args))
    ends_flat = any(isinstance(op, ActOp) and op.kind == "flatten" for op in ops)
    return FoldedNet(layers, ends_flat).eval()


# --------------------------------------------------------------------------- rules


def stabilize(d: Tensor, eps: float) -> Tensor:
    """``d + eps * sign(d)`` with ``sign(0) = 1`` (Captum's LRP stabiliser)."""
    sign = torch.where(d >= 0, torch.ones_like(d), -torch.ones_like(d))
    return d + eps * sign


def check_rule(rule: str, kwargs: Dict[str, Any]) -> None:
    if rule not in RULES:
        raise ValueError(f"Unknown rule {rule!r}; choose one of {', '.join(RULES)}.")
    allowed = {"gamma": {"gamma"}, "zbox": {"low", "high"}}.get(rule, set())
    extra = set(kwargs) - allowed - {"epsilon"}
    if extra:
        raise ValueError(
            f"rule_kwargs {sorted(extra)} do not apply to rule {rule!r}; it takes "
            f"{sorted(allowed | {'epsilon'})}.")
    if rule == "zbox" and not {"low", "high"} <= set(kwargs):
        raise ValueError(
            "rule='zbox' needs the input box: rule_kwargs={'low': ..., 'high': ...} "
            "(floats or tensors broadcastable to one input sample, e.g. 0.0 and 1.0 "
            "for pixels in [0, 1]).")


def box_bounds(kwargs: Dict[str, Any], like: Tensor) -> Tuple[Tensor, Tensor]:
    """``low`` and ``high`` of the z^B box broadcast to ``like`` (B, *shape)."""
    low = torch.as_tensor(kwargs["low"], dtype=like.dtype, device=like.device)
    high = torch.as_tensor(kwargs["high"], dtype=like.dtype, device=like.device)
    try:
        low = torch.broadcast_to(low, like.shape[1:]).expand_as(like)
        high = torch.broadcast_to(high, like.shape[1:]).expand_as(like)
    except RuntimeError:
        raise ValueError(
            f"zbox bounds must broadcast to one input sample of shape "
            f"{tuple(like.shape[1:])}.") from None
    return low, high


def propagate_weight(op: WeightOp, rule: str, kwargs: Dict[str, Any], a: Tensor,
                     relevance: Tensor, eps: float) -> Tensor:
    """``R_i = sum_j v_ij w_ij / (v_j^T w_j) R_j`` for one weight layer.

    ``a`` is the layer input (B, *in_shape), ``relevance`` its output relevance
    (B, *out_shape); returns (B, *in_shape).
    """
    w = op.weight
    if rule in ("lrp0", "z+", "gamma"):
        if rule == "lrp0":
            mod = w
        elif rule == "z+":
            mod = w.clamp(min=0)
        else:
            mod = w + float(kwargs.get("gamma", 0.25)) * w.clamp(min=0)
        s = relevance / stabilize(op.apply(a, mod, bias=False), eps).view_as(relevance)
        return a * op.apply_transposed(s, mod, a)
    if rule == "w2":
        sq = w * w
        d = op.apply(torch.ones_like(a), sq, bias=False)
        s = relevance / stabilize(d, eps).view_as(relevance)
        return op.apply_transposed(s, sq, a)
    low, high = box_bounds(kwargs, a)
    pos, neg = w.clamp(min=0), w.clamp(max=0)
    d = (op.apply(a, w, bias=False) - op.apply(low, pos, bias=False)
         - op.apply(high, neg, bias=False))
    s = relevance / stabilize(d, eps).view_as(relevance)
    return (a * op.apply_transposed(s, w, a) - low * op.apply_transposed(s, pos, a)
            - high * op.apply_transposed(s, neg, a))


def propagate_act(op: ActOp, x: Tensor, relevance: Tensor, eps: float) -> Tensor:
    """Relevance through a weight-free op: identity for ReLU, a reshape for
    flatten, and the proportional rule ``x * J^T (R / (y + eps))`` for pooling
    (winner-take-all for max pooling, proportional for average pooling, as
    Captum's LRP does with its default rule for pooling layers)."""
    if op.kind == "relu":
        return relevance
    if op.kind == "flatten":
        return relevance.reshape(x.shape)
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        y = op.apply(xg)
        s = relevance / stabilize(y.detach(), eps)
        (g,) = torch.autograd.grad(y, xg, s)
    return x * g


def dense_weight(op: WeightOp, in_shape: Sequence[int], max_elements: int) -> Tensor:
    """The layer's bias-free weight matrix ``W`` of shape (J, D) over flattened
    input and output units (a conv layer is applied to the identity basis)."""
    if op.kind == "linear":
        return op.weight
    d = 1
    for s in in_shape:
        d *= int(s)
    eye = torch.eye(d, dtype=op.weight.dtype, device=op.weight.device).view(d, *in_shape)
    out = op.apply(eye[:1], bias=False)
    j = out[0].numel()
    if j * d > max_elements:
        raise ValueError(
            f"Layer {op.name!r} would need a dense {j} x {d} weight matrix to compute "
            f"every neuron's root, above max_dense_elements={max_elements}. Check a "
            "smaller network or input crop, or raise max_dense_elements.")
    return op.apply(eye, bias=False).reshape(d, j).t()


def root_direction(rule: str, kwargs: Dict[str, Any], a: Tensor, w: Tensor,
                   low: Optional[Tensor], high: Optional[Tensor],
                   local: bool = False) -> Tensor:
    """Directions ``v_j`` (P, D) for pairs with inputs ``a`` (P, D) and weight
    rows ``w`` (P, D). ``local=False``: the DESIGN §6 table taken literally, so
    zero weights count as ``w_ij >= 0``, also outside a conv neuron's receptive
    field (LRP-0's direction is all of ``a``). ``local=True``: the direction is
    cut to the inputs the neuron sees (``w_ij != 0``)."""
    if rule == "lrp0":
        v = a.expand_as(w)
    elif rule == "z+":
        v = a * (w >= 0).to(a.dtype)
    elif rule == "gamma":
        v = a * (1 + float(kwargs.get("gamma", 0.25)) * (w >= 0).to(a.dtype))
    elif rule == "w2":
        return w
    else:
        assert low is not None and high is not None
        v = torch.where(w > 0, a - low, a - high)
    return v * (w != 0).to(a.dtype) if local else v


def roots(rule: str, kwargs: Dict[str, Any], a: Tensor, w: Tensor, b: Tensor,
          low: Optional[Tensor], high: Optional[Tensor], tiny: float,
          local: bool = False) -> Tuple[Tensor, Tensor]:
    """Roots ``r_j = a - t_j v_j`` with ``w_j^T r_j + b_j = 0`` (the hinge of
    the neuron's relevance model ``c_j max(0, w_j^T a + b_j)``), i.e.
    ``t_j = (w_j^T a + b_j) / (w_j^T v_j)``. Returns the roots (P, D) and a
    mask (P,) of pairs where ``w_j^T v_j`` is nonzero (a root exists)."""
    v = root_direction(rule, kwargs, a, w, low, high, local)
    den = (w * v).sum(-1)
    z = (w * a).sum(-1) + b
    ok = den.abs() > tiny
    t = torch.where(ok, z / torch.where(ok, den, torch.ones_like(den)), torch.zeros_like(z))
    return a - t.unsqueeze(-1) * v, ok
