"""SecondOrderSaliency (CASO, Singla et al. 2019) against dense float64 oracles."""

import warnings

import pytest
import torch
from captum.attr import NoiseTunnel
from torch import nn

from captum_higher_order._inputs import ZeroHessianWarning
from captum_higher_order.attr.second_order_saliency import SecondOrderSaliency
from tests.models import mlp, small_cnn, two_input_net


def dense_problem(model, x, targets, extra=None):
    """Per-sample cross-entropy gradients (B, F) and Hessians (B, F, F) from
    torch.func on one sample at a time."""
    gs, hs = [], []
    for b in range(x.shape[0]):

        def loss(xb, b=b):
            args = () if extra is None else (extra[b : b + 1],)
            z = model(xb.unsqueeze(0), *args)[0]
            return -torch.log_softmax(z, 0)[targets[b]]

        n = x[b].numel()
        gs.append(torch.func.grad(loss)(x[b]).reshape(n))
        hs.append(torch.func.hessian(loss)(x[b]).reshape(n, n))
    return torch.stack(gs).detach(), torch.stack(hs).detach()


def dense_caso(g, h, lam_eff):
    eye = torch.eye(g.shape[1], dtype=g.dtype)
    return torch.stack([
        torch.linalg.solve(lam_eff[b] * eye - h[b], g[b]) for b in range(g.shape[0])
    ])


def rel(a, b):
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("maker,shape,targets", [
    (mlp, (3, 6), [0, 3, 1]),
    (small_cnn, (2, 1, 8, 8), [2, 0]),
])
@pytest.mark.parametrize("lambda2_mode", ["shift", "absolute"])
def test_cg_equals_dense_solve(maker, shape, targets, lambda2_mode):
    model = maker()
    x = torch.randn(*shape, dtype=torch.float64)
    g, h = dense_problem(model, x, targets)
    lam_max = torch.linalg.eigvalsh(h)[:, -1]
    # A small ridge so the curvature term really changes the answer.
    lambda2 = 0.01 if lambda2_mode == "shift" else float(lam_max.max()) + 0.01
    lam_eff = lam_max + lambda2 if lambda2_mode == "shift" else torch.full_like(lam_max, lambda2)
    expected = dense_caso(g, h, lam_eff)
    caso = SecondOrderSaliency(model)
    got, delta = caso.attribute(
        x, target=targets, lambda2=lambda2, lambda2_mode=lambda2_mode, cg_tol=1e-10,
        eig_tol=1e-10, return_convergence_delta=True,
    )
    assert got.shape == x.shape
    assert rel(got.reshape(g.shape), expected) < 1e-6
    # The second-order term matters here: CASO is not the scaled gradient.
    cafo = g / lam_eff.unsqueeze(1)
    assert rel(cafo, expected) > 1e-2
    # Reported delta is the true relative residual ||g - (lam I - H) d|| / ||g||.
    flat = got.reshape(g.shape)
    true_res = (g - lam_eff.unsqueeze(1) * flat + torch.einsum("bij,bj->bi", h, flat)).norm(
        dim=1) / g.norm(dim=1)
    torch.testing.assert_close(delta, true_res, atol=1e-12, rtol=1e-3)
    assert bool((delta < 1e-9).all())
    info = caso.last_info
    torch.testing.assert_close(info.lambda_max, lam_max, atol=1e-9, rtol=1e-7)
    torch.testing.assert_close(info.lambda2_eff, lam_eff, atol=1e-9, rtol=1e-7)
    assert info.hvps >= int(info.iterations.max())


def test_tuple_inputs_and_extra_args_match_dense():
    model = two_input_net()
    x1 = torch.randn(3, 3, dtype=torch.float64)
    x2 = torch.randn(3, 2, 2, dtype=torch.float64)
    scale = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    targets = [2, 0, 1]
    d1, d2 = SecondOrderSaliency(model).attribute(
        (x1, x2), target=targets, additional_forward_args=(scale,), lambda2=0.05,
        cg_tol=1e-11, eig_tol=1e-11,
    )
    assert d1.shape == x1.shape and d2.shape == x2.shape

    # Dense oracle over the concatenated features.
    gs, hs = [], []
    for b in range(3):
        def loss(flat, b=b):
            z = model(flat[:3].view(1, 3), flat[3:].view(1, 2, 2), scale[b : b + 1])[0]
            return -torch.log_softmax(z, 0)[targets[b]]
        flat = torch.cat([x1[b], x2[b].flatten()])
        gs.append(torch.func.grad(loss)(flat))
        hs.append(torch.func.hessian(loss)(flat))
    g, h = torch.stack(gs).detach(), torch.stack(hs).detach()
    lam_eff = torch.linalg.eigvalsh(h)[:, -1] + 0.05
    expected = dense_caso(g, h, lam_eff)
    assert rel(torch.cat([d1, d2.flatten(1)], 1), expected) < 1e-6


