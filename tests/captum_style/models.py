"""Small equivalents of Captum's test models (``tests/helpers/basic_models.py``).

Captum's own test helpers are not installed with Captum, so these are written
here with the same structure and call signatures: ``MultiLayer`` mirrors
``BasicModel_MultiLayer`` (an identity ``linear0``, ``linear1``, an unused
``linear1_alt`` registered before the activation, ``linear2``, optional
``add_input`` and ``multidim_output`` for tuple targets), ``MultiInput``
mirrors ``BasicModel_MultiLayer_MultiInput`` and ``ConvNet`` mirrors
``BasicModel_ConvNet`` (without its final softmax). Every model takes ``act``:
``"relu"`` is Captum's piecewise-linear original, ``"tanh"`` / ``"softplus"``
are curved, so output Hessians are nonzero and no test can pass on all-zero
attributions. Weights are seeded (not Captum's all-ones, whose two logits
differ by a constant and give an exactly zero cross-entropy gradient). All
models are scriptable with ``torch.jit.script``.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

ACTS = {"relu": nn.ReLU, "tanh": nn.Tanh, "softplus": nn.Softplus}


class MultiLayer(nn.Module):
    """``BasicModel_MultiLayer``: 3 features, 2 outputs.

    With ``alt=True`` (Captum's layout) the unused ``linear1_alt`` sits in the
    registration order, so the forward is not the chain of the modules.
    """

    def __init__(self, act: str = "tanh", alt: bool = True) -> None:
        super().__init__()
        self.linear0 = nn.Linear(3, 3)
        with torch.no_grad():
            self.linear0.weight.copy_(torch.eye(3))
            self.linear0.bias.zero_()
        self.linear1 = nn.Linear(3, 4)
        if alt:
            self.linear1_alt = nn.Linear(3, 4)
        self.act = ACTS[act]()
        self.linear2 = nn.Linear(4, 2)

    def forward(
        self, x: Tensor, add_input: Optional[Tensor] = None, multidim_output: bool = False
    ) -> Tensor:
        inp = x if add_input is None else x + add_input
        out = self.linear2(self.act(self.linear1(self.linear0(inp))))
        if multidim_output:
            mid = torch.stack((out, 2 * out), dim=2)
            return torch.stack((mid, 4 * mid), dim=3)
        return out


class MultiInput(nn.Module):
    """``BasicModel_MultiLayer_MultiInput``: ``model(scale * (x1 + x2 + x3))``."""

    def __init__(self, act: str = "tanh") -> None:
        super().__init__()
        self.model = MultiLayer(act)

    def forward(self, x1: Tensor, x2: Tensor, x3: Tensor, scale: int) -> Tensor:
        return self.model(scale * (x1 + x2 + x3))


class ConvNet(nn.Module):
    """``BasicModel_ConvNet`` on ``(B, 1, 10, 10)``: two conv blocks, two linears.

    Its forward is the chain of its modules (a plain flatten in between), so
    DTD can propagate through the ReLU version.
    """

    def __init__(self, act: str = "softplus", classes: int = 3) -> None:
        super().__init__()
        pool = nn.MaxPool2d if act == "relu" else nn.AvgPool2d
        self.conv1 = nn.Conv2d(1, 2, 3)
        self.act1 = ACTS[act]()
        self.pool1 = pool(2)
        self.conv2 = nn.Conv2d(2, 4, 3)
        self.act2 = ACTS[act]()
        self.pool2 = pool(2)
        self.fc1 = nn.Linear(4, 8)
        self.act3 = ACTS[act]()
        self.fc2 = nn.Linear(8, classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool1(self.act1(self.conv1(x)))
        x = self.pool2(self.act2(self.conv2(x)))
        x = x.flatten(1)
        return self.fc2(self.act3(self.fc1(x)))


def build(cls: type, dtype: torch.dtype, seed: int = 0, **kwargs: object) -> nn.Module:
    """A seeded, eval-mode ``cls(**kwargs)`` in ``dtype``; weights scaled up so
    that the curved activations leave their linear range."""
    torch.manual_seed(seed)
    model = cls(**kwargs)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not name.startswith("linear0") and not name.startswith("model.linear0"):
                p.mul_(2.0)
    return model.to(dtype).eval()


def captum_weights(model: MultiLayer) -> MultiLayer:
    """Captum's fixed ``BasicModel_MultiLayer`` weights (all-ones ``linear1`` and
    ``linear2``, biases ``[-10, 1, 1, 1]`` and ``[-1, 1]``), in place."""
    with torch.no_grad():
        model.linear1.weight.fill_(1.0)
        model.linear1.bias.copy_(torch.tensor([-10.0, 1.0, 1.0, 1.0]))
        model.linear2.weight.fill_(1.0)
        model.linear2.bias.copy_(torch.tensor([-1.0, 1.0]))
    return model
