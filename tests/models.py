"""Small deterministic models shared by the tests (float64 where exactness matters)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def mlp(
    d_in: int = 6,
    hidden: int = 16,
    d_out: int = 4,
    act: type = nn.Softplus,
    dtype: torch.dtype = torch.float64,
    seed: int = 0,
) -> nn.Module:
    torch.manual_seed(seed)
    return (
        nn.Sequential(nn.Linear(d_in, hidden), act(), nn.Linear(hidden, hidden), act(),
                      nn.Linear(hidden, d_out))
        .to(dtype)
        .eval()
    )


class SmallCNN(nn.Module):
    """1x8x8 images, 3 classes; smooth (GELU) or piecewise-linear (ReLU)."""

    def __init__(self, act: type = nn.GELU, channels: int = 1, classes: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 4, 3, padding=1)
        self.act1 = act()
        self.conv2 = nn.Conv2d(4, 6, 3, padding=1, stride=2)
        self.act2 = act()
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.fc = nn.Linear(24, classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.act2(self.conv2(self.act1(self.conv1(x))))
        return self.fc(self.pool(x).flatten(1))


class TwoInputNet(nn.Module):
    """Tuple inputs (B, 3) and (B, 2, 2) plus a non-differentiated scale arg."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(3, 8)
        self.b = nn.Linear(4, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, x1: Tensor, x2: Tensor, scale: Tensor) -> Tensor:
        h = torch.tanh(self.a(x1) * self.b(x2.flatten(1)))
        return self.head(h) * scale.reshape(-1, 1)


def small_cnn(act: type = nn.GELU, dtype: torch.dtype = torch.float64, seed: int = 0):
    torch.manual_seed(seed)
    return SmallCNN(act).to(dtype).eval()


def two_input_net(dtype: torch.dtype = torch.float64, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return TwoInputNet().to(dtype).eval()
