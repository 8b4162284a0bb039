"""SmoothHess against closed forms, Captum's NoiseTunnel, and its own error bars.

Oracle: for ``f(x) = sum_i a_i relu(w_i^T x + b_i)`` and ``x + s * z``
(``z ~ N(0, I)``, per-feature standard deviations ``s``), ``w_i^T s z`` is
normal with standard deviation ``t_i = ||s * w_i||``, and
``E[relu(u + t Z)] = u Phi(u / t) + t phi(u / t)``. So the smoothed function
has gradient ``sum_i a_i Phi(u_i / t_i) w_i`` and Hessian
``sum_i a_i phi(u_i / t_i) / t_i w_i w_i^T`` (``u_i = w_i^T x + b_i``).
"""

import math

import pytest
import torch
from captum.attr import NoiseTunnel, Saliency
from torch import nn

from captum_higher_order.attr.smooth_hess import SmoothHess
from captum_higher_order.metrics.taylor import taylor_pmse
from tests.models import two_input_net

D_IN, HIDDEN = 5, 8


def relu_units(seed=0):
    """Linear(5, 8) -> ReLU -> Linear(8, 2); output column 1 is the function."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(D_IN, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, 2)).double().eval()


def smoothed_closed_form(model, x, sigma, column=1):
    """Gradient (B, d) and Hessian (B, d, d) of the Gaussian-smoothed column."""
    w, b = model[0].weight.detach(), model[0].bias.detach()
    a = model[2].weight.detach()[column]
    s = torch.as_tensor(sigma, dtype=x.dtype).expand(D_IN)
    t = (w * s).norm(dim=1)  # (H,)
    u = x @ w.T + b  # (B, H)
    pdf = torch.exp(-0.5 * (u / t) ** 2) / math.sqrt(2 * math.pi)
    cdf = 0.5 * (1 + torch.erf(u / t / math.sqrt(2)))
    grad = torch.einsum("h,bh,hi->bi", a, cdf, w)
    hess = torch.einsum("h,bh,hi,hj->bij", a, pdf / t, w, w)
    return grad, hess


def upper(m):
    i, j = torch.triu_indices(m.shape[-1], m.shape[-1])
    return m[..., i, j]


@pytest.mark.parametrize("per_feature", [False, True])
def test_hessian_matches_closed_form_within_stderr(per_feature):
    model = relu_units()
    x = torch.randn(3, D_IN, dtype=torch.float64)
    sigma = torch.tensor([0.4, 0.7, 1.0, 0.5, 0.8], dtype=torch.float64) if per_feature else 0.7
    _, exact = smoothed_closed_form(model, x, sigma)
    hess, err = SmoothHess(model).attribute(
        x, target=1, sigma=sigma, n_samples=8000, return_stderr=True, generator=0
    )
    z = upper((hess - exact) / err)
    assert float(z.abs().max()) < 5.0
    assert 0.4 < float((z**2).mean()) < 2.0  # about chi^2 / dof = 1
    # The error bars are not vacuous: the estimate is close in absolute terms.
    assert float((hess - exact).norm() / exact.norm()) < 0.1


@pytest.mark.parametrize("antithetic,symmetrize", [(True, True), (False, False)])
def test_stderr_matches_spread_over_seeds(antithetic, symmetrize):
    model = relu_units()
    x = torch.randn(2, D_IN, dtype=torch.float64)
    sh = SmoothHess(model)
    runs, errs = [], []
    for seed in range(40):
        h, e = sh.attribute(x, target=1, sigma=0.7, n_samples=200, antithetic=antithetic,
                            symmetrize=symmetrize, return_stderr=True, generator=seed)
        runs.append(h)
        errs.append(e)
    spread = torch.stack(runs).std(dim=0)
    reported = torch.stack(errs).mean(dim=0)
    ratio = float(spread.pow(2).sum().sqrt() / reported.pow(2).sum().sqrt())
    assert 0.8 < ratio < 1.25, ratio


def test_smoothgrad_and_hessian_are_the_stein_averages_of_the_same_gradients():
    """Record every noisy point the model sees, recompute the gradients there
    with autograd, and rebuild both outputs from the Stein formulas."""
    model = relu_units()
    x = torch.randn(2, D_IN, dtype=torch.float64)
    x[1] += 100.0  # far apart, so each noisy point's owner is unambiguous
    seen = []

    def recording(inp):
        if torch.is_grad_enabled():  # not the no-grad output check at x
            seen.append(inp.detach().clone())
        return model(inp)

    sigma = 0.6
    hess, smoothgrad = SmoothHess(recording).attribute(
        x, target=1, sigma=sigma, n_samples=64, return_gradient=True, batch_size=40,
        generator=3,
    )
    points = torch.cat(seen)  # every row is x_b + eps for one b
    owner = torch.cdist(points, x).argmin(dim=1)
    points.requires_grad_(True)
    grads = torch.autograd.grad(model(points)[:, 1].sum(), points)[0]
    for b in range(2):
        g, eps = grads[owner == b], points.detach()[owner == b] - x[b]
        assert g.shape[0] == 64
        torch.testing.assert_close(smoothgrad[b], g.mean(dim=0), rtol=1e-12, atol=1e-12)
        stein = g.T @ eps / (g.shape[0] * sigma**2)
        torch.testing.assert_close(hess[b], 0.5 * (stein + stein.T), rtol=1e-10, atol=1e-12)
        # Antithetic: the noise comes in exact pairs (eps, -eps).
        assert torch.allclose(eps.sum(dim=0), torch.zeros(D_IN, dtype=torch.float64), atol=1e-12)


def test_smoothgrad_agrees_with_captum_noise_tunnel():
    model = relu_units()
    x = torch.randn(3, D_IN, dtype=torch.float64)
    sigma, n = 0.7, 4000
    exact_grad, _ = smoothed_closed_form(model, x, sigma)
    _, ours = SmoothHess(model).attribute(x, target=1, sigma=sigma, n_samples=n,
                                          return_gradient=True, generator=0)
    torch.manual_seed(0)
    nt = NoiseTunnel(Saliency(model)).attribute(
        x, nt_type="smoothgrad", nt_samples=n, stdevs=sigma, target=1, abs=False
    )
    # Monte-Carlo scale: the spread of single gradients at noisy points.
    noisy = (x.unsqueeze(1) + sigma * torch.randn(3, 2000, D_IN, dtype=torch.float64))
    noisy = noisy.reshape(-1, D_IN).requires_grad_(True)
    single = torch.autograd.grad(model(noisy)[:, 1].sum(), noisy)[0].view(3, 2000, D_IN)
    mc = single.std(dim=1) / math.sqrt(n)  # one estimator's standard error
    assert float(((ours - exact_grad).abs() / mc).max()) < 5
    assert float(((nt - exact_grad).abs() / mc).max()) < 5
    assert float(((ours - nt).abs() / (math.sqrt(2) * mc)).max()) < 5


def test_grouped_equals_projection_of_dense():
    model = two_input_net()
    x1 = torch.randn(3, 3, dtype=torch.float64)
    x2 = torch.randn(3, 2, 2, dtype=torch.float64)
    scale = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    mask1 = torch.tensor([[0, 0, 2]])
    mask2 = torch.tensor([[[1, 2], [2, 5]]])  # ids shared across inputs, not contiguous
    kwargs = dict(target=[0, 2, 1], additional_forward_args=(scale,), sigma=0.5,
                  n_samples=128, generator=11)
    sh = SmoothHess(model)
    dense, g_dense = sh.attribute((x1, x2), return_gradient=True, **kwargs)
    grouped, g_grouped = sh.attribute((x1, x2), feature_mask=(mask1, mask2),
                                      return_gradient=True, **kwargs)
    ids = torch.cat([mask1.flatten(), mask2.flatten()])
    proj = (ids.unsqueeze(1) == torch.tensor([0, 1, 2, 5])).double()  # (F, G)
    assert grouped.shape == (3, 4, 4)
    torch.testing.assert_close(grouped, proj.T @ dense @ proj, rtol=1e-10, atol=1e-12)
    for a, b in zip(g_dense, g_grouped):
        torch.testing.assert_close(a, b)


def test_per_sample_mask_and_sigma_match_single_calls():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(48, 2)).double().eval()
    x = torch.randn(2, 1, 4, 4, dtype=torch.float64)
    masks = torch.stack([torch.arange(16).view(1, 4, 4) // 4,
                         torch.arange(16).view(1, 4, 4) % 4])
    sigma = torch.rand(2, 1, 4, 4, dtype=torch.float64) + 0.2
    sh = SmoothHess(model)
    both = sh.attribute(x, target=0, sigma=sigma, feature_mask=masks, n_samples=32, generator=5)
    for b in range(2):
        one = sh.attribute(x[b : b + 1], target=0, sigma=sigma[b : b + 1],
                           feature_mask=masks[b : b + 1], n_samples=32, generator=5)
        torch.testing.assert_close(both[b : b + 1], one)


def test_antithetic_has_lower_variance_at_equal_gradient_calls():
    model = relu_units()
    x = torch.randn(2, D_IN, dtype=torch.float64)
    _, exact = smoothed_closed_form(model, x, 0.3)
    sh = SmoothHess(model)
    err = {True: 0.0, False: 0.0}
    for antithetic in err:
        for seed in range(20):
            h = sh.attribute(x, target=1, sigma=0.3, n_samples=64, antithetic=antithetic,
                             generator=seed)
            err[antithetic] += float((h - exact).pow(2).sum())
    assert err[True] < 0.5 * err[False], err


def test_same_seed_same_result_whatever_the_batching():
    model = relu_units()
    x = torch.randn(4, D_IN, dtype=torch.float64)
    sh = SmoothHess(model)
    ref = sh.attribute(x, target=1, sigma=0.5, n_samples=100, generator=7)
    for batch_size in (1, 7, 64, 10_000):
        got = sh.attribute(x, target=1, sigma=0.5, n_samples=100, generator=7,
                           batch_size=batch_size)
        torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-14)
    other = sh.attribute(x, target=1, sigma=0.5, n_samples=100, generator=8)
    assert not torch.allclose(other, ref)
    gen_a = sh.attribute(x, target=1, sigma=0.5, n_samples=100,
                         generator=torch.Generator().manual_seed(1))
    gen_b = sh.attribute(x, target=1, sigma=0.5, n_samples=100,
                         generator=torch.Generator().manual_seed(1))
    assert torch.equal(gen_a, gen_b)
    torch.manual_seed(42)  # None: the global RNG, as NoiseTunnel
    glob_a = sh.attribute(x, target=1, sigma=0.5, n_samples=100)
    torch.manual_seed(42)
    glob_b = sh.attribute(x, target=1, sigma=0.5, n_samples=100)
    assert torch.equal(glob_a, glob_b)


def test_predicted_target_is_fixed_at_the_clean_input():
    model = relu_units()
    x = torch.randn(3, D_IN, dtype=torch.float64)
    predicted = model(x).argmax(1).tolist()
    sh = SmoothHess(model)
    auto = sh.attribute(x, objective="log_softmax", sigma=2.0, n_samples=64, generator=0)
    explicit = sh.attribute(x, target=predicted, objective="log_softmax", sigma=2.0,
                            n_samples=64, generator=0)
    torch.testing.assert_close(auto, explicit)


def test_errors_say_what_to_change():
    model = relu_units()
    x = torch.randn(2, D_IN, dtype=torch.float64)
    sh = SmoothHess(model)
    with pytest.raises(ValueError, match="even n_samples"):
        sh.attribute(x, target=1, n_samples=5)
    with pytest.raises(ValueError, match="sigma"):
        sh.attribute(x, target=1, sigma=0.0)
    with pytest.raises(ValueError, match="sigma"):
        sh.attribute(x, target=1, sigma=-torch.ones(D_IN, dtype=torch.float64))
    with pytest.raises(ValueError, match="at least two"):
        sh.attribute(x, target=1, n_samples=2, return_stderr=True)
    with pytest.raises(ValueError, match="feature_mask"):
        sh.attribute(x, target=1, max_features=4)
    with pytest.raises(TypeError, match="generator"):
        sh.attribute(x, target=1, generator="seed")
    big = nn.Sequential(nn.Flatten(), nn.Linear(3 * 64 * 64, 2)).eval()
    with pytest.raises(ValueError, match="feature_mask"):  # refused before any work
        SmoothHess(big).attribute(torch.randn(1, 3, 64, 64), target=0)


def test_progress_bar_runs(capsys):
    model = relu_units()
    x = torch.randn(2, D_IN, dtype=torch.float64)
    SmoothHess(model).attribute(x, target=1, n_samples=8, batch_size=4, show_progress=True,
                                generator=0)
    assert "SmoothHess" in capsys.readouterr().err


def test_pmse_ordering_on_trained_digits_mlp():
    """The paper's P-MSE ordering (Torop et al. 2023, Table 1) on a ReLU MLP
    trained on scikit-learn digits: SmoothHess + SmoothGrad beats SmoothGrad
    alone and the plain gradient at the same radius."""
    from sklearn.datasets import load_digits

    features, labels = load_digits(return_X_y=True)
    X = torch.tensor(features / 16.0, dtype=torch.float32)
    y = torch.tensor(labels)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(),
                          nn.Linear(32, 10))
    opt = torch.optim.Adam(model.parameters(), lr=2e-2)
    for _ in range(50):
        opt.zero_grad()
        nn.functional.cross_entropy(model(X[:1000]), y[:1000]).backward()
        opt.step()
    model.eval()
    assert float((model(X[1500:]).argmax(1) == y[1500:]).float().mean()) > 0.8
    x = X[1500:1508]
    target = model(x).argmax(1)
    radius = 1.0
    hess, smoothgrad = SmoothHess(model).attribute(
        x, target=target, sigma=radius / 4, n_samples=1000, return_gradient=True,
        generator=0,
    )
    x_req = x.clone().requires_grad_(True)
    plain = torch.autograd.grad(model(x_req).gather(1, target[:, None]).sum(), x_req)[0]
    common = dict(radius=radius, n_perturbations=500, target=target, generator=1)
    second = taylor_pmse(model, x, smoothgrad, hess, **common)
    first_smooth = taylor_pmse(model, x, smoothgrad, None, **common)
    first_plain = taylor_pmse(model, x, plain, None, **common)
    assert float(second.mean()) < 0.7 * float(first_smooth.mean())
    assert float(second.mean()) < 0.7 * float(first_plain.mean())
    assert float((second < first_smooth).float().mean()) >= 0.75


def test_wraps_in_captum_noise_tunnel():
    """NoiseTunnel calls attribute.__wrapped__ on noisy copies and averages; with
    negligible outer noise and a fixed inner seed it must return SmoothHess."""
    model = relu_units()
    x = torch.randn(3, D_IN, dtype=torch.float64)
    direct = SmoothHess(model).attribute(x, target=1, sigma=0.5, n_samples=32, generator=0)
    tunnel = NoiseTunnel(SmoothHess(model)).attribute(
        x, nt_type="smoothgrad", nt_samples=3, stdevs=1e-9, target=1, sigma=0.5,
        n_samples=32, generator=0,
    )
    assert tunnel.shape == direct.shape
    torch.testing.assert_close(tunnel, direct, rtol=1e-5, atol=1e-6)


def test_inside_noise_tunnel_generator_makes_batching_irrelevant():
    # docs/smooth_hess.md: with generator=None the seed comes from the global
    # RNG after NoiseTunnel advanced it by an amount that depends on the batch,
    # so batched and one-at-a-time calls differ; an int generator removes that.
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(),
                                torch.nn.Linear(16, 3)).double().eval()
    x = torch.randn(2, 4, dtype=torch.float64)

    def run(xs, **kw):
        torch.manual_seed(1)
        return NoiseTunnel(SmoothHess(model)).attribute(
            xs, nt_type="smoothgrad", nt_samples=3, stdevs=0.0, target=0, sigma=0.3,
            n_samples=64, **kw)

    for kw, same in (({}, False), ({"generator": 5}, True)):
        batched = run(x, **kw)
        single = torch.cat([run(x[i:i + 1], **kw) for i in range(2)])
        assert torch.equal(batched, single) is same
