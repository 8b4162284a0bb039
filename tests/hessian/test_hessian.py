"""The HVP engine against exact float64 oracles (torch.func.hessian, dense algebra)."""

import warnings

import pytest
import torch
from torch import nn

from captum_higher_order._inputs import ZeroHessianWarning
from captum_higher_order.hessian import engine, hessian, hvp, solve, top_eigenpairs, value_and_grad
from tests.models import mlp, small_cnn, two_input_net

MODES_EXACT = ["fwd_rev", "rev_rev", "auto"]


def per_sample_objective(z, t, objective):
    if objective == "output":
        return z[t]
    log_p = torch.log_softmax(z, 0)[t]
    return {"log_softmax": log_p, "cross_entropy": -log_p, "softmax": log_p.exp()}[objective]


def exact_hessians(model, x, targets, objective, extra=None):
    """Per-sample Hessians from torch.func.hessian on one sample at a time."""
    out = []
    for b in range(x.shape[0]):

        def f(xb, b=b):
            args = () if extra is None else (extra[b : b + 1],)
            z = model(xb.unsqueeze(0), *args)[0]
            return per_sample_objective(z, targets[b], objective)

        out.append(torch.func.hessian(f)(x[b]).reshape(x[0].numel(), x[0].numel()))
    return torch.stack(out)


def rel_err(a, b):
    return float((a - b).detach().norm() / b.detach().norm().clamp_min(1e-300))


@pytest.mark.parametrize("mode", MODES_EXACT)
@pytest.mark.parametrize("act", [nn.Softplus, nn.GELU])
@pytest.mark.parametrize("objective", ["output", "cross_entropy", "softmax", "log_softmax"])
def test_hessian_matches_torch_func_mlp(mode, act, objective):
    model = mlp(act=act)
    x = torch.randn(3, 6, dtype=torch.float64)
    targets = [0, 3, 1]
    expected = exact_hessians(model, x, targets, objective)
    got = hessian(model, x, target=targets, objective=objective, mode=mode)
    assert rel_err(got, expected) < 1e-8


@pytest.mark.parametrize("mode", MODES_EXACT)
def test_hvp_matches_dense_on_cnn_cross_entropy(mode):
    model = small_cnn()
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    targets = [2, 0]
    dense = exact_hessians(model, x, targets, "cross_entropy")
    v = torch.randn(2, 5, 1, 8, 8, dtype=torch.float64)
    got = hvp(model, x, v, target=targets, objective="cross_entropy", mode=mode)
    assert got.shape == v.shape
    expected = torch.einsum("bij,bkj->bki", dense, v.flatten(2)).reshape(v.shape)
    assert rel_err(got, expected) < 1e-8


def test_single_vector_form_and_predicted_target():
    model = mlp()
    x = torch.randn(3, 6, dtype=torch.float64)
    predicted = model(x).argmax(1).tolist()
    dense = exact_hessians(model, x, predicted, "cross_entropy")
    v = torch.randn(3, 6, dtype=torch.float64)
    got = hvp(model, x, v, objective="cross_entropy")  # target None: predicted class
    assert got.shape == v.shape
    assert rel_err(got, torch.einsum("bij,bj->bi", dense, v)) < 1e-8


def test_tuple_inputs_and_additional_forward_args():
    model = two_input_net()
    x1 = torch.randn(3, 3, dtype=torch.float64)
    x2 = torch.randn(3, 2, 2, dtype=torch.float64)
    scale = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    targets = [2, 0, 1]

    expected = []
    for b in range(3):

        def f(flat, b=b):
            z = model(flat[:3].unsqueeze(0), flat[3:].view(1, 2, 2), scale[b : b + 1])[0]
            return torch.log_softmax(z, 0)[targets[b]]

        expected.append(torch.func.hessian(f)(torch.cat([x1[b], x2[b].flatten()])))
    expected = torch.stack(expected)
    got = hessian(model, (x1, x2), target=targets, additional_forward_args=(scale,),
                  objective="log_softmax")
    assert rel_err(got, expected) < 1e-8
    # hvp returns the tuple structure, split per input
    v1 = torch.randn(3, 4, 3, dtype=torch.float64)
    v2 = torch.randn(3, 4, 2, 2, dtype=torch.float64)
    h1, h2 = hvp(model, (x1, x2), (v1, v2), target=targets, additional_forward_args=scale,
                 objective="log_softmax")
    flat_v = torch.cat([v1, v2.flatten(2)], dim=2)
    flat_h = torch.einsum("bij,bkj->bki", expected, flat_v)
    assert rel_err(torch.cat([h1, h2.flatten(2)], dim=2), flat_h) < 1e-8


