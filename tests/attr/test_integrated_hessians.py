"""IntegratedHessians (Janizek et al. 2021) against closed forms, brute-force
double sums, Captum's IntegratedGradients and the paper's axioms (float64)."""

import math

import numpy as np
import pytest
import torch
from captum.attr import IntegratedGradients, NoiseTunnel
from torch import nn

from captum_higher_order._inputs import ZeroHessianWarning
from captum_higher_order.attr.integrated_hessians import (
    ExpectedHessians,
    IntegratedHessians,
    path_quadrature,
)
from tests.models import mlp, small_cnn, two_input_net

D = torch.float64
METHODS = ["gausslegendre", "riemann_left", "riemann_right", "riemann_middle",
           "riemann_trapezoid"]


def _captum_rule(method, n):
    from captum.attr._utils.approximation_methods import approximation_parameters

    steps, alphas = approximation_parameters(method)
    return torch.tensor(alphas(n), dtype=D), torch.tensor(steps(n), dtype=D)


def _brute_force(f, x, base, method, n, multiply=True):
    """The paper's double sum, literally: n x n path points x' + a b (x - x'),
    one full Hessian (torch.func) each."""
    a, w = _captum_rule(method, n)
    out = []
    for xb, bb in zip(x, base):
        delta = xb - bb
        scale = delta if multiply else torch.ones_like(delta)
        total = torch.zeros(len(xb), len(xb), dtype=D)
        for ak, wk in zip(a, w):
            for al, wl in zip(a, w):
                point = bb + ak * al * delta
                hess = torch.func.hessian(f)(point)
                total += wk * wl * ak * al * torch.outer(scale, scale) * hess
                if multiply:
                    total += wk * wl * torch.diag(delta * torch.func.grad(f)(point))
        out.append(total)
    return torch.stack(out)


# --------------------------------------------------------------------------- quadrature


@pytest.mark.parametrize("n", [1, 2, 5, 12])
def test_gauss_rule_has_log_weight_moments(n):
    # int_0^1 t^m (-ln t) dt = 1/(m+1)^2, exact for m <= 2n-1 and not beyond.
    t, w = path_quadrature("gausslegendre", n)
    assert t.numel() == n
    m = torch.arange(2 * n + 1, dtype=D)
    moments = (w * t ** m.view(-1, 1)).sum(1)
    exact = 1.0 / (m + 1) ** 2
    torch.testing.assert_close(moments[: 2 * n], exact[: 2 * n], rtol=1e-12, atol=0)
    if n < 12:  # at n = 12 the degree-2n error is already below roundoff
        assert abs(moments[2 * n] - exact[2 * n]) > 1e-14


def test_single_integral_equals_double_integral():
    # The reduction int int g(ab) da db = int g(t)(-ln t) dt, checked with an
    # independent 60 x 60 Gauss-Legendre product rule from numpy.
    nodes, weights = np.polynomial.legendre.leggauss(60)
    a = torch.tensor(0.5 * (nodes + 1), dtype=D)
    wa = torch.tensor(0.5 * weights, dtype=D)
    ab = a.view(-1, 1) * a.view(1, -1)
    wab = wa.view(-1, 1) * wa.view(1, -1)
    t, w = path_quadrature("gausslegendre", 12)
    for g in (lambda s: torch.exp(2 * s) * torch.cos(3 * s), lambda s: 1 / (1.5 - s)):
        double = (wab * g(ab)).sum()
        torch.testing.assert_close((w * g(t)).sum(), double, rtol=1e-12, atol=0)
        torch.testing.assert_close((w * t * g(t)).sum(), (wab * ab * g(ab)).sum(),
                                   rtol=1e-12, atol=0)


@pytest.mark.parametrize("method", METHODS[1:])
def test_compressed_rule_matches_captum_double_sum_moments(method):
    n = 5
    a, wa = _captum_rule(method, n)
    ab, wab = (a.view(-1, 1) * a).flatten(), (wa.view(-1, 1) * wa).flatten()
    t, w = path_quadrature(method, n)
    assert t.numel() <= n and bool((w > 0).all()) and bool(((t >= 0) & (t <= 1)).all())
    for m in range(2 * n):
        torch.testing.assert_close((w * t**m).sum(), (wab * ab**m).sum(), rtol=1e-10,
                                   atol=1e-14)


