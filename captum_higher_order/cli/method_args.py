"""``--method-arg [METHOD.]KEY=VALUE``: any keyword of a method's ``attribute()``
from the command line (``lambda2=8``, ``integrated_hessians.n_steps=64``).

Without ``METHOD.`` the keyword goes to every chosen method whose ``attribute()``
takes it; ``VALUE`` is read as a Python literal (``64``, ``0.5``, ``'z+'``) and
otherwise kept as a string.
"""

from __future__ import annotations

import ast
import inspect
from typing import Any, Dict, List, Sequence, Set

from captum_higher_order.cli.common import CLIError
from captum_higher_order.cli.registry import MethodSpec, lookup
from captum_higher_order.hessian import hessian

__all__ = ["parse_pairs", "accepted_keywords", "per_method"]


def parse_pairs(items: Sequence[str]) -> List[tuple]:
    """``["a.k=1", "k=x"]`` -> ``[("a", "k", 1), (None, "k", "x")]``."""
    out: List[tuple] = []
    for item in items:
        key, sep, value = item.partition("=")
        method, _, key = key.rpartition(".")
        if not sep or not key.isidentifier():
            raise CLIError(f"--method-arg takes [METHOD.]KEY=VALUE, got {item!r}.")
        try:
            parsed: Any = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            parsed = value  # a plain string
        out.append((method or None, key, parsed))
    return out


def accepted_keywords(spec: MethodSpec) -> Set[str]:
    """The keywords ``spec``'s ``attribute()`` takes (the engine's for the exact Hessian)."""
    func = hessian if spec.name == "hessian" else spec.cls.attribute
    params = inspect.signature(func).parameters
    return {n for n, p in params.items()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)} - {"self", "inputs", "target"}


def per_method(items: Sequence[str], specs: Sequence[MethodSpec]) -> Dict[str, Dict[str, Any]]:
    """``--method-arg`` values -> {method name: {keyword: value}} for ``specs``."""
    extra: Dict[str, Dict[str, Any]] = {spec.name: {} for spec in specs}
    for method, key, value in parse_pairs(items):
        if method is not None:
            spec = lookup(method)
            if spec.name not in extra:
                raise CLIError(f"--method-arg {method}.{key}: {spec.name} is not among the "
                               "chosen methods.")
            if key not in accepted_keywords(spec):
                raise CLIError(f"--method-arg {method}.{key}: {spec.cls.__name__}.attribute() "
                               f"takes no {key!r}; it takes "
                               f"{', '.join(sorted(accepted_keywords(spec)))}.")
            extra[spec.name][key] = value
            continue
        takers = [spec for spec in specs if key in accepted_keywords(spec)]
        if not takers:
            raise CLIError(f"--method-arg {key}: none of the chosen methods "
                           f"({', '.join(s.name for s in specs)}) takes {key!r}.")
        for spec in takers:
            extra[spec.name][key] = value
    return extra
