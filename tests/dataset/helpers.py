"""Shared fixtures of the explain_dataset tests.

Oracles: closed-form Hessians of an integer polynomial (exact in float64, so
streamed sums must match bit for bit), Captum's own methods run on the whole data
at once, torch's mean/std/max over the stacked per-sample results, and the
single-process run for the two-process ``gloo`` run (spawned by the test itself).
"""

from __future__ import annotations

import torch
from captum.attr import GradientAttribution
from torch import nn

from captum_higher_order._captum import log_usage
from captum_higher_order.hessian import hessian

SIZES = [5, 3, 7, 1, 4, 6, 2]  # uneven batches: 7 of them, 28 samples


class Poly(nn.Module):
    """f(x) = x^T A x + 2 x0^3 + x1 x2 x3 with integer A: integer Hessians
    ``A + A^T + 12 x0 e0 e0^T + (x3, x2, x1 on the (1,2), (1,3), (2,3) pairs)``."""

    def __init__(self) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(3)
        self.register_buffer("A", torch.randint(-3, 4, (5, 5), generator=gen).double())

    def forward(self, x):
        quad = torch.einsum("bi,ij,bj->b", x, self.A, x)
        return quad + 2 * x[:, 0] ** 3 + x[:, 1] * x[:, 2] * x[:, 3]


def poly_hessians(model: Poly, x: torch.Tensor) -> torch.Tensor:
    """Closed form of Poly's per-sample Hessians, written out by hand."""
    h = (model.A + model.A.T).expand(x.shape[0], 5, 5).clone()
    h[:, 0, 0] += 12 * x[:, 0]
    for (i, j), k in {(1, 2): 3, (1, 3): 2, (2, 3): 1}.items():
        h[:, i, j] += x[:, k]
        h[:, j, i] += x[:, k]
    return h


class HessianInteractions(GradientAttribution):
    """Test-only interaction attribution: the exact per-sample Hessian (B, F, F)."""

    #: Samples explained so far, on the class so the instance's configuration
    #: (part of the checkpoint fingerprint) does not change.
    seen = 0

    def __init__(self, forward_func):
        super().__init__(forward_func)

    @log_usage()
    def attribute(self, inputs, target=None, additional_forward_args=None, objective="output"):
        type(self).seen += inputs[0].shape[0] if isinstance(inputs, tuple) else inputs.shape[0]
        return hessian(self.forward_func, inputs, target=target,
                       additional_forward_args=additional_forward_args, objective=objective)


class PolyHessians:
    """Poly's Hessians in closed form, as an attribution (no autodiff: the
    distributed workers stay light)."""

    seen = 0

    def __init__(self, model: Poly) -> None:
        self.forward_func = model

    def attribute(self, inputs, target=None):
        type(self).seen += inputs.shape[0]
        return poly_hessians(self.forward_func, inputs)


def samples_seen(run, cls=None) -> int:
    """How many samples ``cls`` (HessianInteractions) explains while ``run()`` runs."""
    cls = cls or HessianInteractions
    start = cls.seen
    run()
    return cls.seen - start


def int_batches(seed: int = 0, sizes=SIZES):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randint(-4, 5, (n, 5), generator=gen).double() for n in sizes]


def interrupted(batches, after: int):
    """Yield ``after`` batches, then fail as a crash would."""
    for i, b in enumerate(batches):
        if i == after:
            raise RuntimeError("simulated crash")
        yield b
