"""The one method registry of ``captum-ho``: every subcommand looks methods up here.

Each method has one name (``smooth_hess``: a Python identifier, the key of the
saved ``.pt`` results); the dashed spelling (``smooth-hess``), the class name
(``SmoothHess``) and a few common names are aliases accepted by every
subcommand. ``subcommands`` says where a method can run: ``explain``/``demo``
call :attr:`MethodSpec.run` on one batch; ``global`` builds
:attr:`MethodSpec.cls` on the model and streams a dataset through it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from captum.attr import IntegratedGradients, Saliency
from torch import Tensor

from captum_higher_order import (
    CrossDerivatives,
    DTDRootCheck,
    GroupSparseSaliency,
    IntegratedHessians,
    SecondOrderSaliency,
    SmoothHess,
    TaylorCAM,
)
from captum_higher_order.cli import runners as r
from captum_higher_order.cli.common import CLIError

__all__ = ["MethodSpec", "METHODS", "ALIASES", "lookup", "resolve_methods", "SUBCOMMANDS"]

SUBCOMMANDS = ("explain", "demo", "global")
_LOCAL = ("explain", "demo")
_ALL = SUBCOMMANDS


@dataclass
class MethodSpec:
    """One method of the command line.

    ``kind`` is ``"map"`` (input-shaped map), ``"pairs"`` (``(B, G, G)`` over
    features or ``feature_mask`` groups) or ``"cells"`` (``(B, R, R)`` over the
    cells of a layer's grid). ``objective`` is the objective used for class
    outputs when ``--objective`` is ``auto`` (None: the method takes none).
    ``default`` methods run when no ``--method`` is given (if applicable).
    ``shares`` names a cache entry computed once for several methods.
    """

    name: str
    label: str
    kind: str
    cls: Any
    description: str
    run: Callable[[r.Context], Tensor]
    subcommands: Tuple[str, ...] = _LOCAL
    objective: Optional[str] = None
    takes_mask: bool = False
    needs_layer: bool = False
    default: bool = True
    shares: Optional[str] = None
    aliases: Tuple[str, ...] = ()

    @property
    def dashed(self) -> str:
        """The other spelling, accepted everywhere (``smooth-hess``)."""
        return self.name.replace("_", "-")


METHODS: Dict[str, MethodSpec] = {
    spec.name: spec
    for spec in [
        MethodSpec("ig", "Integrated Gradients", "map", IntegratedGradients,
                   "Captum's IntegratedGradients (first-order baseline)", r.run_ig,
                   subcommands=_ALL, aliases=("integrated_gradients",)),
        MethodSpec("saliency", "Saliency", "map", Saliency,
                   "Captum's Saliency |gradient| (first-order)", r.run_saliency,
                   subcommands=_ALL, default=False),
        MethodSpec("second_order", "SecondOrderSaliency", "map", SecondOrderSaliency,
                   "CASO map (lambda2 I - H)^-1 g of the cross-entropy (Singla et al. 2019)",
                   r.run_second_order, objective="cross_entropy", aliases=("caso",)),
        MethodSpec("group_sparse", "GroupSparseSaliency", "map", GroupSparseSaliency,
                   "sparse CASO map, lambda1 searched for 75-100% zeros (Singla et al. 2019)",
                   r.run_group_sparse, objective="cross_entropy"),
        MethodSpec("smoothgrad", "SmoothGrad", "map", SmoothHess,
                   "SmoothGrad, free with SmoothHess's gradient calls", r.run_smoothgrad,
                   objective="output", shares="smooth_hess"),
        MethodSpec("dtd", "DTD (z+)", "map", DTDRootCheck,
                   "Deep Taylor Decomposition relevance + root-point check (Sixt & Landgraf "
                   "2022)", r.run_dtd),
        MethodSpec("taylor_cam", "TaylorCAM", "cells", TaylorCAM,
                   "region pairs of a conv layer (Lerman et al. 2021)", r.run_taylor_cam,
                   objective="log_softmax", needs_layer=True),
        MethodSpec("smooth_hess", "SmoothHess", "pairs", SmoothHess,
                   "Gaussian-smoothed Hessian interactions (Torop et al. 2023)",
                   r.run_smooth_hess, subcommands=_ALL, objective="output", takes_mask=True,
                   shares="smooth_hess"),
        MethodSpec("integrated_hessians", "IntegratedHessians", "pairs", IntegratedHessians,
                   "path-integrated Hessian interactions (Janizek et al. 2021)",
                   r.run_integrated_hessians, subcommands=_ALL, objective="log_softmax",
                   takes_mask=True),
        MethodSpec("cross_derivatives", "CrossDerivatives", "pairs", CrossDerivatives,
                   "local mixed partials (Lerman et al. 2021)", r.run_cross_derivatives,
                   subcommands=_ALL, objective="log_softmax", takes_mask=True),
        MethodSpec("hessian", "Exact Hessian", "pairs", r.ExactHessian,
                   "exact (group) Hessian of the objective from the engine", r.run_hessian,
                   subcommands=_ALL, objective="log_softmax", takes_mask=True, default=False,
                   aliases=("exact_hessian",)),
    ]
}


def _key(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def _aliases() -> Dict[str, str]:
    table: Dict[str, str] = {}
    for spec in METHODS.values():
        # SmoothGrad is computed by the SmoothHess class: its class name means smooth_hess
        owns_class = spec.shares is None or spec.shares == spec.name
        cls_name = (spec.cls.__name__,) if owns_class else ()
        for alias in (spec.name, *cls_name, *spec.aliases):
            table[_key(alias)] = spec.name
    return table


#: Every accepted spelling (lower case, ``-`` read as ``_``) -> the method's name.
ALIASES: Dict[str, str] = _aliases()


def lookup(name: str) -> MethodSpec:
    """The method called ``name`` in any accepted spelling."""
    key = ALIASES.get(_key(name))
    if key is None:
        raise CLIError(f"unknown method {name.strip()!r}; choose from {', '.join(METHODS)} "
                       "(or 'all'); `captum-ho methods` lists them.")
    return METHODS[key]


def for_subcommand(command: str) -> List[MethodSpec]:
    """The methods ``captum-ho COMMAND`` can run."""
    return [spec for spec in METHODS.values() if command in spec.subcommands]


def resolve_methods(names: Optional[Sequence[str]], command: str = "explain") -> List[MethodSpec]:
    """Method specs from ``--method`` values (repeatable, comma lists allowed).

    None or empty: the subcommand's default methods (the caller drops those that
    do not apply to the model); ``all``: every method of the subcommand.
    """
    if not names:
        return [spec for spec in for_subcommand(command) if spec.default]
    chosen: List[MethodSpec] = []
    for raw in names:
        for part in raw.split(","):
            if not part.strip():
                continue
            if _key(part) == "all":
                return for_subcommand(command)
            spec = lookup(part)
            if command not in spec.subcommands:
                options = ", ".join(s.name for s in for_subcommand(command))
                raise CLIError(f"method {spec.name!r} does not run in `captum-ho {command}`; "
                               f"choose from {options}.")
            if spec not in chosen:
                chosen.append(spec)
    if not chosen:
        raise CLIError("no method selected.")
    return chosen