def test_bad_quadrature_arguments():
    with pytest.raises(ValueError, match="gausslegendre"):
        path_quadrature("simpson", 4)
    with pytest.raises(ValueError, match="n_steps"):
        path_quadrature("gausslegendre", 0)


# --------------------------------------------------------------------------- closed forms


def test_quadratic_form_exact():
    # f(x) = x^T A x + b^T x: H = A + A^T =: S, grad = S z + b. Gamma_ij =
    # D_i D_j S_ij / 4 + delta_ij D_i (S (x' + D/4) + b)_i since int int ab = 1/4.
    gen = torch.Generator().manual_seed(0)
    A = torch.randn(4, 4, generator=gen, dtype=D)
    b = torch.randn(4, generator=gen, dtype=D)
    x = torch.randn(3, 4, generator=gen, dtype=D)
    base = torch.randn(3, 4, generator=gen, dtype=D)

    def f(z):
        return torch.einsum("bi,ij,bj->b", z, A, z) + z @ b

    S = A + A.T
    delta = x - base
    expected = delta.unsqueeze(2) * delta.unsqueeze(1) * S / 4
    expected = expected + torch.diag_embed(delta * ((base + delta / 4) @ S.T + b))
    for n in (1, 6):  # the rule is exact for linear gradients from one point on
        got, gap = IntegratedHessians(f).attribute(
            x, base, n_steps=n, return_convergence_delta=True
        )
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(gap, torch.zeros(3, dtype=D), rtol=0, atol=1e-12)
    torch.testing.assert_close(expected.sum((1, 2)), f(x) - f(base), rtol=1e-12, atol=1e-12)