def test_ggn_exact_on_relu_cross_entropy_and_not_on_softplus():
    x = torch.randn(4, 6, dtype=torch.float64)
    targets = [0, 1, 2, 3]
    relu = mlp(act=nn.ReLU)
    exact = exact_hessians(relu, x, targets, "cross_entropy")
    ggn = hessian(relu, x, target=targets, objective="cross_entropy", mode="ggn")
    assert exact.abs().max() > 1e-3
    assert rel_err(ggn, exact) < 1e-10
    # Closed form of Singla et al.: H = J^T (diag(p) - p p^T) J.
    for b in range(4):
        jac = torch.func.jacrev(lambda xb: relu(xb.unsqueeze(0))[0])(x[b])
        p = torch.softmax(relu(x[b : b + 1])[0], 0)
        closed = jac.T @ (torch.diag(p) - torch.outer(p, p)) @ jac
        assert rel_err(ggn[b], closed) < 1e-10
    smooth = mlp(act=nn.Softplus)
    exact_s = exact_hessians(smooth, x, targets, "cross_entropy")
    ggn_s = hessian(smooth, x, target=targets, objective="cross_entropy", mode="ggn")
    assert rel_err(ggn_s, exact_s) > 1e-3  # the dropped term J^T-curvature is real


def test_group_hessian_equals_projected_dense():
    model = small_cnn()
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    mask = (torch.arange(64).view(1, 1, 8, 8) % 8) // 3 + 10 * (torch.arange(64).view(
        1, 1, 8, 8) // 32)  # non-contiguous ids
    dense = exact_hessians(model, x, [1, 2], "cross_entropy")
    ids = torch.unique(mask)
    proj = (mask.flatten().unsqueeze(1) == ids.unsqueeze(0)).double()  # (F, G)
    expected = proj.T @ dense @ proj
    got = hessian(model, x, target=[1, 2], objective="cross_entropy", feature_mask=mask)
    assert got.shape == (2, len(ids), len(ids))
    assert rel_err(got, expected) < 1e-8


def test_group_hessian_tuple_mask_shares_ids_across_inputs():
    model = two_input_net()
    x1 = torch.randn(2, 3, dtype=torch.float64)
    x2 = torch.randn(2, 2, 2, dtype=torch.float64)
    scale = torch.ones(2, dtype=torch.float64)
    m1 = torch.tensor([[0, 1, 2]])
    m2 = torch.tensor([[[2, 0], [1, 1]]])
    full = hessian(model, (x1, x2), target=1, additional_forward_args=scale)
    proj = (torch.cat([m1.flatten(), m2.flatten()]).unsqueeze(1) == torch.arange(3)).double()
    grouped = hessian(model, (x1, x2), target=1, additional_forward_args=scale,
                      feature_mask=(m1, m2))
    assert rel_err(grouped, proj.T @ full @ proj) < 1e-10


def test_per_sample_feature_mask():
    model = mlp()
    x = torch.randn(2, 6, dtype=torch.float64)
    mask = torch.tensor([[0, 0, 1, 1, 2, 2], [0, 1, 2, 0, 1, 2]])
    full = hessian(model, x, target=0)
    got = hessian(model, x, target=0, feature_mask=mask)
    for b in range(2):
        proj = (mask[b].unsqueeze(1) == torch.arange(3)).double()
        assert rel_err(got[b], proj.T @ full[b] @ proj) < 1e-10


