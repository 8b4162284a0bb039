"""``fold_batchnorm``: a chain model with its BatchNorms folded, as a new network."""

from __future__ import annotations

from typing import List, Sequence

import torch
from torch import Tensor, nn

from captum_higher_order.attr.dtd.ops import ActOp, WeightOp
from captum_higher_order.attr.dtd.parse import parse_model

__all__ = ["FoldedNet", "fold_batchnorm"]


class FoldedNet(nn.Module):
    """The chain of :func:`fold_batchnorm`: ``layers`` run in order, with the
    input of every ``nn.Linear`` flattened in ``forward`` (no ``nn.Flatten``
    module, which Captum's ``LRP`` has no rule for)."""

    def __init__(self, layers: Sequence[nn.Module], flatten_output: bool) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.flatten_output = flatten_output

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            if isinstance(layer, nn.Linear) and x.dim() > 2:
                x = x.flatten(1)
            x = layer(x)
        return x.flatten(1) if self.flatten_output else x


def _module(op: WeightOp) -> nn.Module:
    w = op.weight
    if op.kind == "linear":
        lin: nn.Linear | nn.Conv2d = nn.Linear(w.shape[1], w.shape[0], device=w.device,
                                               dtype=w.dtype)
    else:
        lin = nn.Conv2d(w.shape[1] * op.conv_args["groups"], w.shape[0],
                        (w.shape[2], w.shape[3]), device=w.device, dtype=w.dtype,
                        **op.conv_args)
    assert lin.bias is not None  # built with the default bias=True
    with torch.no_grad():
        lin.weight.copy_(w)
        lin.bias.copy_(op.bias)
    return lin


_ACT = {"relu": nn.ReLU, "maxpool": nn.MaxPool2d, "avgpool": nn.AvgPool2d,
        "adaptiveavgpool": nn.AdaptiveAvgPool2d}


def fold_batchnorm(model: nn.Module) -> FoldedNet:
    """A new network equal to ``model`` with every BatchNorm folded into the
    Linear/Conv2d before it (Dropout, Identity and Flatten modules dropped; the
    flatten before a Linear is done in ``forward``). ``model`` is not modified.

    Useful on its own: Captum's ``LRP`` rules such as ``Alpha1_Beta0_Rule`` do
    not apply to BatchNorm (nor to ``nn.Flatten``), but do apply to the result.

    Args:
        model (nn.Module): A chain of :data:`SUPPORTED_MODULES`, in eval mode
            (no residual blocks).

    Returns:
        FoldedNet: The folded network (same dtype and device, eval mode).

    Raises:
        ValueError: for a model with residual blocks (not a chain).

    Examples::

        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.ReLU(),
        ...                     nn.Linear(3, 2)).eval()
        >>> folded = fold_batchnorm(net)
        >>> x = torch.randn(5, 4)
        >>> bool(torch.allclose(folded(x), net(x), atol=1e-6))
        True
    """
    layers: List[nn.Module] = []
    tape = parse_model(model)
    for node in tape.nodes:
        op = node.op
        if isinstance(op, WeightOp):
            layers.append(_module(op))
        elif isinstance(op, ActOp):
            if op.kind in _ACT:
                layers.append(_ACT[op.kind](**op.args))
        else:
            raise ValueError(
                f"fold_batchnorm builds a chain, but {op.name!r} is a residual addition; "
                "use DTDRootCheck on the model itself.")
    ends_flat = any(isinstance(n.op, ActOp) and n.op.kind == "flatten" for n in tape.nodes)
    return FoldedNet(layers, ends_flat).eval()