def test_first_order_cafo_and_default_target():
    model = mlp()
    x = torch.randn(4, 6, dtype=torch.float64)
    predicted = model(x).argmax(1).tolist()
    g, _ = dense_problem(model, x, predicted)
    caso = SecondOrderSaliency(model)
    got = caso.attribute(x, second_order=False, lambda2=2.5)
    torch.testing.assert_close(got, g / 2.5, atol=1e-14, rtol=1e-12)
    assert caso.last_info.hvps == 0
    # target=None explains the predicted class, for the second-order map too.
    a = caso.attribute(x, cg_tol=1e-10, eig_tol=1e-10)
    b = caso.attribute(x, target=predicted, cg_tol=1e-10, eig_tol=1e-10)
    torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)


def test_relu_network_ggn_mode_matches_exact():
    # For a piecewise-linear net the Gauss-Newton product is the exact Hessian.
    model = small_cnn(act=nn.ReLU)
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    g, h = dense_problem(model, x, [1, 2])
    expected = dense_caso(g, h, torch.linalg.eigvalsh(h)[:, -1] + 0.01)
    for mode in ("ggn", "rev_rev"):
        got = SecondOrderSaliency(model, mode=mode).attribute(
            x, target=[1, 2], lambda2=0.01, cg_tol=1e-10, eig_tol=1e-10)
        assert rel(got.reshape(g.shape), expected) < 1e-6


def test_noise_tunnel_wraps_it():
    model = mlp()
    x = torch.randn(2, 6, dtype=torch.float64)
    nt = NoiseTunnel(SecondOrderSaliency(model))
    out = nt.attribute(x, nt_type="smoothgrad", nt_samples=3, stdevs=0.1, target=1)
    assert out.shape == x.shape and bool(torch.isfinite(out).all())


def test_bad_inputs():
    model = mlp()
    x = torch.randn(2, 6, dtype=torch.float64)
    caso = SecondOrderSaliency(model)
    with pytest.raises(ValueError, match="lambda2"):
        caso.attribute(x, lambda2=0.0)
    with pytest.raises(ValueError, match="lambda2_mode"):
        caso.attribute(x, lambda2_mode="relative")
    with pytest.raises(ValueError, match="non-convex"):
        caso.attribute(x, lambda2=1e-6, lambda2_mode="absolute")
    with pytest.raises(ValueError, match="objective"):
        caso.attribute(x, objective="hinge")
    with pytest.raises(ValueError, match="mode"):
        SecondOrderSaliency(model, mode="fast")


def test_zero_hessian_warns_and_falls_back_to_gradient():
    torch.manual_seed(0)
    relu = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3)).double().eval()
    x = torch.randn(2, 5, dtype=torch.float64)
    caso = SecondOrderSaliency(relu)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = caso.attribute(x, target=1, objective="output", lambda2=2.0)
    assert any(issubclass(w.category, ZeroHessianWarning) for w in caught)
    cafo = caso.attribute(x, target=1, objective="output", lambda2=2.0, second_order=False)
    torch.testing.assert_close(got, cafo, atol=1e-14, rtol=1e-12)


def test_lambda_max_of_a_tiny_float32_hessian():
    # Loss Hessians of real float32 networks can be ~1e-5 in scale (random
    # resnet18); lambda_max must still be found, or a small lambda2 in "shift"
    # mode would make the problem non-convex.
    model64 = mlp(d_in=20, hidden=32, d_out=10, act=nn.ReLU)
    with torch.no_grad():
        model64[-1].weight.mul_(1e-2)
    model32 = mlp(d_in=20, hidden=32, d_out=10, act=nn.ReLU, dtype=torch.float32)
    model32.load_state_dict({k: v.float() for k, v in model64.state_dict().items()})
    x = torch.randn(2, 20, dtype=torch.float64)
    targets = model64(x).argmax(1).tolist()
    _, h = dense_problem(model64, x, targets)
    lam_max = torch.linalg.eigvalsh(h)[:, -1]
    assert float(lam_max.max()) < 1e-3
    caso = SecondOrderSaliency(model32)
    d = caso.attribute(x.float(), lambda2=0.01 * float(lam_max.min()))
    torch.testing.assert_close(caso.last_info.lambda_max.double(), lam_max, atol=0, rtol=1e-3)
    assert bool(torch.isfinite(d).all())
