"""The operations DTD propagates through, and the tape that runs them.

A model is read (:mod:`.parse`) into a *tape*: a list of :class:`Node`, each an
operation reading tensor slots ``src`` and writing slot ``dst`` (slot 0 is the
input). A plain chain is ``src=(k,)``, ``dst=k+1``; a residual block adds an
:class:`AddOp` with two sources. Every operation holds detached copies of the
weights, so nothing here can touch the user's model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from captum_higher_order.attr.dtd.rules import Rule

__all__ = ["WeightOp", "ActOp", "AddOp", "Node", "Op", "run_tape", "stabilize",
           "DEFAULT_EPSILON"]

#: Stabiliser added to rule denominators (with their sign), as Captum's LRP does.
DEFAULT_EPSILON = 1e-9


def stabilize(d: Tensor, eps: float) -> Tensor:
    """``d + eps * sign(d)`` with ``sign(0) = 1`` (Captum's LRP stabiliser)."""
    sign = torch.where(d >= 0, torch.ones_like(d), -torch.ones_like(d))
    return d + eps * sign


@dataclass
class WeightOp:
    """A Linear or Conv2d layer (BatchNorm folded in), as detached tensors."""

    kind: str  # "linear" | "conv"
    name: str
    weight: Tensor
    bias: Tensor
    conv_args: Dict[str, Any] = field(default_factory=dict)
    folded: bool = False

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

    def propagate(self, rule: Rule, a: Tensor, relevance: Tensor, eps: float) -> Tensor:
        """``R_i = sum_j v_ij w_ij / (v_j^T w_j) R_j`` with the rule's terms.

        ``a`` is the layer input (B, *in_shape), ``relevance`` its output
        relevance (B, *out_shape); returns (B, *in_shape)."""
        terms = rule.terms(a, self.weight)
        d = sum(t.sign * self.apply(t.x, t.weight, bias=False) for t in terms)
        assert isinstance(d, Tensor)
        s = relevance / stabilize(d, eps).view_as(relevance)
        out = sum(t.sign * t.x * self.apply_transposed(s, t.weight, a) for t in terms)
        assert isinstance(out, Tensor)
        return out

    def rows(self, in_shape: Sequence[int], neurons: Tensor) -> Tensor:
        """Weight rows ``w_j`` (P, D) of the bias-free layer for output units
        ``neurons`` (P,), over the flattened input. A conv row is the kernel
        placed on the neuron's receptive field (zero elsewhere), built by index
        arithmetic: no dense ``J x D`` matrix and no identity basis."""
        if self.kind == "linear":
            return self.weight[neurons]
        return _conv_rows(self.weight, self.conv_args, tuple(int(s) for s in in_shape),
                          neurons)

    def describe(self) -> str:
        w = self.weight
        if self.kind == "linear":
            return f"{self.name}: Linear({w.shape[1]}->{w.shape[0]})"
        return f"{self.name}: Conv2d({w.shape[1]}->{w.shape[0]}, {w.shape[2]}x{w.shape[3]})"


def _pair(v: Union[int, Tuple[int, ...]]) -> Tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _conv_rows(weight: Tensor, args: Dict[str, Any], in_shape: Tuple[int, ...],
               neurons: Tensor) -> Tensor:
    """Rows of a zero-padded Conv2d for flat output indices ``neurons``."""
    c_in, h, w = in_shape
    c_out, c_g, kh, kw = weight.shape
    (sh, sw), (ph, pw), (dh, dw) = (_pair(args["stride"]), _pair(args["padding"]),
                                    _pair(args["dilation"]))
    groups = int(args["groups"])
    h_out = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    w_out = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    dev = weight.device
    o = neurons // (h_out * w_out)
    y = (neurons // w_out) % h_out
    x = neurons % w_out
    p = neurons.shape[0]
    iy = (y * sh).view(p, 1, 1, 1) + (torch.arange(kh, device=dev) * dh).view(1, 1, kh, 1)
    ix = (x * sw).view(p, 1, 1, 1) + (torch.arange(kw, device=dev) * dw).view(1, 1, 1, kw)
    ic = ((o // (c_out // groups)) * c_g).view(p, 1, 1, 1) + torch.arange(
        c_g, device=dev).view(1, c_g, 1, 1)
    rows = weight.new_zeros(p, c_in, h + 2 * ph, w + 2 * pw)
    idx = torch.arange(p, device=dev).view(p, 1, 1, 1)
    rows[idx, ic, iy, ix] = weight[o]
    return rows[:, :, ph:ph + h, pw:pw + w].reshape(p, -1)


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
    def is_switch(self) -> bool:
        """ReLUs and max-pools: units whose state (sign / argmax) can flip."""
        return self.kind in ("relu", "maxpool")

    def propagate(self, x: Tensor, relevance: Tensor, eps: float) -> Tensor:
        """Identity for ReLU, a reshape for flatten, and the proportional rule
        ``x * J^T (R / (y + eps))`` for pooling (winner-take-all for max pooling,
        proportional for average pooling, as Captum's LRP and zennit's ``Norm``
        do)."""
        if self.kind == "relu":
            return relevance
        if self.kind == "flatten":
            return relevance.reshape(x.shape)
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            y = self.apply(xg)
            s = relevance / stabilize(y.detach(), eps)
            (g,) = torch.autograd.grad(y, xg, s)
        return x * g

    def state(self, z: Tensor) -> Tensor:
        """The switch state at input ``z`` (B, ...): active mask or argmax."""
        if self.kind == "relu":
            return z.reshape(z.shape[0], -1) > 0
        _, idx = F.max_pool2d(z, return_indices=True, **self.args)
        return idx.reshape(idx.shape[0], idx.shape[1], -1)

    def flipped(self, z: Tensor, state: Tensor, tol: Tensor) -> Tensor:
        """(P, U) bool: the unit's state at ``z`` (P, ...) strictly differs from
        ``state`` (the state at ``a``, per row) beyond ``tol`` (P,)."""
        if self.kind == "relu":
            zp = z.reshape(z.shape[0], -1)
            margin = torch.where(state, zp, -zp)
            return margin < -tol.view(-1, 1)
        pooled = F.max_pool2d(z, **self.args)
        flat = z.reshape(z.shape[0], z.shape[1], -1)
        margin = flat.gather(2, state) - pooled.reshape(state.shape)
        return (margin < -tol.view(-1, 1, 1)).reshape(z.shape[0], -1)


@dataclass
class AddOp:
    """``sum_k x_k`` of a residual connection. Relevance is split between the
    summands in proportion to their contributions, ``R_k = x_k / (sum x) R``
    (the standard LRP treatment; zennit's ``Norm`` rule on its ``Sum``)."""

    name: str
    kind: str = "add"

    def apply(self, *xs: Tensor) -> Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out

    def propagate_all(self, xs: Sequence[Tensor], relevance: Tensor,
                      eps: float) -> List[Tensor]:
        s = relevance / stabilize(self.apply(*xs), eps)
        return [x * s for x in xs]


Op = Union[WeightOp, ActOp, AddOp]


@dataclass
class Node:
    """One operation of the tape: reads slots ``src``, writes slot ``dst``.
    ``modules`` names the user's modules it stands for (for error messages)."""

    op: Op
    src: Tuple[int, ...]
    dst: int
    modules: Tuple[str, ...] = ()


def run_tape(nodes: Sequence[Node], values: Dict[int, Tensor],
             start: int = 0) -> Dict[int, Tensor]:
    """Run ``nodes[start:]`` on the slots in ``values`` (which must hold every
    slot those nodes read before writing it); return all slots."""
    values = dict(values)
    for node in nodes[start:]:
        xs = [values[s] for s in node.src]
        if isinstance(node.op, AddOp):
            values[node.dst] = node.op.apply(*xs)
        else:
            values[node.dst] = node.op.apply(xs[0])
    return values
