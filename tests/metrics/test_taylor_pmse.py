"""taylor_pmse and sample_ball against closed forms and direct computation."""

import math

import pytest
import torch
from torch import nn

from captum_higher_order.metrics.taylor import sample_ball, taylor_pmse


def half_square(x):
    """f(x) = |x|^2 / 2: gradient x, Hessian I."""
    return 0.5 * (x * x).flatten(1).sum(1)


def test_ball_samples_are_uniform_in_volume():
    d, r = 6, 2.0
    points = sample_ball(40_000, d, r, generator=0, dtype=torch.float64)
    radii = points.norm(dim=1)
    assert float(radii.max()) <= r * (1 + 1e-12)
    # P(|D| <= r q^(1/d)) = q for uniform-in-volume; uniform radii would give
    # q^(1/d) (0.89 at q = 1/2), i.e. far too few points in the outer shell.
    for q in (0.1, 0.5, 0.9):
        frac = float((radii <= r * q ** (1 / d)).double().mean())
        assert abs(frac - q) < 4 * math.sqrt(q * (1 - q) / 40_000)
    # Directions are isotropic: the mean is near zero.
    assert float(points.mean(0).abs().max()) < 0.05


def test_exact_second_order_model_has_zero_error():
    x = torch.randn(4, 3, 2, dtype=torch.float64)
    hess = torch.eye(6, dtype=torch.float64).expand(4, 6, 6)
    got = taylor_pmse(half_square, x, x.clone(), hess, radius=1.5, n_perturbations=300,
                      generator=0)
    assert got.shape == (4,)
    assert float(got.max()) < 1e-25


def test_first_order_error_matches_closed_form():
    """For f = |x|^2/2 the first-order residual is |D|^2/2, and for D uniform in
    the d-ball E|D|^4 = r^4 d / (d + 4)."""
    d, r, n = 6, 0.8, 20_000
    x = torch.randn(2, d, dtype=torch.float64)
    got = taylor_pmse(half_square, x, x.clone(), None, radius=r, n_perturbations=n,
                      generator=0, batch_size=5000)
    expected = 0.25 * r**4 * d / (d + 4)
    # sd of |D|^4 / 4: E|D|^8 = r^8 d / (d + 8)
    sd = 0.25 * r**4 * math.sqrt(d / (d + 8) - (d / (d + 4)) ** 2)
    assert float((got - expected).abs().max()) < 4 * sd / math.sqrt(n)
    # The authors' radius-uniform sampling would give r^4 / 20: far off.
    assert abs(expected - 0.25 * r**4 / 5) > 20 * sd / math.sqrt(n)


def test_matches_direct_computation_on_a_network_with_tuple_inputs():
    torch.manual_seed(0)
    lin = nn.Linear(5, 3).double()

    def model(a, b, scale):
        return torch.tanh(lin(torch.cat([a, b.flatten(1)], 1))) * scale[:, None]

    a = torch.randn(3, 1, dtype=torch.float64)
    b = torch.randn(3, 2, 2, dtype=torch.float64)
    scale = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    grads = (torch.randn(3, 1, dtype=torch.float64), torch.randn(3, 2, 2, dtype=torch.float64))
    hess = torch.randn(3, 5, 5, dtype=torch.float64)
    target = [0, 2, 1]
    got = taylor_pmse(model, (a, b), grads, hess, radius=0.7, n_perturbations=64,
                      target=target, additional_forward_args=(scale,), generator=3,
                      batch_size=50)
    points = sample_ball(64, 5, 0.7, generator=3, dtype=torch.float64)
    flat_x = torch.cat([a, b.flatten(1)], 1)
    flat_g = torch.cat([grads[0], grads[1].flatten(1)], 1)
    for i in range(3):
        moved = flat_x[i] + points
        out = model(moved[:, :1], moved[:, 1:].view(-1, 2, 2), scale[i].expand(64))
        f_x = model(a[i : i + 1], b[i : i + 1], scale[i : i + 1])[0, target[i]]
        taylor = f_x + points @ flat_g[i] + 0.5 * ((points @ hess[i]) * points).sum(1)
        expected = ((out[:, target[i]] - taylor) ** 2).mean()
        torch.testing.assert_close(got[i], expected, rtol=1e-10, atol=1e-14)


def test_errors():
    x = torch.randn(2, 4)
    with pytest.raises(ValueError, match="hessian"):
        taylor_pmse(half_square, x, x, torch.zeros(2, 2, 2), radius=1.0)
    with pytest.raises(ValueError, match="gradient"):
        taylor_pmse(half_square, x, torch.zeros(2, 3), None, radius=1.0)
    with pytest.raises(ValueError, match="radius"):
        taylor_pmse(half_square, x, x, None, radius=0.0)
