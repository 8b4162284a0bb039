"""Scaled-dot-product attention in second-order passes.

PyTorch's fused ``scaled_dot_product_attention`` kernels (flash attention, on the
CPU and on CUDA, and the memory-efficient kernel) implement a first derivative
only: a second backward, or the forward-mode tangent that ``fwd_rev`` pushes
through the gradient, raises ``NotImplementedError`` deep inside autograd. The
math kernel is made of ordinary differentiable operators, so it supports both.
Every second-order pass of the engine therefore runs inside
:func:`math_attention` (for ``fwd_rev`` and ``rev_rev`` alike); the kernel
choice changes no value, only which implementation computes it.

The engine says so once per model class that visibly holds attention
(:func:`attention_modules`) when a probe (:func:`fused_attention_lacks_second_order`)
shows that the kernel PyTorch would otherwise pick cannot be differentiated
twice on that device and dtype. The math kernel materialises the ``T x T``
attention matrix per head, which a second derivative through attention needs
anyway. Models that call Hugging Face's ``flash_attention_2`` implementation
bypass ``scaled_dot_product_attention`` altogether and are refused with a
message naming ``attn_implementation="sdpa"``. See docs/design.md ("The engine").
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from typing import Iterator, List, Optional

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

__all__ = [
    "math_attention",
    "attention_modules",
    "fused_attention_lacks_second_order",
    "check_attention",
    "refuse_unsupported_attention",
]

#: Hugging Face attention implementations that do not go through
#: ``scaled_dot_product_attention`` and have no second derivative.
_UNSUPPORTED_HF = ("flash_attention_2", "flash_attention_3")

_warned: set = set()


@contextlib.contextmanager
def math_attention() -> Iterator[None]:
    """Run ``scaled_dot_product_attention`` on PyTorch's math kernel inside the block."""
    with sdpa_kernel([SDPBackend.MATH]):
        yield


def _hf_implementation(module: nn.Module) -> Optional[str]:
    config = getattr(module, "config", None)
    impl = getattr(config, "_attn_implementation", None)
    return impl if isinstance(impl, str) else None


def attention_modules(module: Optional[nn.Module]) -> List[str]:
    """Names of the submodules of ``module`` that call attention kernels:
    ``nn.MultiheadAttention`` (and the encoder/decoder layers built on it) and
    Hugging Face modules whose config selects an attention implementation other
    than ``"eager"``. Empty for ``None`` or attention-free models."""
    if module is None:
        return []
    names = []
    hf_seen = False
    for name, sub in module.named_modules():
        if isinstance(sub, nn.MultiheadAttention):
            names.append(name or type(sub).__name__)
        elif not hf_seen and _hf_implementation(sub) not in (None, "eager"):
            hf_seen = True  # the outermost Hugging Face model speaks for its parts
            names.append(name or type(sub).__name__)
    return names


@functools.lru_cache(maxsize=16)
def fused_attention_lacks_second_order(device_type: str, dtype: torch.dtype) -> bool:
    """Whether the attention kernel PyTorch picks by default on ``device_type``
    for ``dtype`` fails under forward-over-reverse differentiation (probed once
    on a tiny input and cached)."""
    device = torch.device(device_type)
    if device_type == "cuda" and not torch.cuda.is_available():
        return True
    shape = (1, 1, 4, 8)
    q, k, v = (torch.randn(shape, device=device, dtype=dtype) for _ in range(3))

    def total(q_: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.scaled_dot_product_attention(q_, k, v).sum()

    try:
        torch.func.jvp(torch.func.grad(total), (q,), (torch.ones_like(q),))
    except Exception:  # any failure: the math kernel is the safe choice
        return True
    return False


def refuse_unsupported_attention(module: Optional[nn.Module]) -> None:
    """Raise a ValueError naming ``attn_implementation="sdpa"`` if ``module``
    holds a Hugging Face model configured with an attention implementation
    that bypasses ``scaled_dot_product_attention`` (no second derivative)."""
    if module is None:
        return
    for name, sub in module.named_modules():
        impl = _hf_implementation(sub)
        if impl in _UNSUPPORTED_HF:
            raise ValueError(
                f"Module {name or type(sub).__name__!r} uses attn_implementation={impl!r}, "
                "whose kernels have no second derivative. Load the model with "
                "attn_implementation='sdpa' (or 'eager'); second-order passes then run "
                "attention on PyTorch's math kernel."
            )


def check_attention(module: Optional[nn.Module], device: torch.device,
                    dtype: torch.dtype) -> None:
    """Refuse attention that no kernel switch can make twice differentiable,
    and warn once per model class that second-order passes use the math kernel.

    Raises:
        ValueError: the model (or one of its submodules) is a Hugging Face
            model configured with ``flash_attention_2``/``flash_attention_3``.
    """
    refuse_unsupported_attention(module)
    if module is None:
        return
    names = attention_modules(module)
    if not names:
        return
    key = (type(module).__qualname__, device.type)
    if key in _warned or not fused_attention_lacks_second_order(device.type, dtype):
        return
    _warned.add(key)
    shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
    warnings.warn(
        f"{type(module).__name__} uses scaled_dot_product_attention ({shown}); its fused "
        f"{device.type} kernels have no double backward or forward-mode AD, so the "
        "second-order passes run attention on PyTorch's math kernel (same values, "
        "T x T memory per head).",
        UserWarning,
        stacklevel=4,
    )
