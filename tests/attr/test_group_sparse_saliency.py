"""GroupSparseSaliency (sparse CASO, Singla et al. 2019) against dense oracles:
the CG/dense solution at lambda1 = 0, the optimality (KKT) conditions of the L1
and group-lasso problems, a long dense proximal-gradient run, and the 10-step
solver of the authors' code."""

import functools
import warnings

import pytest
import torch
from torch import nn

from captum_higher_order._inputs import ZeroHessianWarning
from captum_higher_order.attr.group_sparse_saliency import GroupSparseSaliency
from captum_higher_order.attr.second_order_saliency import SecondOrderSaliency
from tests.attr.test_second_order_saliency import dense_caso, dense_problem, rel
from tests.models import mlp, small_cnn


@functools.cache
def setup_cnn(act=nn.GELU, batch=2, seed=0):
    model = small_cnn(act=act, seed=seed)
    gen = torch.Generator().manual_seed(seed + 11)
    x = torch.randn(batch, 1, 8, 8, generator=gen, dtype=torch.float64)
    targets = [1, 2, 0][:batch]
    g, h = dense_problem(model, x, targets)
    return model, x, targets, g, h


def dense_a(h, lam_eff):
    eye = torch.eye(h.shape[1], dtype=h.dtype)
    return lam_eff.view(-1, 1, 1) * eye - h


def soft(v, t):
    return v.sign() * (v.abs() - t).clamp_min(0)


def dense_objective(a, g, lam1, d):
    return -(g * d).sum(1) + 0.5 * torch.einsum("bi,bij,bj->b", d, a, d) + lam1 * d.abs().sum(1)


def dense_ista(a, g, lam1, lipschitz, steps):
    d = torch.zeros_like(g)
    for _ in range(steps):
        grad = torch.einsum("bij,bj->bi", a, d) - g
        d = soft(d - grad / lipschitz.unsqueeze(1), (lam1 / lipschitz).unsqueeze(1))
    return d


def test_lambda1_zero_equals_cg_and_dense_solve():
    model, x, targets, g, h = setup_cnn()
    lam_eff = torch.linalg.eigvalsh(h)[:, -1] + 0.01
    expected = dense_caso(g, h, lam_eff)
    fista = GroupSparseSaliency(model).attribute(
        x, target=targets, lambda1=0.0, lambda2=0.01, tol=1e-10, eig_tol=1e-10)
    cg = SecondOrderSaliency(model).attribute(
        x, target=targets, lambda2=0.01, cg_tol=1e-11, eig_tol=1e-10)
    assert rel(fista, cg) < 1e-6
    assert rel(fista.reshape(g.shape), expected) < 1e-6


def test_l1_solution_is_optimal_and_beats_ten_prox_steps():
    model, x, targets, g, h = setup_cnn()
    # A small ridge makes the problem ill-conditioned (kappa ~ 100), as for
    # real networks, where 10 fixed steps are far from the minimiser.
    lam_eff = torch.linalg.eigvalsh(h)[:, -1] + 1e-4
    a = dense_a(h, lam_eff)
    lam1 = 0.3 * g.abs().amax(1)  # a per-sample tensor lambda1
    explainer = GroupSparseSaliency(model)
    d, delta = explainer.attribute(
        x, target=targets, lambda1=lam1, lambda2=1e-4, tol=1e-10, eig_tol=1e-10,
        return_convergence_delta=True)
    d = d.reshape(g.shape)
    assert bool((delta <= 1e-10).all())
    # KKT of min -g.d + 1/2 d'Ad + lam1 |d|_1: r = g - A d satisfies
    # r_i = lam1 sign(d_i) on the support and |r_i| <= lam1 off it.
    r = g - torch.einsum("bij,bj->bi", a, d)
    on = d != 0
    lam = lam1.unsqueeze(1).expand_as(d)
    assert bool(on.any()) and bool((~on).any())
    torch.testing.assert_close(r[on], lam[on] * d[on].sign(), atol=1e-9, rtol=0)
    assert bool((r[~on].abs() <= lam[~on] + 1e-9).all())
    # Given the support S and signs s, the minimiser solves A_SS d_S = g_S - lam1 s_S.
    lipschitz = torch.linalg.eigvalsh(a)[:, -1]
    for b in range(g.shape[0]):
        sup = on[b]
        d_s = torch.linalg.solve(a[b][sup][:, sup], g[b, sup] - lam1[b] * d[b, sup].sign())
        torch.testing.assert_close(d[b, sup], d_s, atol=1e-9, rtol=1e-7)
    # And its objective is below that of the authors' 10 fixed proximal steps.
    ten = dense_ista(a, g, lam1, lipschitz, 10)
    f_fista = dense_objective(a, g, lam1, d)
    f_ten = dense_objective(a, g, lam1, ten)
    assert bool((f_fista < f_ten - 1e-3 * f_ten.abs()).all()), (f_fista, f_ten)


def test_first_order_is_soft_threshold_over_lambda2():
    model, x, targets, g, _ = setup_cnn()
    lam1 = 0.2 * float(g.abs().max())
    got = GroupSparseSaliency(model).attribute(
        x, target=targets, lambda1=lam1, lambda2=3.0, second_order=False)
    torch.testing.assert_close(got.reshape(g.shape), soft(g, lam1) / 3.0,
                               atol=1e-15, rtol=1e-12)