@pytest.mark.parametrize("which", ["LA", "LM"])
def test_top_eigenpairs_match_eigh(which):
    model = mlp(d_in=12, hidden=24)
    x = torch.randn(3, 12, dtype=torch.float64)
    targets = [0, 1, 3]
    dense = exact_hessians(model, x, targets, "softmax")  # indefinite
    res = top_eigenpairs(model, x, k=3, target=targets, objective="softmax", which=which,
                         tol=1e-12)
    evals, evecs = torch.linalg.eigh(dense)
    key = evals if which == "LA" else evals.abs()
    order = key.argsort(dim=1, descending=True)[:, :3]
    expected = evals.gather(1, order)
    assert rel_err(res.eigenvalues, expected) < 1e-8
    for b in range(3):
        for i in range(3):
            v = res.eigenvectors[b, i]
            ref = evecs[b, :, order[b, i]]
            assert abs(abs(float(v @ ref)) - 1) < 1e-8
    assert float(res.residuals.max()) < 1e-8


def test_eigenpairs_find_spectrum_beyond_invariant_krylov_space():
    """ReLU classifier under cross-entropy: Hessian rank <= C-1 = 3, so Lanczos
    hits an invariant subspace; the restart must still give the right answer."""
    model = mlp(d_in=10, act=nn.ReLU)
    x = torch.randn(2, 10, dtype=torch.float64)
    dense = exact_hessians(model, x, [0, 1], "cross_entropy")
    res = top_eigenpairs(model, x, k=5, target=[0, 1], objective="cross_entropy", tol=1e-12)
    expected = torch.linalg.eigvalsh(dense).flip(1)[:, :5]
    assert torch.allclose(res.eigenvalues, expected, atol=1e-10)


def test_solve_matches_dense_solve():
    model = mlp(d_in=10)
    x = torch.randn(3, 10, dtype=torch.float64)
    targets = [1, 2, 0]
    dense = exact_hessians(model, x, targets, "cross_entropy")
    lam = torch.linalg.eigvalsh(dense)[:, -1] + 0.5
    g = torch.randn(3, 10, dtype=torch.float64)
    res = solve(model, x, g, shift=lam, target=targets, objective="cross_entropy", tol=1e-12)
    a = lam.view(-1, 1, 1) * torch.eye(10, dtype=torch.float64) - dense
    expected = torch.linalg.solve(a, g.unsqueeze(-1)).squeeze(-1)
    assert rel_err(res.solution, expected) < 1e-8
    assert bool(res.converged.all())
    assert float(res.residual.max()) < 1e-10
    assert int(res.iterations.max()) <= 10 + 1  # CG: at most n steps in exact arithmetic


def test_solve_refuses_indefinite_shift():
    model = mlp()
    x = torch.randn(2, 6, dtype=torch.float64)
    with pytest.raises(ValueError, match="positive definite"):
        solve(model, x, torch.ones(2, 6, dtype=torch.float64), shift=-10.0, target=0,
              objective="cross_entropy")


def test_value_and_grad_matches_autograd():
    model = two_input_net()
    x1 = torch.randn(2, 3, dtype=torch.float64)
    x2 = torch.randn(2, 2, 2, dtype=torch.float64)
    scale = torch.tensor([1.0, 3.0], dtype=torch.float64)
    values, (g1, g2) = value_and_grad(model, (x1, x2), target=[0, 2],
                                      additional_forward_args=scale, objective="cross_entropy")
    a1, a2 = x1.clone().requires_grad_(), x2.clone().requires_grad_()
    loss = nn.functional.cross_entropy(model(a1, a2, scale), torch.tensor([0, 2]),
                                       reduction="none")
    ref1, ref2 = torch.autograd.grad(loss.sum(), (a1, a2))
    assert torch.allclose(values, loss.detach())
    assert torch.allclose(g1, ref1) and torch.allclose(g2, ref2)