def test_product_x1_x2_exact():
    # f = x1 x2 (x3 unused): Gamma_12 = D1 D2 / 4, Gamma_11 = D1 (x2' + D2/4),
    # Gamma_22 = D2 (x1' + D1/4); everything involving x3 is zero.
    x = torch.tensor([[1.5, -2.0, 0.7], [0.3, 0.9, -1.1]], dtype=D)
    base = torch.tensor([[0.5, 1.0, 0.2]], dtype=D)
    got = IntegratedHessians(lambda z: z[:, 0] * z[:, 1]).attribute(x, base, n_steps=3)
    d = x - base
    expected = torch.zeros(2, 3, 3, dtype=D)
    expected[:, 0, 1] = expected[:, 1, 0] = d[:, 0] * d[:, 1] / 4
    expected[:, 0, 0] = d[:, 0] * (base[0, 1] + d[:, 1] / 4)
    expected[:, 1, 1] = d[:, 1] * (base[0, 0] + d[:, 0] / 4)
    torch.testing.assert_close(got, expected, rtol=1e-13, atol=1e-13)
    # zero baseline: every entry of the 2x2 block is x1 x2 / 4
    got0 = IntegratedHessians(lambda z: z[:, 0] * z[:, 1]).attribute(x, n_steps=2)
    quarter = (x[:, 0] * x[:, 1] / 4).view(2, 1, 1).expand(2, 2, 2)
    torch.testing.assert_close(got0[:, :2, :2], quarter, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("method", ["riemann_middle", "riemann_trapezoid", "riemann_left"])
def test_equals_papers_double_sum_on_a_cubic(method):
    # Along the path a cubic has a quadratic gradient and a linear Hessian, so the
    # compressed n-point rule must reproduce the paper's n x n double sum with the
    # same Captum rule exactly (degree < 2n).
    gen = torch.Generator().manual_seed(1)
    u, v, c = (torch.randn(4, generator=gen, dtype=D) for _ in range(3))

    def f(z):
        return (z @ u) ** 3 + (z @ v) * (z @ c) + z[..., 0] * z[..., 2] * z[..., 3]

    x = torch.randn(2, 4, generator=gen, dtype=D)
    base = torch.randn(2, 4, generator=gen, dtype=D)
    got = IntegratedHessians(f).attribute(x, base, n_steps=3, method=method)
    torch.testing.assert_close(got, _brute_force(f, x, base, method, 3), rtol=1e-10,
                               atol=1e-10)


def test_smooth_model_matches_brute_force_double_integral():
    model = mlp(d_in=4, hidden=8, d_out=3)
    x = torch.randn(2, 4, dtype=D)
    base = torch.full((1, 4), 0.3, dtype=D)

    def f(z):
        return torch.log_softmax(model(z.unsqueeze(0)), 1)[0, 2]

    expected = _brute_force(f, x, base.expand(2, 4), "gausslegendre", 8)
    got = IntegratedHessians(model).attribute(x, base, target=2, objective="log_softmax",
                                              n_steps=10)
    torch.testing.assert_close(got, expected, rtol=1e-8, atol=1e-10)


# --------------------------------------------------------------------------- axioms


def test_completeness_gap_shrinks_monotonically():
    model = mlp(d_in=5, hidden=12, d_out=3)
    x = torch.randn(4, 5, dtype=D) * 2
    ih = IntegratedHessians(model)
    for method, steps in (("gausslegendre", [1, 2, 3, 4, 5]),
                          ("riemann_trapezoid", [2, 4, 8, 16])):
        gaps = []
        for n in steps:
            gamma, gap = ih.attribute(x, target=1, n_steps=n, method=method,
                                      return_convergence_delta=True)
            # the reported gap is sum(Gamma) - (f(x) - f(x'))
            out = model(x)[:, 1] - model(torch.zeros_like(x))[:, 1]
            torch.testing.assert_close(gap, gamma.sum((1, 2)) - out.detach(), rtol=0,
                                       atol=1e-12)
            gaps.append(float(gap.abs().max()))
        assert all(b < a for a, b in zip(gaps, gaps[1:])), (method, gaps)
        # Gauss: exponential convergence; the Riemann double sum: algebraic.
        assert gaps[-1] < (1e-4 if method == "gausslegendre" else 0.3) * gaps[0], gaps
    _, gap = ih.attribute(x, target=1, n_steps=16, return_convergence_delta=True)
    assert float(gap.abs().max()) < 1e-10


def test_row_sums_equal_captum_integrated_gradients():
    # The paper's property: IG applied to IG_i gives row i, which sums to IG_i.
    # Both sides use Gauss-Legendre, whose error is spectral for this analytic
    # model: the difference is Captum's float32 path coefficients (~1e-9).
    model = mlp(d_in=6, hidden=16, d_out=4)
    x = torch.randn(3, 6, dtype=D)
    base = torch.randn(1, 6, dtype=D) * 0.5
    gamma = IntegratedHessians(model).attribute(x, base, target=[0, 2, 3], n_steps=16)
    ig = IntegratedGradients(model).attribute(x, base, target=[0, 2, 3], n_steps=256,
                                              method="gausslegendre")
    torch.testing.assert_close(gamma.sum(2), ig, rtol=0, atol=1e-7)


def test_row_sums_equal_ig_tuple_inputs_and_args():
    model = two_input_net()
    x = (torch.randn(2, 3, dtype=D), torch.randn(2, 2, 2, dtype=D))
    base = (0.2, torch.full((1, 2, 2), -0.1, dtype=D))
    scale = torch.tensor([1.0, 0.5], dtype=D)
    gamma = IntegratedHessians(model).attribute(
        x, base, target=1, additional_forward_args=(scale,), n_steps=16
    )
    assert gamma.shape == (2, 7, 7)
    ig = IntegratedGradients(model).attribute(
        x, base, target=1, additional_forward_args=(scale,), n_steps=256
    )
    flat_ig = torch.cat([g.reshape(2, -1) for g in ig], 1)
    torch.testing.assert_close(gamma.sum(2), flat_ig, rtol=0, atol=1e-7)


def test_symmetric_and_equals_brute_force_on_cnn_pixels():
    model = small_cnn()
    x = torch.randn(1, 1, 8, 8, dtype=D)
    gamma = IntegratedHessians(model).attribute(x, target=2, objective="softmax",
                                                n_steps=6)
    assert gamma.shape == (1, 64, 64)
    torch.testing.assert_close(gamma, gamma.transpose(1, 2), rtol=0, atol=1e-14)

    def f(z):
        return torch.softmax(model(z.view(1, 1, 8, 8)), 1)[0, 2]

    expected = _brute_force(f, x.view(1, 64), torch.zeros(1, 64, dtype=D),
                            "gausslegendre", 3)
    three = IntegratedHessians(model).attribute(x, target=2, objective="softmax",
                                                n_steps=3, method="gausslegendre")
    # n=3 compressed rule vs 3x3 double sum: equal up to moments of degree >= 6
    torch.testing.assert_close(three, expected, rtol=1e-3, atol=1e-6)
    torch.testing.assert_close(gamma, expected, rtol=2e-2, atol=1e-5)


def test_additive_function_has_zero_interactions():
    def f(z):
        return torch.sin(z).sum(1) + (z**3).sum(1) + 0.5 * z[:, 2]

    x = torch.randn(3, 5, dtype=D)
    base = torch.randn(3, 5, dtype=D)
    gamma = IntegratedHessians(f).attribute(x, base, n_steps=12)
    off = gamma - torch.diag_embed(torch.diagonal(gamma, dim1=1, dim2=2))
    assert float(off.abs().max()) == 0.0
    # the diagonal is then IG of each one-dimensional term
    ig = IntegratedGradients(f).attribute(x, base, n_steps=256)
    torch.testing.assert_close(torch.diagonal(gamma, dim1=1, dim2=2), ig, rtol=0,
                               atol=1e-7)


def test_grouped_equals_block_sums_tuple_and_per_sample_mask():
    model = two_input_net()
    x = (torch.randn(2, 3, dtype=D), torch.randn(2, 2, 2, dtype=D))
    args = (torch.tensor([1.0, 2.0], dtype=D),)
    full = IntegratedHessians(model).attribute(x, target=0, additional_forward_args=args,
                                               n_steps=4)
    # ids shared across the tuple, not contiguous, different per sample
    mask = (torch.tensor([[7, 3, 3], [3, 3, 9]]),
            torch.tensor([[[9, 9], [7, 3]], [[7, 7], [7, 9]]]))
    grouped = IntegratedHessians(model).attribute(
        x, target=0, additional_forward_args=args, n_steps=4, feature_mask=mask,
        internal_batch_size=3,
    )
    assert grouped.shape == (2, 3, 3)
    flat_ids = torch.cat([mask[0], mask[1].reshape(2, -1)], 1)
    for b in range(2):
        proj = (flat_ids[b].view(-1, 1) == torch.tensor([3, 7, 9])).to(D)  # (F, G)
        torch.testing.assert_close(grouped[b], proj.T @ full[b] @ proj, rtol=1e-12,
                                   atol=1e-12)


def test_global_variant_is_path_weighted_hessian():
    model = mlp(d_in=4, hidden=8, d_out=2)
    x = torch.randn(2, 4, dtype=D)

    def f(z):
        return model(z.unsqueeze(0))[0, 1]

    expected = _brute_force(f, x, torch.zeros_like(x), "gausslegendre", 12,
                            multiply=False)
    got = IntegratedHessians(model, multiply_by_inputs=False).attribute(
        x, target=1, n_steps=10
    )
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-10)
    mask = torch.tensor([[0, 1, 1, 0]])
    grouped = IntegratedHessians(model, multiply_by_inputs=False).attribute(
        x, target=1, n_steps=10, feature_mask=mask
    )
    proj = torch.tensor([[1, 0], [0, 1], [0, 1], [1, 0]], dtype=D)
    torch.testing.assert_close(grouped, proj.T @ got @ proj, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="multiply_by_inputs=True"):
        IntegratedHessians(model, multiply_by_inputs=False).attribute(
            x, target=1, return_convergence_delta=True
        )