@pytest.mark.parametrize("sparsity_range", [(0.75, 1.0), (0.4, 0.5)])
@pytest.mark.parametrize("second_order", [True, False])
def test_searched_lambda1_gives_sparsity_in_range(sparsity_range, second_order):
    model, x, targets, g, h = setup_cnn(batch=3)
    explainer = GroupSparseSaliency(model)
    d = explainer.attribute(x, target=targets, sparsity_range=sparsity_range,
                            second_order=second_order, lambda2=0.01)
    info = explainer.last_info
    lo, hi = sparsity_range
    zeros = (d == 0).flatten(1).double().mean(1)
    assert bool(((zeros >= lo) & (zeros <= hi)).all()), zeros
    assert bool((d != 0).flatten(1).any(1).all())  # never the empty map
    torch.testing.assert_close(info.sparsity, zeros)
    assert bool(info.in_range.all())
    assert bool((info.lambda1 > 0).all())
    # The reported lambda1 reproduces the map.
    again = explainer.attribute(x, target=targets, lambda1=info.lambda1,
                                second_order=second_order, lambda2=0.01)
    assert rel(again, d) < 1e-3


def test_group_lasso_selects_whole_groups_and_is_optimal():
    model, x, targets, g, h = setup_cnn(batch=2)
    mask = (torch.arange(64).view(8, 8) // 2 % 4 + 4 * (torch.arange(8).view(8, 1) // 2))
    mask = mask.view(1, 1, 8, 8)  # 16 blocks of 2x2 pixels
    explainer = GroupSparseSaliency(model)
    d = explainer.attribute(x, target=targets, feature_mask=mask, lambda2=0.01,
                            sparsity_range=(0.5, 0.9), tol=1e-10, eig_tol=1e-10)
    flat = d.reshape(g.shape)
    ids = mask.reshape(-1)
    zero_groups = nonzero_groups = 0
    for b in range(2):
        for a in range(16):
            block = flat[b, ids == a]
            assert bool((block == 0).all()) or bool((block != 0).all()), block
            zero_groups += int(bool((block == 0).all()))
            nonzero_groups += int(bool((block != 0).all()))
    assert zero_groups > 0 and nonzero_groups > 0
    # KKT of the weighted group lasso sum_a sqrt(n_a) ||d_a||: with r = g - A d,
    # r_a = lam1 sqrt(n_a) d_a / ||d_a|| on active groups, ||r_a|| <= lam1 sqrt(n_a) off.
    lam_eff = torch.linalg.eigvalsh(h)[:, -1] + 0.01
    r = g - torch.einsum("bij,bj->bi", dense_a(h, lam_eff), flat)
    lam1 = explainer.last_info.lambda1
    for b in range(2):
        for a in range(16):
            sel = ids == a
            w = lam1[b] * 2.0  # sqrt(4 pixels)
            if bool((flat[b, sel] == 0).all()):
                assert float(r[b, sel].norm()) <= float(w) + 1e-8
            else:
                unit = flat[b, sel] / flat[b, sel].norm()
                torch.testing.assert_close(r[b, sel], w * unit, atol=1e-8, rtol=0)


def test_bad_inputs():
    model = mlp()
    x = torch.randn(2, 6, dtype=torch.float64)
    explainer = GroupSparseSaliency(model)
    with pytest.raises(ValueError, match="lambda1"):
        explainer.attribute(x, lambda1=-0.1)
    with pytest.raises(ValueError, match="lambda1"):
        explainer.attribute(x, lambda1=torch.tensor([0.1, -1.0]))
    for bad in [(0.5, 1.2), (-0.1, 0.5), (0.9, 0.5)]:
        with pytest.raises(ValueError, match="sparsity_range"):
            explainer.attribute(x, sparsity_range=bad)
    with pytest.raises(TypeError, match="sparsity_range"):
        explainer.attribute(x, sparsity_range=0.8)
    with pytest.raises(ValueError, match="non-convex"):
        explainer.attribute(x, lambda1=0.01, lambda2=1e-6, lambda2_mode="absolute")
    with pytest.raises(ValueError, match="tol"):
        explainer.attribute(x, lambda1=0.01, tol=0)


def test_zero_hessian_warns():
    torch.manual_seed(0)
    relu = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3)).double().eval()
    x = torch.randn(2, 5, dtype=torch.float64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = GroupSparseSaliency(relu).attribute(
            x, target=0, objective="output", lambda1=0.05, lambda2=2.0)
    assert any(issubclass(w.category, ZeroHessianWarning) for w in caught)
    g = relu[2].weight[0] @ (relu[0].weight * (relu[0](x) > 0).double().unsqueeze(2))
    # H = 0: the answer is the first-order closed form (note g of "output" is +grad).
    torch.testing.assert_close(got, soft(g.detach(), 0.05) / 2.0, atol=1e-12, rtol=1e-10)


def test_warns_when_fista_hits_max_iter():
    model, x, targets, g, h = setup_cnn()
    with pytest.warns(UserWarning, match="max_iter"):
        GroupSparseSaliency(model).attribute(
            x, target=targets, lambda1=1e-4, lambda2=1e-4, tol=1e-12, max_iter=3)
