"""Shared pieces of the visualization tests."""

import torch
from matplotlib.patches import Rectangle


def _sym(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    m = torch.randn(n, n, generator=g, dtype=torch.float64)
    return m + m.T


def _bars(ax):
    return [p for p in ax.patches if isinstance(p, Rectangle)]
