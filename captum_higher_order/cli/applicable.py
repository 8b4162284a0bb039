"""Which methods apply to a model and an input, and why the others do not.

Without ``--method`` the command runs the applicable default methods and prints
one line naming the skipped ones and why; a method asked for by name that does
not apply is a usage error with the same reason.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from torch import Tensor, nn

from captum_higher_order import DTDRootCheck
from captum_higher_order.cli.common import CLIError, one_line
from captum_higher_order.cli.registry import MethodSpec

__all__ = ["Situation", "skip_reason", "choose", "MAX_DENSE_FEATURES"]

#: Pairwise results are dense F x F: above this many features, group them (--grid).
MAX_DENSE_FEATURES = 4096


@dataclass
class Situation:
    """What decides applicability: the model, its conv layer, the pair grouping."""

    model: nn.Module
    layer: Optional[nn.Module]
    features: int
    mask: Optional[Tensor]
    inputs: Optional[Tensor] = None  # for probes: the batch and its target
    target: Optional[Tensor] = None


def _probe_dtd(where: Situation) -> Optional[str]:
    """Run DTD on the first sample: a forward that is not the chain of its modules
    (residual additions, for example) fails here and DTD is skipped, not failed."""
    if where.inputs is None:
        return None
    target = None if where.target is None else where.target[:1]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            DTDRootCheck(where.model, rule="z+").attribute(where.inputs[:1], target=target)
    except Exception as err:  # the reason is shown to the user
        return one_line(err, 110)
    return None


def skip_reason(spec: MethodSpec, where: Situation, probe: bool = False) -> Optional[str]:
    """Why ``spec`` cannot run in ``where`` (None if it can). ``probe`` also tries
    the methods whose support is only known by running them (DTD) on one sample."""
    if spec.needs_layer and where.layer is None:
        return "the model has no Conv2d layer (pass --layer NAME)"
    if spec.kind == "pairs" and where.mask is None and where.features > MAX_DENSE_FEATURES:
        return (f"{where.features} features are too many for a dense F x F result "
                "(pass --grid N for images)")
    if spec.cls is DTDRootCheck:
        try:
            DTDRootCheck(where.model, rule="z+")  # reads the layers, computes nothing
        except Exception as err:  # the reason is shown to the user
            return one_line(err, 110)
        if probe:
            return _probe_dtd(where)
    return None


def choose(specs: Sequence[MethodSpec], explicit: bool,
           where: Situation) -> Tuple[List[MethodSpec], Dict[str, str]]:
    """(methods to run, skipped name -> reason). Asked-for methods that do not
    apply raise :class:`CLIError`; default ones are skipped (after a probe on one
    sample where support shows only when running)."""
    chosen: List[MethodSpec] = []
    skipped: Dict[str, str] = {}
    for spec in specs:
        reason = skip_reason(spec, where, probe=not explicit)
        if reason is None:
            chosen.append(spec)
        elif explicit:
            raise CLIError(f"{spec.label} cannot run: {reason}.")
        else:
            skipped[spec.name] = reason
    return chosen, skipped


def skipped_line(skipped: Dict[str, str]) -> Optional[str]:
    """One printed line for the skipped default methods (None when none were)."""
    if not skipped:
        return None
    return "skipped: " + "; ".join(f"{name} ({why})" for name, why in skipped.items())
