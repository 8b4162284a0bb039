"""DTD rules as small classes (in the style of zennit's rules).

Each rule knows three things about a weight layer with weights ``W`` and input
``a`` (Montavon et al. 2017, "Explaining nonlinear classification decisions
with deep Taylor decomposition"; Sixt & Landgraf 2022, "A rigorous study of
the deep Taylor decomposition"; the table is also in docs/dtd_root_check.md):

* its **modified weights**: the relevance share of input ``i`` in neuron ``j``
  is ``v_ij w_ij / (v_j^T w_j) R_j`` and ``v_ij w_ij`` is a sum of terms
  ``sign * x_i * w'_ij`` (:meth:`Rule.terms`), so relevance is propagated with
  the modified layer and its transpose (a vector-Jacobian product), never with
  a Python loop over neurons;
* its **root-point search direction** ``v_j`` (:meth:`Rule.direction`): the
  root is ``r_j = a - t_j v_j`` with ``w_j^T r_j + b_j = 0``;
* its **input domain** (:meth:`Rule.out_of_domain`): z+ and gamma assume
  non-negative inputs, z^B the box ``[low, high]``.

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

No code outside this module looks at a rule's name to decide what to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Dict, List, Optional, Sequence, Tuple, Type, Union

import torch
from torch import Tensor

__all__ = [
    "Rule", "LRP0", "ZPlus", "WSquare", "ZBox", "Gamma", "RULES", "RULE_CLASSES",
    "Term", "Box", "make_rule", "resolve_rules", "validate_rule_kwargs", "roots",
]

#: (low, high) of the z^B box, each broadcast like the layer input.
Box = Optional[Tuple[Tensor, Tensor]]


@dataclass
class Term:
    """One term ``sign * x_i * w'_ij`` of a rule's relevance share."""

    x: Tensor  # (B, *in_shape): the input the modified weights act on
    weight: Tensor  # modified weights, shaped like the layer's weight
    sign: float = 1.0


class Rule:
    """Base class: a DTD rule for one weight layer.

    Subclasses set :attr:`name`, :attr:`params` (the ``rule_kwargs`` they take
    besides ``epsilon``) and override :meth:`terms` and :meth:`direction`.
    """

    name: ClassVar[str] = ""
    params: ClassVar[Tuple[str, ...]] = ()
    #: Whether ``rule="<name>"`` given once means this rule at the first layer
    #: only and z+ above (z^B, Montavon et al. 2017).
    first_layer_only: ClassVar[bool] = False

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.kwargs or ''})"

    def terms(self, a: Tensor, w: Tensor) -> List[Term]:
        """The terms of ``v_ij w_ij`` for layer input ``a`` (B, *in) and weight ``w``."""
        raise NotImplementedError

    def direction(self, a: Tensor, w: Tensor, box: Box) -> Tensor:
        """Root search directions ``v_j`` (P, D) for inputs ``a`` (P, D) and weight
        rows ``w`` (P, D)."""
        raise NotImplementedError

    def box(self, a: Tensor) -> Box:
        """The rule's input box broadcast to ``a`` (B, ...), or None."""
        return None

    def out_of_domain(self, r: Tensor, tol: Tensor, box: Box) -> Tensor:
        """(P,) bool: root ``r`` (P, D) leaves the rule's input domain by more than
        ``tol`` (P, 1). Rules without a domain never report a violation."""
        return torch.zeros(r.shape[0], dtype=torch.bool, device=r.device)

    def roots(self, a: Tensor, w: Tensor, b: Tensor, box: Box, tiny: float,
              local: bool = False) -> Tuple[Tensor, Tensor]:
        """Roots ``r_j = a - t_j v_j`` with ``w_j^T r_j + b_j = 0`` (the hinge of
        the neuron's relevance model ``c_j max(0, w_j^T a + b_j)``), i.e.
        ``t_j = (w_j^T a + b_j) / (w_j^T v_j)``. ``local=True`` cuts ``v_j`` to
        the inputs the neuron sees (``w_ij != 0``). Returns the roots (P, D) and
        a mask (P,) of pairs where ``w_j^T v_j`` is nonzero (a root exists)."""
        v = self.direction(a, w, box)
        if local:
            v = v * (w != 0).to(a.dtype)
        den = (w * v).sum(-1)
        z = (w * a).sum(-1) + b
        ok = den.abs() > tiny
        t = torch.where(ok, z / torch.where(ok, den, torch.ones_like(den)), torch.zeros_like(z))
        return a - t.unsqueeze(-1) * v, ok


class LRP0(Rule):
    """LRP-0: direction ``a``, share ``a_i w_ij``."""

    name = "lrp0"

    def terms(self, a: Tensor, w: Tensor) -> List[Term]:
        return [Term(a, w)]

    def direction(self, a: Tensor, w: Tensor, box: Box) -> Tensor:
        return a.expand_as(w)


class _NonNegative(Rule):
    """Rules that assume non-negative inputs (z+, gamma)."""

    def out_of_domain(self, r: Tensor, tol: Tensor, box: Box) -> Tensor:
        return (r < -tol).any(1)


class ZPlus(_NonNegative):
    """z+: direction ``a * [w_ij >= 0]``, share ``a_i w_ij^+``."""

    name = "z+"

    def terms(self, a: Tensor, w: Tensor) -> List[Term]:
        return [Term(a, w.clamp(min=0))]

    def direction(self, a: Tensor, w: Tensor, box: Box) -> Tensor:
        return a * (w >= 0).to(a.dtype)


