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
from typing import Iterator

import torch

__all__ = ["PRECISIONS", "check_precision", "precision_context"]

PRECISIONS = ("float32", "tf32", "bfloat16")


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