class _NoForwardAD(torch.autograd.Function):
    """x**3 with a hand-written (differentiable) backward and no jvp, in the old
    style that torch.func transforms refuse."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x**3

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * 3 * x**2


class CubeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 3).double()

    def forward(self, x):
        return self.lin(_NoForwardAD.apply(x))


def test_auto_falls_back_to_rev_rev_with_one_warning():
    engine._warned_fallback.clear()
    model = CubeNet().eval()
    x = torch.randn(2, 4, dtype=torch.float64)
    with pytest.raises(RuntimeError, match="setup_context"):
        hessian(model, x, target=0, mode="fwd_rev")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = hessian(model, x, target=0)
        hessian(model, x, target=0)
    fallback = [w for w in caught if "reverse-over-reverse" in str(w.message)]
    assert len(fallback) == 1
    weight = model.lin.weight[0]
    expected = torch.diag_embed(6 * x * weight)  # d2/dx2 sum_i w_i x_i^3
    assert rel_err(got, expected) < 1e-12


def test_oom_halves_the_chunk_and_retries(monkeypatch):
    calls = []
    real = engine.hvp_fwd_rev

    def flaky(problem, vectors):
        k = vectors[0].shape[0]
        calls.append(k)
        if k > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(problem, vectors)

    monkeypatch.setattr(engine, "hvp_fwd_rev", flaky)
    model = mlp()
    x = torch.randn(2, 6, dtype=torch.float64)
    got = hessian(model, x, target=1, mode="fwd_rev", chunk_size=8)
    monkeypatch.setattr(engine, "hvp_fwd_rev", real)
    assert calls[:3] == [6, 3, 1]
    assert rel_err(got, exact_hessians(model, x, [1, 1], "output")) < 1e-10


def test_auto_chunk_respects_memory_budget(monkeypatch):
    monkeypatch.setattr(engine, "resolve_budget", lambda *a: 1)  # one vector at a time
    seen = []
    real = engine.hvp_fwd_rev

    def spy(problem, vectors):
        seen.append(vectors[0].shape[0])
        return real(problem, vectors)

    monkeypatch.setattr(engine, "hvp_fwd_rev", spy)
    model = mlp(d_in=20)
    x = torch.randn(2, 20, dtype=torch.float64)
    got = hessian(model, x, target=1, mode="fwd_rev")
    assert set(seen) == {1} and len(seen) == 20
    assert rel_err(got, exact_hessians(model, x, [1, 1], "output")) < 1e-10


def test_float32_and_zero_hessian_warning():
    relu = mlp(act=nn.ReLU, dtype=torch.float32)
    x = torch.randn(2, 6)
    with pytest.warns(ZeroHessianWarning, match="SmoothHess"):
        h = hessian(relu, x, target=0)
    assert h.dtype == torch.float32 and not bool(h.any())


def test_no_graph_is_left_attached():
    model = mlp()
    x = torch.randn(2, 6, dtype=torch.float64)
    assert not hessian(model, x, target=0).requires_grad
    v = torch.randn(2, 6, dtype=torch.float64)
    for mode in ["fwd_rev", "rev_rev", "ggn"]:
        assert not hvp(model, x, v, target=0, mode=mode).requires_grad


# --------------------------------------------------------------------------- refusals


class BNNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.bn = nn.BatchNorm1d(4)

    def forward(self, x):
        return self.bn(self.fc(x))


def test_refuses_batchnorm_in_training_mode():
    model = BNNet().double().train()
    with pytest.raises(ValueError, match=r"model.eval\(\)"):
        hessian(model, torch.randn(3, 4, dtype=torch.float64), target=0, objective="softmax")
    assert model.training  # untouched
    model.eval()  # fine in eval mode
    hessian(model, torch.randn(3, 4, dtype=torch.float64), target=0, objective="softmax")


def test_refuses_integer_inputs_pointing_to_embeddings():
    model = nn.Sequential(nn.Embedding(10, 4), nn.Flatten(), nn.Linear(8, 2))
    with pytest.raises(TypeError, match="embedding"):
        hessian(model, torch.randint(0, 10, (2, 2)), target=0)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_refuses_non_finite_inputs(bad):
    x = torch.randn(2, 6, dtype=torch.float64)
    x[1, 2] = bad
    with pytest.raises(ValueError, match="NaN or Inf"):
        hessian(mlp(), x, target=0)


def test_refuses_bad_output_shapes():
    model = nn.Sequential(nn.Linear(4, 6), nn.Unflatten(1, (2, 3)))
    with pytest.raises(ValueError, match=r"\(B,\) or \(B, C\)"):
        hessian(model, torch.randn(2, 4), target=0)


@pytest.mark.parametrize("target", [4, -1, [0, 9], torch.tensor([1, 5])])
def test_refuses_targets_out_of_range(target):
    with pytest.raises(ValueError, match="out of range"):
        hessian(mlp(), torch.randn(2, 6, dtype=torch.float64), target=target)


def test_requires_target_for_multiclass_output_objective():
    with pytest.raises(ValueError, match="pass `target`"):
        hessian(mlp(), torch.randn(2, 6, dtype=torch.float64))


def test_refuses_wrong_target_length_and_unknown_objective_and_mode():
    x = torch.randn(2, 6, dtype=torch.float64)
    with pytest.raises(ValueError, match="one entry per sample"):
        hessian(mlp(), x, target=[0, 1, 2])
    with pytest.raises(ValueError, match="objective"):
        hessian(mlp(), x, target=0, objective="hinge")
    with pytest.raises(ValueError, match="mode"):
        hessian(mlp(), x, target=0, mode="magic")


def test_refuses_dense_hessian_above_limit_naming_feature_mask():
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 40 * 40, 2), nn.Tanh()).double().eval()
    x = torch.randn(1, 3, 40, 40, dtype=torch.float64)
    with pytest.raises(ValueError, match="feature_mask"):
        hessian(model, x, target=0)
    mask = torch.arange(40).view(1, 1, 1, 40).expand(1, 3, 40, 40) // 10
    assert hessian(model, x, target=0, feature_mask=mask).shape == (1, 4, 4)


def test_refuses_bad_feature_masks_and_vectors():
    x = torch.randn(2, 6, dtype=torch.float64)
    with pytest.raises(ValueError, match="broadcast"):
        hessian(mlp(), x, target=0, feature_mask=torch.zeros(1, 5, dtype=torch.long))
    with pytest.raises(TypeError, match="integer"):
        hessian(mlp(), x, target=0, feature_mask=torch.zeros(1, 6))
    with pytest.raises(ValueError, match="vectors"):
        hvp(mlp(), x, torch.randn(2, 3, 5, dtype=torch.float64), target=0)


def test_inputs_requires_grad_and_values_untouched():
    model = mlp()
    x = torch.randn(2, 6, dtype=torch.float64)
    before = x.clone()
    hessian(model, x, target=0, mode="rev_rev")
    assert not x.requires_grad and torch.equal(x, before)
    y = x.clone().requires_grad_(True)
    hessian(model, y, target=0)
    assert y.requires_grad and y.grad is None


def test_eigenpairs_of_a_tiny_float32_hessian():
    """A Hessian of size ~1e-5 in float32 must not be mistaken for an invariant
    (zero) Krylov space."""
    model = mlp(d_in=8, dtype=torch.float32)
    x = torch.randn(2, 8)

    def small(inp):
        return 1e-5 * model(inp)

    dense = torch.stack([
        torch.func.hessian(lambda xb: small(xb.unsqueeze(0))[0, 1])(x[b]) for b in range(2)
    ]).detach()
    res = top_eigenpairs(small, x, k=1, target=1, tol=1e-4)
    expected = torch.linalg.eigvalsh(dense.double())[:, -1]
    assert torch.allclose(res.eigenvalues[:, 0].double(), expected, rtol=1e-3)


def test_solve_keeps_a_python_float_shift_in_float64():
    model = mlp(d_in=4)
    x = torch.randn(1, 4, dtype=torch.float64)
    shift = 1.0 + 1e-12  # not representable in float32
    dense = exact_hessians(model, x, [0], "output")[0]
    g = torch.randn(1, 4, dtype=torch.float64)
    lam_max = float(torch.linalg.eigvalsh(dense)[-1])
    res = solve(model, x, g, shift=shift + lam_max, target=0, tol=1e-14, max_iter=50)
    a = (shift + lam_max) * torch.eye(4, dtype=torch.float64) - dense
    assert rel_err(res.solution[0], torch.linalg.solve(a, g[0])) < 1e-12