# --------------------------------------------------------------------------- Captum API


def test_target_fixed_at_clean_input():
    # With a class objective and target=None the class is the one predicted at x,
    # not the one predicted at each path point (zero baseline predicts class 0).
    model = nn.Linear(3, 2).to(D).eval()
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[-1.0, 0.0, 0.0], [1.0, 0.0, 0.0]], dtype=D))
        model.bias.copy_(torch.tensor([0.5, -0.5], dtype=D))
    x = torch.tensor([[3.0, 1.0, -1.0]], dtype=D)
    ih = IntegratedHessians(model)
    auto = ih.attribute(x, objective="log_softmax", n_steps=8)
    explicit = ih.attribute(x, target=1, objective="log_softmax", n_steps=8)
    other = ih.attribute(x, target=0, objective="log_softmax", n_steps=8)
    torch.testing.assert_close(auto, explicit, rtol=0, atol=0)
    assert not torch.allclose(auto, other)


def test_every_baseline_form():
    model = mlp(d_in=6, hidden=8, d_out=3)
    x = torch.randn(2, 6, dtype=D)
    ih = IntegratedHessians(model)

    def run(base):
        return ih.attribute(x, base, target=1, n_steps=3)

    full = torch.full((2, 6), 0.25, dtype=D)
    ref = run(full)
    for base in (0.25, torch.tensor(0.25, dtype=D), torch.full((1, 6), 0.25),
                 torch.full((6,), 0.25, dtype=D), (0.25,)):
        torch.testing.assert_close(run(base), ref, rtol=0, atol=1e-15)
    torch.testing.assert_close(run(None), run(0), rtol=0, atol=0)
    with pytest.raises(ValueError, match="broadcast"):
        run(torch.zeros(3, 6, dtype=D))
    with pytest.raises(ValueError, match="one baseline"):
        run((0.0, 0.0))
    with pytest.raises(TypeError, match="baselines"):
        run("zeros")