class Gamma(_NonNegative):
    """gamma: direction ``a * (1 + gamma [w_ij >= 0])``, share
    ``a_i (w_ij + gamma w_ij^+)``; ``rule_kwargs={"gamma": 0.25}``."""

    name = "gamma"
    params = ("gamma",)

    @property
    def gamma(self) -> float:
        return float(self.kwargs.get("gamma", 0.25))

    def terms(self, a: Tensor, w: Tensor) -> List[Term]:
        return [Term(a, w + self.gamma * w.clamp(min=0))]

    def direction(self, a: Tensor, w: Tensor, box: Box) -> Tensor:
        return a * (1 + self.gamma * (w >= 0).to(a.dtype))


class WSquare(Rule):
    """w^2: direction ``w_j``, share ``w_ij^2``."""

    name = "w2"

    def terms(self, a: Tensor, w: Tensor) -> List[Term]:
        return [Term(torch.ones_like(a), w * w)]

    def direction(self, a: Tensor, w: Tensor, box: Box) -> Tensor:
        return w


class ZBox(Rule):
    """z^B for inputs in the box ``[low, high]``: direction ``a - low`` where
    ``w_ij > 0`` and ``a - high`` elsewhere; share
    ``a_i w_ij - low_i w_ij^+ - high_i w_ij^-``."""

    name = "zbox"
    params = ("low", "high")
    first_layer_only = True

    def __init__(self, **kwargs: Any) -> None:
        if not {"low", "high"} <= set(kwargs):
            raise ValueError(
                "rule='zbox' needs the input box: rule_kwargs={'low': ..., 'high': ...} "
                "(floats or tensors broadcastable to one input sample, e.g. 0.0 and 1.0 "
                "for pixels in [0, 1]).")
        super().__init__(**kwargs)

    def box(self, a: Tensor) -> Box:
        low = torch.as_tensor(self.kwargs["low"], dtype=a.dtype, device=a.device)
        high = torch.as_tensor(self.kwargs["high"], dtype=a.dtype, device=a.device)
        try:
            low = torch.broadcast_to(low, a.shape[1:]).expand_as(a)
            high = torch.broadcast_to(high, a.shape[1:]).expand_as(a)
        except RuntimeError:
            raise ValueError(
                f"zbox bounds must broadcast to one input sample of shape "
                f"{tuple(a.shape[1:])}.") from None
        return low, high

    def terms(self, a: Tensor, w: Tensor) -> List[Term]:
        box = self.box(a)
        assert box is not None
        low, high = box
        return [Term(a, w), Term(low, w.clamp(min=0), -1.0), Term(high, w.clamp(max=0), -1.0)]

    def direction(self, a: Tensor, w: Tensor, box: Box) -> Tensor:
        assert box is not None  # box() is defined for this rule
        low, high = box
        return torch.where(w > 0, a - low, a - high)

    def out_of_domain(self, r: Tensor, tol: Tensor, box: Box) -> Tensor:
        assert box is not None
        low, high = box
        return ((r < low - tol) | (r > high + tol)).any(1)


RULE_CLASSES: Dict[str, Type[Rule]] = {
    cls.name: cls for cls in (LRP0, ZPlus, WSquare, ZBox, Gamma)}
RULES = tuple(RULE_CLASSES)


def validate_rule_kwargs(names: Sequence[str], kwargs: Dict[str, Any]) -> None:
    """Raise a ValueError for unknown rule names or ``rule_kwargs`` that no listed
    rule takes (``epsilon`` is always accepted)."""
    for name in names:
        if name not in RULE_CLASSES:
            raise ValueError(f"Unknown rule {name!r}; choose one of {', '.join(RULES)}.")
    allowed = {"epsilon"}
    for name in set(names):
        allowed |= set(RULE_CLASSES[name].params)
    extra = set(kwargs) - allowed
    if extra:
        raise ValueError(
            f"rule_kwargs {sorted(extra)} do not apply to rule(s) {sorted(set(names))}; "
            f"accepted: {sorted(allowed)}.")


def make_rule(name: str, kwargs: Dict[str, Any]) -> Rule:
    """The rule called ``name`` with the ``rule_kwargs`` it takes."""
    if name not in RULE_CLASSES:
        raise ValueError(f"Unknown rule {name!r}; choose one of {', '.join(RULES)}.")
    cls = RULE_CLASSES[name]
    return cls(**{k: v for k, v in kwargs.items() if k in cls.params})


def resolve_rules(rule: Union[str, Sequence[str]], kwargs: Dict[str, Any],
                  n_layers: int) -> List[Rule]:
    """One rule per weight layer, bottom first, from a name or a list of names."""
    if isinstance(rule, str):
        first = make_rule(rule, kwargs)
        if first.first_layer_only:
            # z^B is for the box-bounded input; z+ above (Montavon et al. 2017).
            return [first] + [ZPlus() for _ in range(n_layers - 1)]
        return [first] + [make_rule(rule, kwargs) for _ in range(n_layers - 1)]
    rules = [make_rule(name, kwargs) for name in rule]
    if len(rules) != n_layers:
        raise ValueError(
            f"`rule` lists {len(rules)} rules but the model has {n_layers} weight layers "
            "(Linear/Conv2d); pass one rule per weight layer, bottom first, or one name.")
    for r in rules[1:]:
        if r.first_layer_only:
            raise ValueError(
                f"The {r.name!r} rule needs the input box; use it at the first layer only.")
    return rules


def roots(rule: str, kwargs: Dict[str, Any], a: Tensor, w: Tensor, b: Tensor,
          low: Optional[Tensor], high: Optional[Tensor], tiny: float,
          local: bool = False) -> Tuple[Tensor, Tensor]:
    """Functional form of :meth:`Rule.roots` for the rule called ``rule``."""
    box = None if low is None or high is None else (low, high)
    return make_rule(rule, kwargs).roots(a, w, b, box, tiny, local)
