"""The rank-one analysis of Singla et al. (2019): closed form of the loss
Hessian of piecewise-linear nets, spectra against dense eigendecompositions,
the confidence/alignment trend, and the CASO display map."""

import numpy as np
import pytest
import torch
from captum.attr import visualization as viz
from scipy.stats import spearmanr
from torch import nn

from captum_higher_order.analysis import (
    caso_display_map,
    closed_form_check,
    hessian_spectrum,
    softmax_gauss_newton,
)
from tests.attr.test_second_order_saliency import dense_problem
from tests.models import mlp, small_cnn


def relu_mlp(d_in=5, hidden=16, classes=4, bias=True, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(d_in, hidden, bias=bias), nn.ReLU(), nn.Linear(hidden, hidden, bias=bias),
        nn.ReLU(), nn.Linear(hidden, classes, bias=bias),
    ).double().eval()


@pytest.mark.parametrize("maker,shape", [
    (relu_mlp, (3, 5)),
    (lambda: small_cnn(act=nn.ReLU), (2, 1, 8, 8)),
])
def test_closed_form_equals_exact_hessian_for_relu_nets(maker, shape):
    model = maker()
    x = torch.randn(*shape, dtype=torch.float64)
    targets = model(x).argmax(1).tolist()
    _, exact = dense_problem(model, x, targets)
    closed = softmax_gauss_newton(model, x)
    torch.testing.assert_close(closed, exact, atol=1e-12, rtol=1e-9)
    check = closed_form_check(model, x)
    assert bool((check.relative_error < 1e-10).all())
    torch.testing.assert_close(check.exact, exact, atol=1e-12, rtol=1e-9)


def test_closed_form_fails_for_smooth_nets():
    # Softplus logits have their own curvature: the formula misses it.
    model = mlp(d_in=5, act=nn.Softplus)
    x = torch.randn(3, 5, dtype=torch.float64)
    check = closed_form_check(model, x, target=[0, 1, 2])
    assert bool((check.relative_error > 1e-2).all())
    with pytest.raises(ValueError, match="ggn"):
        closed_form_check(model, x, mode="ggn")


def test_spectrum_matches_dense_eigendecomposition():
    model = mlp(d_in=6, act=nn.GELU)
    x = torch.randn(3, 6, dtype=torch.float64)
    targets = [1, 0, 3]
    g, h = dense_problem(model, x, targets)
    report = hessian_spectrum(model, x, k=3, target=targets, tol=1e-10)
    values, vectors = torch.linalg.eigh(h)
    torch.testing.assert_close(report.eigenvalues, values.flip(1)[:, :3], atol=1e-10, rtol=1e-8)
    v1 = vectors[:, :, -1]
    cos = (v1 * g).sum(1).abs() / (v1.norm(dim=1) * g.norm(dim=1))
    torch.testing.assert_close(report.alignment, cos, atol=1e-7, rtol=1e-6)
    p = torch.softmax(model(x), 1)[torch.arange(3), torch.tensor(targets)]
    torch.testing.assert_close(report.probability, p.detach())
    torch.testing.assert_close(report.gradient_norm, g.norm(dim=1))


def _inputs_at_confidences(model, x0, levels):
    """Scale x0 so that the top softmax probability hits each level. A bias-free
    ReLU net is positively homogeneous, f(s x) = s f(x): only p changes with s,
    the Jacobian J (the activation pattern) stays the same."""
    with torch.no_grad():
        z = model(x0.unsqueeze(0))[0]
    scales = []
    for c in levels:
        lo, hi = 1e-3, 1e3
        for _ in range(100):
            mid = (lo * hi) ** 0.5
            lo, hi = (mid, hi) if float(torch.softmax(mid * z, 0).max()) < c else (lo, mid)
        scales.append((lo * hi) ** 0.5)
    return torch.tensor(scales, dtype=x0.dtype).view(-1, 1) * x0


def test_alignment_rises_with_confidence():
    # Singla et al.: with many classes, a confident prediction makes the loss
    # Hessian nearly rank one with its top eigenvector along the gradient.
    model = relu_mlp(d_in=30, hidden=64, classes=50, bias=False, seed=1)
    levels = [0.05, 0.2, 0.4, 0.6, 0.8, 0.95, 0.99]
    gen = torch.Generator().manual_seed(3)
    all_p, all_a = [], []
    for _ in range(3):
        x0 = torch.randn(30, generator=gen, dtype=torch.float64)
        x = _inputs_at_confidences(model, x0, levels)
        report = hessian_spectrum(model, x, k=2, tol=1e-8)
        torch.testing.assert_close(report.probability, torch.tensor(levels, dtype=x.dtype),
                                   atol=1e-6, rtol=0)
        assert spearmanr(report.probability, report.alignment)[0] > 0.5
        assert float(report.alignment[-1]) > 0.95
        # Nearly rank one: the second eigenvalue is small against the first.
        assert float(report.eigenvalues[-1, 1] / report.eigenvalues[-1, 0]) < 0.1
        all_p.append(report.probability)
        all_a.append(report.alignment)
    assert spearmanr(torch.cat(all_p), torch.cat(all_a))[0] > 0.7


def test_display_map_matches_numpy_and_captum_accepts_it():
    gen = torch.Generator().manual_seed(0)
    d = torch.randn(2, 3, 10, 12, generator=gen)
    m = caso_display_map(d, percentile=95)
    assert m.shape == (2, 10, 12, 1)
    for b in range(2):
        summed = d[b].abs().sum(0).numpy()
        clip = np.percentile(summed, 95)
        expected = np.minimum(summed, clip) / clip
        np.testing.assert_allclose(m[b, ..., 0].numpy(), expected, rtol=1e-5, atol=1e-6)
    fig, ax = viz.visualize_image_attr(m[0].numpy(), method="heat_map", sign="positive",
                                       outlier_perc=0, use_pyplot=False)
    assert fig is not None
    assert bool((caso_display_map(torch.zeros(1, 3, 4, 4)) == 0).all())
    with pytest.raises(ValueError, match="B, C, H, W"):
        caso_display_map(torch.randn(3, 4, 4))
    with pytest.raises(ValueError, match="percentile"):
        caso_display_map(d, percentile=0)


def test_spectrum_of_a_tiny_float32_hessian():
    # Random-weight float32 networks can have loss Hessians ~1e-5 in scale;
    # the spectrum must still be resolved (not stop on rounding noise).
    model64 = relu_mlp(d_in=20, hidden=32, classes=10, seed=2)
    with torch.no_grad():
        model64[-1].weight.mul_(1e-2)
    model32 = relu_mlp(d_in=20, hidden=32, classes=10, seed=2).float()
    model32.load_state_dict({k: v.float() for k, v in model64.state_dict().items()})
    x = torch.randn(2, 20, dtype=torch.float64)
    targets = model64(x).argmax(1).tolist()
    _, h = dense_problem(model64, x, targets)
    expected = torch.linalg.eigvalsh(h).flip(1)[:, :2]
    assert float(expected.max()) < 1e-3
    report = hessian_spectrum(model32, x.float(), k=2)
    torch.testing.assert_close(report.eigenvalues.double(), expected, atol=0, rtol=1e-3)