def test_internal_batch_size_and_modes_agree():
    model = small_cnn()
    x = torch.randn(2, 1, 8, 8, dtype=D)
    mask = torch.arange(64).view(1, 1, 8, 8) // 8
    ih = IntegratedHessians(model)
    ref = ih.attribute(x, target=[0, 1], objective="cross_entropy", n_steps=3,
                       feature_mask=mask)
    # 6 path points x 8 groups: chunks of directions (row chunks: grouped test)
    for kwargs in ({"internal_batch_size": 12}, {"internal_batch_size": 20},
                   {"mode": "rev_rev"}):
        got = ih.attribute(x, target=[0, 1], objective="cross_entropy", n_steps=3,
                           feature_mask=mask, **kwargs)
        torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="internal_batch_size"):
        ih.attribute(x, target=0, internal_batch_size=0)
    # features, no mask: 3 samples x 4 points in row chunks of 5 (across samples)
    model = mlp()
    x = torch.randn(3, 6, dtype=D)
    ref = IntegratedHessians(model).attribute(x, target=[1, 0, 2], n_steps=4)
    got = IntegratedHessians(model).attribute(x, target=[1, 0, 2], n_steps=4,
                                              internal_batch_size=5)
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-13)


def test_errors_and_dense_limit():
    model = mlp()
    x = torch.randn(2, 6, dtype=D)
    ih = IntegratedHessians(model)
    with pytest.raises(ValueError, match="feature_mask"):
        ih.attribute(x, target=0, max_features=5)
    with pytest.raises(ValueError, match="target"):
        ih.attribute(x)  # (B, C) output, objective="output" needs a target
    with pytest.raises(ValueError, match="objective"):
        ih.attribute(x, target=0, objective="mse")
    with pytest.raises(ValueError, match="method"):
        ih.attribute(x, target=0, method="simpson")
    with pytest.raises(TypeError, match="floating"):
        ih.attribute(torch.ones(2, 6, dtype=torch.long), target=0)


