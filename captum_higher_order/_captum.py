"""The one module that touches Captum's private helpers.

Captum moves its underscore helpers between releases (``captum._utils.common``
has been reorganised more than once). Every private name this package needs is
imported here and re-exported under a stable name, so a Captum release that
moves one breaks exactly this file. Public Captum API (``captum.attr``,
``captum.log``) is imported directly where it is used.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Tuple, Union

from captum._utils.common import (  # noqa: F401  (re-exported)
    _format_additional_forward_args,
    _format_output,
    _format_tensor_into_tuples,
    _is_tuple,
)
from captum.log import log_usage as _captum_log_usage
from torch import Tensor

try:  # captum >= 0.8 keeps it here; older releases had it under captum.attr
    from captum.attr._utils.approximation_methods import (
        approximation_parameters as _approximation_parameters,
    )
except ImportError:  # pragma: no cover - depends on the installed Captum
    _approximation_parameters = None  # type: ignore[assignment]


def log_usage() -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Captum's usage-logging decorator.

    ``NoiseTunnel`` calls ``attribute.__wrapped__`` to skip the inner logging, so
    every public ``attribute`` must be wrapped by this (it uses functools.wraps).
    """
    return _captum_log_usage()


def is_tuple(inputs: Any) -> bool:
    return _is_tuple(inputs)


def format_tensor_into_tuples(
    inputs: Union[None, Tensor, Tuple[Tensor, ...]],
) -> Optional[Tuple[Tensor, ...]]:
    return _format_tensor_into_tuples(inputs)


def format_output(is_inputs_tuple: bool, output: Tuple[Tensor, ...]) -> Any:
    """Return ``output`` as a tuple if the user passed a tuple, else its element."""
    return _format_output(is_inputs_tuple, output)


def format_additional_forward_args(args: Any) -> Optional[Tuple[Any, ...]]:
    return _format_additional_forward_args(args)


def approximation_parameters(
    method: str,
) -> Tuple[Callable[[int], Any], Callable[[int], Any]]:
    """Captum's quadrature rules: ``(step_sizes(n), alphas(n))`` for ``method``.

    ``method`` is one of Captum's names: ``"riemann_left"``, ``"riemann_right"``,
    ``"riemann_middle"``, ``"riemann_trapezoid"``, ``"gausslegendre"``.
    """
    if _approximation_parameters is None:  # pragma: no cover
        raise ImportError(
            "This Captum release does not provide approximation_parameters; "
            "install captum>=0.8."
        )
    return _approximation_parameters(method)
