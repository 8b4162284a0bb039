"""Smooth surrogates of piecewise-linear models (the paper's SoftPlus baseline).

A ReLU network has a zero Hessian almost everywhere. One way to see curvature
anyway is to replace every ReLU by ``Softplus(beta)``, ``log(1 + exp(beta t)) /
beta``, which tends to ReLU as ``beta -> inf``, and differentiate the surrogate
exactly with the HVP engine. Torop, Masoomi et al. (NeurIPS 2023) use this
"SoftPlus Hessian" as a baseline for SmoothHess.

Only ``nn.ReLU`` *modules* are swapped: a forward that calls
``torch.nn.functional.relu`` or ``torch.relu`` directly is not affected.
"""

from __future__ import annotations

import contextlib
from typing import Dict, Iterator, List, Tuple

from torch import nn

__all__ = ["softplus_surrogate"]


@contextlib.contextmanager
def softplus_surrogate(
    model: nn.Module, beta: float = 10.0, threshold: float = 20.0
) -> Iterator[nn.Module]:
    r"""Temporarily replace every ``nn.ReLU`` submodule of ``model`` by
    ``nn.Softplus(beta, threshold)``.

    On exit, also when the body raises, the exact original module objects
    (with their hooks) are put back in their original places. A ReLU instance
    registered at several places is replaced by one shared Softplus, so the
    module graph keeps its sharing.

    Args:
        model (nn.Module): The model; modified in place while the context is
            open.
        beta (float, optional): SoftPlus sharpness; larger is closer to ReLU.
            Default: 10.0
        threshold (float, optional): Above ``beta * t > threshold`` Softplus
            is linear (PyTorch's numerical switch). Default: 20.0

    Yields:
        nn.Module: ``model`` itself, with its ReLUs swapped.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.
        ValueError: ``beta`` is not positive, or ``model`` is itself an
            ``nn.ReLU`` (it cannot be swapped in place).

    Examples::

        >>> # The SoftPlus Hessian baseline of Torop, Masoomi et al. 2023
        >>> import torch
        >>> from captum_higher_order.hessian import hessian
        >>> from captum_higher_order.surrogate import softplus_surrogate
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(),
        ...                             torch.nn.Linear(8, 2)).eval()
        >>> x = torch.randn(3, 4)
        >>> with softplus_surrogate(model, beta=5.0):
        ...     h = hessian(model, x, target=0)
        >>> h.shape, type(model[1]).__name__
        (torch.Size([3, 4, 4]), 'ReLU')
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be an nn.Module, got {type(model).__name__}.")
    if not beta > 0:
        raise ValueError(f"`beta` must be positive, got {beta}.")
    if isinstance(model, nn.ReLU):
        raise ValueError(
            "`model` is itself an nn.ReLU and cannot be swapped in place; wrap it "
            "in a container (e.g. nn.Sequential) first."
        )
    swapped: List[Tuple[nn.Module, str, nn.Module]] = []
    replacements: Dict[int, nn.Module] = {}
    try:
        for parent in list(model.modules()):
            for name, child in list(parent._modules.items()):
                if isinstance(child, nn.ReLU):
                    if id(child) not in replacements:
                        soft = nn.Softplus(beta=beta, threshold=threshold)
                        replacements[id(child)] = soft.train(child.training)
                    # Write the dict entry directly: keeps the child's position.
                    parent._modules[name] = replacements[id(child)]
                    swapped.append((parent, name, child))
        yield model
    finally:
        for parent, name, original in reversed(swapped):
            parent._modules[name] = original