def test_relu_output_warns_zero_hessian():
    model = mlp(act=nn.ReLU)
    x = torch.randn(2, 6, dtype=D)
    with pytest.warns(ZeroHessianWarning):
        IntegratedHessians(model).attribute(x, target=0, n_steps=2)


def test_noise_tunnel_and_float32():
    model = mlp(dtype=torch.float32)
    x = torch.randn(2, 6)
    nt = NoiseTunnel(IntegratedHessians(model))
    out = nt.attribute(x, nt_type="smoothgrad", nt_samples=2, stdevs=0.1, target=1,
                       n_steps=4)
    assert out.shape == (2, 6, 6) and out.dtype == torch.float32
    gamma, gap = IntegratedHessians(model).attribute(x, target=1, n_steps=8,
                                                     return_convergence_delta=True)
    assert float(gap.abs().max()) < 1e-4


# --------------------------------------------------------------------------- adaptive


def _exp_closed_form(w, x, base):
    """f = exp(w . z): H = w w^T f, so with s = w . D and the moments
    int t^m (-ln t) dt = 1/(m+1)^2, Gamma = e^{w.x'} [I1 (D w)(D w)^T + I0 diag(D w)],
    I0 = sum_m s^m / m! / (m+1)^2 and I1 = sum_m s^m / m! / (m+2)^2."""
    out = []
    for xb, bb in zip(x, base):
        s = float(w @ (xb - bb))
        i0 = sum(s**m / math.factorial(m) / (m + 1) ** 2 for m in range(120))
        i1 = sum(s**m / math.factorial(m) / (m + 2) ** 2 for m in range(120))
        dw = (xb - bb) * w
        out.append(math.exp(float(w @ bb)) * (i1 * torch.outer(dw, dw) + i0 * torch.diag(dw)))
    return torch.stack(out)


@pytest.mark.parametrize("scale,min_steps", [(0.5, 4), (4.0, 16)])
def test_adaptive_matches_closed_form_and_doubles(scale, min_steps):
    # A steep exponential needs more points: the search has to double past
    # the first rules (the gap at n=2 and n=4 is far above tol).
    w = torch.tensor([1.5, -2.0, 3.0, 1.0], dtype=D)
    x = scale * torch.tensor([[0.8, -0.9, 0.7, 0.5], [0.1, 0.4, -0.3, 0.2]], dtype=D)
    base = torch.full_like(x, 0.05)
    expected = _exp_closed_form(w, x, base)
    ih = IntegratedHessians(lambda z: torch.exp(z @ w))
    tol = 1e-3
    got = ih.attribute(x, base, n_steps=None, tol=tol)
    info = ih.last_info
    assert info.converged is True and info.n_steps >= min_steps
    assert [n for n, _ in info.tried] == [2 ** k for k in range(1, len(info.tried) + 1)]
    assert info.tried[-1][0] == info.n_steps and info.tried[-1][1] < tol
    assert all(g >= tol for _, g in info.tried[:-2])  # earlier rules were not enough
    assert float(info.relative_gap.max()) < tol
    rel = (got - expected).abs().amax((1, 2)) / expected.abs().amax((1, 2))
    assert float(rel.max()) < tol
    # the relative gap reported is the result's own
    gap = (got.sum((1, 2)) - (torch.exp(x @ w) - torch.exp(base @ w))).abs()
    torch.testing.assert_close(info.relative_gap, gap / got.sum(2).abs().sum(1))


