"""The model behind a forward function and the states that make per-sample
derivatives wrong (batch-norm or dropout in training mode)."""

from __future__ import annotations

import warnings
from typing import Any, Callable, Optional

from torch import nn


def find_module(forward_func: Callable[..., Any]) -> Optional[nn.Module]:
    """The nn.Module behind ``forward_func`` (a module or its bound method)."""
    if isinstance(forward_func, nn.Module):
        return forward_func
    owner = getattr(forward_func, "__self__", None)
    return owner if isinstance(owner, nn.Module) else None


_BATCHNORM = (nn.modules.batchnorm._BatchNorm, nn.SyncBatchNorm)
_warned_dropout: set = set()


def check_model_state(forward_func: Callable[..., Any]) -> None:
    """Refuse batch-norm in training mode (samples would not be independent);
    warn once about dropout in training mode (results would be random)."""
    module = find_module(forward_func)
    if module is None:
        return
    frozen = [n for n, t in list(module.named_parameters()) + list(module.named_buffers())
              if t.is_inference()]
    if frozen:
        raise ValueError(
            f"The model's {frozen[0]!r}{' and others' if len(frozen) > 1 else ''} are "
            "inference tensors (made under torch.inference_mode()), which autograd cannot "
            "save, so no derivatives can be computed. Build or load the model outside "
            "torch.inference_mode() (torch.no_grad() is fine)."
        )
    for name, sub in module.named_modules():
        if sub.training and isinstance(sub, _BATCHNORM):
            raise ValueError(
                f"Module {name or type(module).__name__!r} is a batch-norm layer in "
                "training mode: batch statistics couple the samples, so per-sample "
                "second derivatives would be wrong. Call model.eval() first."
            )
    key = id(module)
    if key not in _warned_dropout:
        for sub in module.modules():
            if sub.training and isinstance(sub, nn.modules.dropout._DropoutNd):
                _warned_dropout.add(key)
                warnings.warn(
                    "The model has dropout in training mode, so attributions are "
                    "random; call model.eval() for deterministic results.",
                    stacklevel=3,
                )
                break
