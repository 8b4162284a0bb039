"""A small GELU MLP fitted to a function with planted interactions.

The target function (8 features, ``x ~ U[-1, 1]^8``) is

``f(x) = 2 x0 x1 + 1.5 x2 x3 x4 + sin(pi x5) + 0.5 x6``  (``x7`` is unused),

so the true pairwise interactions are ``{0,1}``, ``{2,3}``, ``{2,4}``, ``{3,4}``,
the true three-way interaction is ``{2,3,4}``, ``x5`` and ``x6`` act alone and
``x7`` not at all: the ground truth for SmoothHess, CrossDerivatives and
IntegratedHessians in the tutorials and for interaction-detection AUCs (the
style of the NID benchmark of Tsang et al. 2018). GELU activations make the
network smooth, so its exact Hessian is informative (unlike a ReLU network).
"""

from __future__ import annotations

import math
import os
from typing import Dict, List, Tuple, Union

import torch
from torch import Tensor, nn

from captum_higher_order.zoo._files import ZOO_DIR, load_committed, read_json

PLANTED_WEIGHTS = os.path.join(ZOO_DIR, "planted_mlp.pt")
PLANTED_META = os.path.join(ZOO_DIR, "planted_mlp.json")

NUM_FEATURES = 8
FEATURE_NAMES: List[str] = [f"x{i}" for i in range(NUM_FEATURES)]
#: Ground-truth pairwise interactions of :func:`planted_function`.
PLANTED_PAIRS: List[Tuple[int, int]] = [(0, 1), (2, 3), (2, 4), (3, 4)]
#: Ground-truth interaction sets of any order (maximal sets).
PLANTED_SETS: List[Tuple[int, ...]] = [(0, 1), (2, 3, 4)]


def planted_function(x: Tensor) -> Tensor:
    """``f(x) = 2 x0 x1 + 1.5 x2 x3 x4 + sin(pi x5) + 0.5 x6`` for ``x`` of shape ``(B, 8)``."""
    return (
        2.0 * x[:, 0] * x[:, 1]
        + 1.5 * x[:, 2] * x[:, 3] * x[:, 4]
        + torch.sin(math.pi * x[:, 5])
        + 0.5 * x[:, 6]
    )


def planted_pair_matrix() -> Tensor:
    """``(8, 8)`` boolean matrix, True on the planted pairs (both orders)."""
    truth = torch.zeros(NUM_FEATURES, NUM_FEATURES, dtype=torch.bool)
    for i, j in PLANTED_PAIRS:
        truth[i, j] = truth[j, i] = True
    return truth


def sample_inputs(n: int, seed: int = 0) -> Tensor:
    """``n`` points uniform in ``[-1, 1]^8`` (float32), reproducible from ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, NUM_FEATURES, generator=gen) * 2.0 - 1.0


class PlantedMLP(nn.Module):
    """``8 -> 64 -> 64 -> 1`` GELU MLP; ``forward`` returns shape ``(B,)``."""

    def __init__(self, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(NUM_FEATURES, hidden),
            nn.GELU(),
            nn.Linear(hidden, hidden),
            nn.GELU(),
            nn.Linear(hidden, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).squeeze(-1)


def load_planted_mlp(
    pretrained: bool = True, device: Union[str, torch.device, None] = None
) -> PlantedMLP:
    """The embedded planted-interaction MLP, in eval mode.

    Examples::

        >>> from captum_higher_order.zoo import load_planted_mlp, planted_function
        >>> from captum_higher_order.zoo import sample_inputs
        >>> model = load_planted_mlp()
        >>> x = sample_inputs(256, seed=1)
        >>> bool(((model(x) - planted_function(x)) ** 2).mean() < 0.01)
        True
    """
    model = PlantedMLP()
    return load_committed(model, PLANTED_WEIGHTS, pretrained, device)


def planted_metadata() -> Dict[str, object]:
    """Training settings and test error recorded when the weights were made."""
    return read_json(PLANTED_META)
