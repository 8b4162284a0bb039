"""Arithmetic precision of the second-order passes (see "Precision" in docs/design.md).

* ``"float32"`` (default): full float32. TF32 tensor-core arithmetic, which
  PyTorch enables for cuDNN convolutions by default, is switched off inside the
  engine's passes, so CUDA and CPU compute the same thing.
* ``"tf32"``: TF32 for matmuls and convolutions on Ampere and newer GPUs (10-bit
  mantissa inputs, float32 accumulation); no effect on the CPU.
* ``"bfloat16"``: the model's matmuls and convolutions run under
  ``torch.autocast(dtype=torch.bfloat16)`` (float32 accumulation in the
  kernels); the results are returned in the inputs' dtype.

Only float32 models have a choice: float64 inputs always compute in float64.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Iterator, Optional

import torch

__all__ = [
    "PRECISIONS",
    "check_precision",
    "hvp_precision",
    "precision_context",
    "resolve_precision",
]

PRECISIONS = ("float32", "tf32", "bfloat16")

_PRECISION: contextvars.ContextVar[Optional[str]] = contextvars.ContextVar(
    "captum_higher_order_precision", default=None
)


@contextlib.contextmanager
def hvp_precision(precision: str) -> Iterator[None]:
    """Run every second-order pass of the library inside the block at ``precision``.

    The methods (SecondOrderSaliency, SmoothHess, IntegratedHessians, ...) do
    not take a ``precision`` argument of their own; this block reaches all of
    them. An explicit ``precision=`` given to :func:`hvp` or :func:`hessian`
    wins over the block. Errors against float64 are measured in
    docs/design.md ("Precision").

    Args:
        precision (str): ``"float32"``, ``"tf32"`` or ``"bfloat16"``.

    Examples::

        >>> import torch
        >>> from captum_higher_order import CrossDerivatives
        >>> from captum_higher_order.hessian import hvp_precision
        >>> model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.GELU(),
        ...                             torch.nn.Linear(8, 2)).eval()
        >>> with hvp_precision("bfloat16"):
        ...     pairs = CrossDerivatives(model).attribute(torch.randn(2, 6), target=0)
        >>> pairs.dtype
        torch.float32
    """
    if precision not in PRECISIONS:
        raise ValueError(
            f"Unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}."
        )
    token = _PRECISION.set(precision)
    try:
        yield
    finally:
        _PRECISION.reset(token)


def resolve_precision(precision: Optional[str], dtype: torch.dtype) -> str:
    """The precision a pass runs at: the argument, else the innermost
    :func:`hvp_precision` block (only for float32 inputs: a block does not make
    float64 work fail), else ``"float32"``."""
    if precision is not None:
        return precision
    block = _PRECISION.get()
    if block is not None and dtype == torch.float32:
        return block
    return "float32"


def check_precision(precision: str, dtype: torch.dtype) -> None:
    """Refuse unknown precisions, and reduced precision for non-float32 inputs."""
    if precision not in PRECISIONS:
        raise ValueError(
            f"Unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}."
        )
    if precision != "float32" and dtype != torch.float32:
        raise ValueError(
            f"precision={precision!r} applies to float32 models and inputs, but the inputs "
            f"are {dtype}; pass float32 inputs (and model), or leave precision='float32'."
        )


@contextlib.contextmanager
def precision_context(precision: str, device: torch.device) -> Iterator[None]:
    """Run the block at ``precision``; restores every global flag it touches."""
    matmul = torch.backends.cuda.matmul.allow_tf32
    cudnn = torch.backends.cudnn.allow_tf32
    tf32 = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    try:
        if precision == "bfloat16":
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
                yield
        else:
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = matmul
        torch.backends.cudnn.allow_tf32 = cudnn
