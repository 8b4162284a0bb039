"""Small numerical helpers shared by the engine and the methods."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["HALF_DTYPES", "positive_floor"]

#: The half-precision dtypes, whose solver linear algebra and DTD tapes run in float32.
HALF_DTYPES = (torch.float16, torch.bfloat16)


def positive_floor(t: Tensor) -> Tensor:
    """``t`` clamped below at the smallest positive normal number of its dtype.

    A safe divisor: a literal like ``1e-300`` is 0 in float32 (and half), so
    ``x / t.clamp_min(1e-300)`` turns an exact zero into NaN there."""
    return t.clamp_min(torch.finfo(t.dtype).tiny)