def test_adaptive_matches_high_step_fixed_rule_grouped_and_expected():
    model = mlp(d_out=3)
    gen = torch.Generator().manual_seed(5)
    x = 2 * torch.randn(3, 6, generator=gen, dtype=D)
    mask = torch.tensor([[0, 0, 1, 1, 2, 2]])
    ih = IntegratedHessians(model)
    tol = 1e-4
    fine = ih.attribute(x, target=[0, 1, 2], objective="log_softmax", n_steps=64,
                        feature_mask=mask)
    assert ih.last_info.tried == () and ih.last_info.relative_gap is None
    assert ih.last_info.n_steps == 64
    got, gap = ih.attribute(x, target=[0, 1, 2], objective="log_softmax", n_steps=None,
                            tol=tol, feature_mask=mask, return_convergence_delta=True)
    assert ih.last_info.converged and ih.last_info.n_steps < 64
    scale = fine.abs().amax((1, 2), keepdim=True)
    assert float(((got - fine).abs() / scale).max()) < tol
    assert float((gap.abs() / got.sum(2).abs().sum(1)).max()) < tol
    # ExpectedHessians passes n_steps=None and tol through
    refs = torch.randn(4, 6, generator=gen, dtype=D)
    eh = ExpectedHessians(model)
    adaptive = eh.attribute(x, refs, target=1, n_steps=None, tol=1e-8)
    torch.testing.assert_close(adaptive, eh.attribute(x, refs, target=1, n_steps=48),
                               rtol=1e-6, atol=1e-8)


def test_adaptive_on_relu_output_warns_and_stops():
    model = mlp(act=nn.ReLU)
    x = torch.randn(2, 6, dtype=D)
    ih = IntegratedHessians(model)
    with pytest.warns(UserWarning, match="stopped shrinking"):
        ih.attribute(x, target=0, n_steps=None)
    assert ih.last_info.converged is False and ih.last_info.n_steps <= 32


def test_adaptive_argument_errors():
    model = mlp()
    x = torch.randn(2, 6, dtype=D)
    for tol in (0.0, 1.5, float("nan"), "1e-3", True):
        with pytest.raises(ValueError, match="tol"):
            IntegratedHessians(model).attribute(x, target=0, n_steps=None, tol=tol)
    with pytest.raises(ValueError, match="int n_steps"):
        IntegratedHessians(model, multiply_by_inputs=False).attribute(
            x, target=0, n_steps=None)
    with pytest.raises(ValueError, match="method"):
        IntegratedHessians(model).attribute(x, target=0, n_steps=None, method="simpson")


# --------------------------------------------------------------------------- expected


def test_expected_hessians_is_mean_over_references():
    model = mlp(d_in=4, hidden=8, d_out=3)
    x = torch.randn(2, 4, dtype=D)
    refs = torch.randn(5, 4, dtype=D)
    eh, gap = ExpectedHessians(model).attribute(x, refs, target=2, n_steps=8,
                                                return_convergence_delta=True)
    ih = IntegratedHessians(model)
    mean = sum(ih.attribute(x, r.view(1, 4), target=2, n_steps=8) for r in refs) / 5
    torch.testing.assert_close(eh, mean, rtol=1e-12, atol=1e-13)
    out = model(x)[:, 2] - model(refs)[:, 2].mean()
    torch.testing.assert_close(eh.sum((1, 2)), out.detach(), rtol=0, atol=1e-8)
    assert float(gap.abs().max()) < 1e-8
    # draws are reproducible from the seed and a generator
    a = ExpectedHessians(model).attribute(x, refs, target=2, n_steps=2, n_references=3,
                                          seed=5)
    b = ExpectedHessians(model).attribute(x, refs, target=2, n_steps=2, n_references=3,
                                          generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    with pytest.raises(ValueError, match="reference set"):
        ExpectedHessians(model).attribute(x, torch.randn(5, 3, dtype=D), target=2)


def test_module_docstring_weight_is_right():
    # -ln t integrates to 1 and has mean 1/4 = int int ab da db
    t, w = path_quadrature("gausslegendre", 4)
    assert math.isclose(float(w.sum()), 1.0, rel_tol=1e-14)
    assert math.isclose(float((w * t).sum()), 0.25, rel_tol=1e-14)


def test_docstring_examples_run():
    import doctest

    import captum_higher_order.attr._path_quadrature as quadrature
    import captum_higher_order.attr.expected_hessians as expected
    import captum_higher_order.attr.integrated_hessians as module

    results = [doctest.testmod(m) for m in (module, quadrature, expected)]
    assert sum(r.attempted for r in results) >= 10
    assert all(r.failed == 0 for r in results)
