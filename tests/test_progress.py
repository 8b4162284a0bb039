"""Inner progress bars: the solver loops (block Krylov, Lanczos, CG, FISTA) report their
iterations inside ``showing_progress(True)`` and stay silent outside it."""

from __future__ import annotations

import torch
from torch import nn

from captum_higher_order import GroupSparseSaliency, SecondOrderSaliency
from captum_higher_order._progress import showing_progress
from captum_higher_order.hessian import solve


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.Softplus(), nn.Linear(16, 3)).double().eval()


def test_solver_iterations_are_shown_only_when_asked(capsys):
    model, x = _model(), torch.randn(2, 8, dtype=torch.float64)
    with showing_progress(True):
        SecondOrderSaliency(model).attribute(x, target=0)
        GroupSparseSaliency(model).attribute(x, target=0, lambda1=1e-3)
        solve(model, x, torch.ones_like(x), shift=100.0, target=0)
    err = capsys.readouterr().err
    assert "block Krylov" in err and "conjugate gradients" in err and "FISTA" in err
    SecondOrderSaliency(model).attribute(x, target=0)
    GroupSparseSaliency(model).attribute(x, target=0, lambda1=1e-3)
    solve(model, x, torch.ones_like(x), shift=100.0, target=0)
    assert capsys.readouterr().err == ""
