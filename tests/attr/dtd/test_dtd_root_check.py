"""DTDRootCheck: relevance against Captum's LRP and closed forms, root reports
against hand-computed roots (Sixt & Landgraf 2022), BatchNorm folding, errors."""

import copy
import json
import math

import pytest
import torch
from captum.attr import LRP
from captum.attr._utils.lrp_rules import Alpha1_Beta0_Rule, EpsilonRule, GammaRule
from scipy.stats import spearmanr
from torch import nn

from captum_higher_order.attr.dtd.rules import roots
from captum_higher_order.attr.dtd_root_check import (
    DTDRootCheck,
    DTDThresholds,
    UnsupportedModuleError,
    fold_batchnorm,
    spearman,
)
from tests.models import mlp, small_cnn

D64 = torch.float64


def _deep_mlp(bias=True, seed=1):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(5, 12, bias=bias), nn.ReLU(), nn.Linear(12, 10, bias=bias), nn.ReLU(),
        nn.Linear(10, 8, bias=bias), nn.ReLU(), nn.Linear(8, 3, bias=bias),
    ).to(D64).eval()


class _PoolCNN(nn.Module):
    """Conv-ReLU-MaxPool-Conv-ReLU-AvgPool-Linear, flatten in forward (Captum's
    LRP has no rule for nn.Flatten)."""

    def __init__(self, bias):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 3, 3, padding=1, bias=bias)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(3, 4, 3, padding=1, bias=bias)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.AvgPool2d(2)
        self.fc = nn.Linear(16, 3, bias=bias)

    def forward(self, x):
        x = self.pool2(self.relu2(self.conv2(self.pool1(self.relu1(self.conv1(x))))))
        return self.fc(x.flatten(1))


def _pool_cnn(bias=True, seed=2):
    torch.manual_seed(seed)
    return _PoolCNN(bias).to(D64).eval()


def _captum_lrp(model, x, target, rule_factory):
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            m.rule = rule_factory()
    return LRP(model).attribute(x.clone(), target=target).detach()


# --------------------------------------------------------------------------- relevance


@pytest.mark.parametrize("make, shape", [
    (lambda: mlp(act=nn.ReLU), (4, 6)),
    (_deep_mlp, (4, 5)),
    (lambda: small_cnn(nn.ReLU), (4, 1, 8, 8)),
    (_pool_cnn, (4, 1, 8, 8)),
])
def test_zplus_equals_captum_alpha1_beta0(make, shape):
    model = make()
    x = torch.rand(*shape, dtype=D64)
    target = [0, 1, 2, 1]
    ours = DTDRootCheck(model, rule="z+").attribute(x, target=target)
    ref = _captum_lrp(model, x, target, lambda: Alpha1_Beta0_Rule(set_bias_to_zero=True))
    assert ours.shape == x.shape
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=0)
    assert ours.abs().max() > 1e-3  # not trivially zero


def test_gamma_and_lrp0_equal_captum_rules():
    model = _deep_mlp(bias=False)
    x = torch.rand(3, 5, dtype=D64)
    ours = DTDRootCheck(model, rule="gamma", rule_kwargs={"gamma": 0.5}).attribute(x, target=2)
    ref = _captum_lrp(model, x, 2, lambda: GammaRule(gamma=0.5, set_bias_to_zero=True))
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=0)
    model = _deep_mlp(bias=False)
    ours = DTDRootCheck(model, rule="lrp0").attribute(x, target=2)
    ref = _captum_lrp(model, x, 2, lambda: EpsilonRule(epsilon=1e-9))
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=0)


def test_single_layer_rules_closed_form():
    torch.manual_seed(3)
    lin = nn.Linear(4, 2).to(D64).eval()
    x = torch.rand(2, 4, dtype=D64) * 0.8 + 0.1
    t = 1
    w = lin.weight[t].detach()
    out = lin(x)[:, t].detach()
    wp, wn = w.clamp(min=0), w.clamp(max=0)
    low, high = torch.zeros(4, dtype=D64), torch.ones(4, dtype=D64)
    expected = {
        "w2": (w * w / (w * w).sum()).expand(2, 4),
        "zbox": (x * w - low * wp - high * wn),
        "gamma": x * (w + 0.25 * wp),
        "z+": x * wp,
        "lrp0": x * w,
    }
    for rule, share in expected.items():
        kwargs = {"low": 0.0, "high": 1.0} if rule == "zbox" else None
        got = DTDRootCheck(lin, rule=rule, rule_kwargs=kwargs).attribute(x, target=t)
        share = share / share.sum(1, keepdim=True)
        torch.testing.assert_close(got, share * out.unsqueeze(1), atol=1e-7, rtol=0,
                                   msg=lambda m, r=rule: f"{r}: {m}")


# --------------------------------------------------------------------------- roots


def test_lrp0_bias_free_roots_at_zero_equals_gradient_times_input():
    model = _pool_cnn(bias=False)
    x = torch.rand(3, 1, 8, 8, dtype=D64)
    dtd = DTDRootCheck(model, rule="lrp0")
    report = dtd.check(x, target=[0, 1, 2], n_segment_points=4)
    # The roots themselves, recomputed from each layer's input: exactly zero.
    a = x.reshape(3, -1)
    w = torch.randn(3, a.shape[1], dtype=D64)
    r, ok = roots("lrp0", {}, a, w, torch.zeros(3, dtype=D64), None, None, 1e-150)
    assert bool(ok.all()) and r.abs().max() < 1e-12
    assert (report.n_roots > 0).all()
    assert torch.equal(report.valid_share, torch.ones_like(report.valid_share))
    assert report.root_dependence.abs().max() < 1e-8
    assert report.taylor_residual.max() < 1e-10
    assert report.domain_violations.sum() == 0
    assert (report.cosine_gxi > 0.999999).all() and bool(report.equals_gxi.all())
    assert (report.rel_l1_gxi < 1e-5).all()  # only the 1e-9 stabiliser differs
    assert report.verdict == ["PASS"] * 3
    # gradient x input oracle computed here with autograd
    xg = x.clone().requires_grad_(True)
    out = model(xg)
    (g,) = torch.autograd.grad(out[torch.arange(3), torch.tensor([0, 1, 2])].sum(), xg)
    torch.testing.assert_close(dtd.attribute(x, target=[0, 1, 2]), g * x, atol=1e-6, rtol=1e-5)


def _constructed_net():
    """h1 = relu(x1 + x2), h2 = relu(x1 - 0.5), out = h1 + h2. At x = (1, 1) the
    z+ root of h1 is (0, 0), where h2 is switched off: it leaves the region."""
    net = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1)).to(D64).eval()
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 1.0], [1.0, 0.0]]))
        net[0].bias.copy_(torch.tensor([0.0, -0.5]))
        net[2].weight.copy_(torch.tensor([[1.0, 1.0]]))
        net[2].bias.zero_()
    return net


def test_root_outside_linear_region_is_flagged():
    net = _constructed_net()
    x = torch.tensor([[1.0, 1.0]], dtype=D64)
    report = DTDRootCheck(net, rule="z+").check(x, n_segment_points=8, n_directions=2000)
    # Relevance (2, 0.5) on (h1, h2); h1's root (0, 0) flips h2; h2's root (0.5, 0.5)
    # keeps h1 on. Valid share 0.5 / 2.5; flipped share 2 / 2.5.
    assert report.n_roots[0].tolist() == [2, 1]
    assert report.valid_share[0, 0].item() == pytest.approx(0.2, abs=1e-12)
    assert report.flipped_root_share[0, 0].item() == pytest.approx(0.8, abs=1e-12)
    assert report.flips_at_root[0, 0, 0].item() == pytest.approx(0.5, abs=1e-12)
    assert report.flips_at_root[0, 0, 1].item() == 0.0
    assert math.isnan(report.flips_at_root[0, 1, 0].item())
    # F(a) = 2.5, F(0) = 0, grad = (2, 1): residual of h1's root |2.5 - 3| / 2.5 = 0.2,
    # h2's root is exact; weighted (2 * 0.2) / 2.5.
    assert report.taylor_residual[0, 0].item() == pytest.approx(0.16, abs=1e-12)
    assert report.valid_share[0, 1].item() == 1.0
    # h1's root is 0 whatever a is; h2's root (0.5, 0.5 a2 / a1) has Jacobian
    # [[0, 0], [-0.5, 0.5]]: E||J u|| = 0.5 * sqrt(2) * 2 / pi over unit u.
    expected = 0.5 * (0.5 * math.sqrt(2) * 2 / math.pi) / 2.5
    assert report.root_dependence[0, 0].item() == pytest.approx(expected, abs=3e-3)
    assert report.verdict == ["FAIL"]
    assert not bool(report.equals_gxi[0])
    lenient = DTDRootCheck(net, rule="z+").check(x, thresholds={"fail_valid_share": 0.1})
    assert lenient.verdict == ["WARN"]
    text = report.summary(per_sample_layers=True)
    assert "FAIL" in text and "0: Linear(2->2)" in text
    json.dumps(report.to_dict())


def test_domain_violations_zplus_negative_inputs_and_zbox():
    model = _deep_mlp(bias=False)
    x = torch.rand(2, 5, dtype=D64)
    ok = DTDRootCheck(model, rule="z+").check(x, target=0, n_segment_points=4)
    assert ok.domain_violations.sum() == 0  # a >= 0 and no biases: 0 <= t <= 1
    neg = DTDRootCheck(model, rule="z+").check(x - 0.5, target=0, n_segment_points=4)
    assert neg.domain_violations[:, 0].sum() > 0 and neg.verdict == ["FAIL", "FAIL"]
    box = DTDRootCheck(model, rule="zbox", rule_kwargs={"low": 0.0, "high": 1.0})
    inside = box.check(x, target=0, n_segment_points=4)
    assert inside.rules == ["zbox", "z+", "z+", "z+"]
    assert inside.domain_violations[:, 0].sum() == 0
    outside = box.check(x + 1.0, target=0, n_segment_points=4)
    assert outside.domain_violations[:, 0].sum() > 0


def test_conservation_zplus_bias_free():
    for model, x in ((_deep_mlp(bias=False), torch.rand(3, 5, dtype=D64)),
                     (_pool_cnn(bias=False), torch.rand(3, 1, 8, 8, dtype=D64))):
        # a tiny stabiliser: the default 1e-9 alone leaks eps / z_j of relevance
        dtd = DTDRootCheck(model, rule="z+", rule_kwargs={"epsilon": 1e-15})
        rel = dtd.attribute(x, target=1)
        out = model(x)[:, 1].detach()
        torch.testing.assert_close(rel.reshape(3, -1).sum(1), out, atol=1e-10, rtol=1e-10)
        report = dtd.check(x, target=1, n_segment_points=4, n_directions=1)
        assert report.conservation_gap.max() < 1e-10
        assert report.conservation_total.max() < 1e-10
        with_bias = DTDRootCheck(_deep_mlp(bias=True), rule="lrp0").attribute(
            torch.rand(3, 5, dtype=D64), target=1)
        assert with_bias.abs().sum() > 0


def test_float32_and_chunking_consistent():
    model = _pool_cnn(bias=False).float()
    x = torch.rand(2, 1, 8, 8)
    dtd = DTDRootCheck(model, rule="lrp0")
    report = dtd.check(x, target=1, n_segment_points=4)
    assert report.verdict == ["PASS", "PASS"]
    model64 = _pool_cnn(bias=True)
    x64 = torch.rand(1, 1, 8, 8, dtype=D64)
    dtd64 = DTDRootCheck(model64, rule="z+")
    a = dtd64.check(x64, target=1, n_segment_points=3, chunk_size=60)
    b = dtd64.check(x64, target=1, n_segment_points=3, chunk_size=100000)
    torch.testing.assert_close(a.valid_share, b.valid_share, equal_nan=True)
    torch.testing.assert_close(a.taylor_residual, b.taylor_residual, equal_nan=True)


# --------------------------------------------------------------------------- BatchNorm


def _bn_net():
    torch.manual_seed(4)
    net = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(48, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Dropout(0.3),
        nn.Linear(6, 3),
    ).to(D64)
    for bn in (net[1], net[6]):
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        with torch.no_grad():
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.2, 0.2)
    return net.eval()


def test_batchnorm_folding_exact_and_model_untouched():
    net = _bn_net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.rand(5, 1, 8, 8, dtype=D64)
    folded = fold_batchnorm(net)
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)) for m in folded.modules())
    torch.testing.assert_close(folded(x), net(x), atol=1e-6, rtol=0)
    net32 = copy.deepcopy(net).float()
    torch.testing.assert_close(fold_batchnorm(net32)(x.float()), net32(x.float()), atol=1e-6,
                               rtol=1e-5)
    dtd = DTDRootCheck(net, rule="z+")
    rel = dtd.attribute(x, target=2)
    dtd.check(x[:2], target=2, n_segment_points=4)
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(not m._forward_hooks for m in net.modules())
    ref = _captum_lrp(fold_batchnorm(net), x, 2, lambda: Alpha1_Beta0_Rule(set_bias_to_zero=True))
    torch.testing.assert_close(rel, ref, atol=1e-6, rtol=0)


def test_batchnorm_in_training_mode_refused():
    net = _bn_net().train()
    with pytest.raises(ValueError, match="eval"):
        DTDRootCheck(net).attribute(torch.rand(2, 1, 8, 8, dtype=D64), target=0)


# --------------------------------------------------------------------------- errors


class _LSTMNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 4, batch_first=True)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(self.lstm(x)[0][:, -1])


class _SkipNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.relu = nn.ReLU()
        self.b = nn.Linear(4, 2)

    def forward(self, x):
        return self.b(self.relu(self.a(x)) + x)


@pytest.mark.parametrize("model, name", [
    (_LSTMNet(), "LSTM"),
    (nn.Sequential(nn.Linear(3, 4), nn.Sigmoid(), nn.Linear(4, 2)), "Sigmoid"),
    (nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.BatchNorm1d(4), nn.Linear(4, 2)),
     "BatchNorm1d"),
])
def test_unsupported_modules_raise_documented_error(model, name):
    with pytest.raises(UnsupportedModuleError, match=name) as info:
        DTDRootCheck(model.eval())
    assert "nn.Linear, nn.Conv2d" in str(info.value)
    assert isinstance(info.value, TypeError)


def test_bad_arguments():
    net = mlp(act=nn.ReLU)
    x = torch.rand(2, 6, dtype=D64)
    with pytest.raises(ValueError, match="not a plain chain"):
        DTDRootCheck(_SkipNet().double().eval()).attribute(torch.rand(2, 4, dtype=D64), 0)
    with pytest.raises(ValueError, match="target"):
        DTDRootCheck(net).attribute(x)
    with pytest.raises(ValueError, match="one input tensor"):
        DTDRootCheck(net).attribute((x, x), target=0)
    with pytest.raises(ValueError, match="low"):
        DTDRootCheck(net, rule="zbox")
    with pytest.raises(ValueError, match="Unknown rule"):
        DTDRootCheck(net, rule="alpha2beta1")
    with pytest.raises(ValueError, match="gamma"):
        DTDRootCheck(net, rule="z+", rule_kwargs={"gamma": 1.0})
    with pytest.raises(ValueError, match="one rule per weight layer"):
        DTDRootCheck(net, rule=["z+", "z+"]).attribute(x, target=0)
    with pytest.raises(ValueError, match="Unknown threshold"):
        DTDRootCheck(net).check(x, target=0, thresholds={"pass_share": 0.5})


def test_rule_per_layer_and_thresholds_object():
    net = mlp(act=nn.ReLU)
    x = torch.rand(2, 6, dtype=D64)
    mixed = DTDRootCheck(net, rule=["w2", "z+", "z+"]).attribute(x, target=1)
    w = net[0].weight.detach()
    # w^2 at the first layer: R_i = sum_j w_ij^2 / sum_i' w_i'j^2 R_j, any input-free.
    upper = DTDRootCheck(net, rule="z+")
    fw, _ = upper._forward(x, 1, None)
    r1 = fw.rel_out[0]
    expected = (r1 / (w * w).sum(1)) @ (w * w)
    torch.testing.assert_close(mixed, expected, atol=1e-10, rtol=1e-8)
    strict = DTDThresholds(pass_valid_share=1.0, fail_valid_share=0.0, pass_residual=0.0,
                           conservation_tol=0.0)
    report = DTDRootCheck(net, rule="z+").check(x, target=1, thresholds=strict,
                                               n_segment_points=2)
    assert report.thresholds == strict and set(report.verdict) <= {"WARN", "PASS", "FAIL"}


def test_spearman_matches_scipy_with_ties():
    torch.manual_seed(5)
    a = torch.randint(0, 4, (3, 20)).double()
    b = torch.randn(3, 20, dtype=D64)
    ours = spearman(a, b)
    for i in range(3):
        assert ours[i].item() == pytest.approx(spearmanr(a[i], b[i]).statistic, abs=1e-12)


@pytest.mark.parametrize("root_support", ["all", "receptive_field"])
def test_first_layer_report_matches_brute_force_on_user_model(root_support):
    """Layer 0 of a conv net with biases, rebuilt neuron by neuron with the user's
    model and autograd: roots from the z+ formula, validity = the model's input
    gradient is unchanged at the segment midpoints, residual of the Taylor step."""
    model = _pool_cnn(bias=True, seed=7)
    x = torch.rand(1, 1, 8, 8, dtype=D64)
    target = [2]
    n = 4
    dtd = DTDRootCheck(model, rule="z+")
    report = dtd.check(x, target=target, n_segment_points=n, root_support=root_support)
    rel_hidden = _relevance_after_first_conv(dtd, x, target)  # (B, 3*8*8)
    jac = torch.autograd.functional.jacobian(
        lambda v: nn.functional.conv2d(v, model.conv1.weight, None, padding=1),
        torch.zeros(1, 1, 8, 8, dtype=D64)).reshape(192, 64)
    bias = model.conv1.bias.detach().repeat_interleave(64)

    def f_and_grad(points, b):
        pts = points.reshape(-1, 1, 8, 8).clone().requires_grad_(True)
        out = model(pts)[:, target[b]]
        (g,) = torch.autograd.grad(out.sum(), pts)
        return out.detach(), g.reshape(len(points), -1)

    for b in range(1):
        a = x[b].reshape(-1)
        f_a, g_a = f_and_grad(a[None], b)
        num = den = res = 0.0
        for j in range(192):
            r_j = rel_hidden[b, j].item()
            if abs(r_j) <= 1e-12 * rel_hidden[b].abs().sum().item():
                continue
            w = jac[j]
            v = a * (w >= 0).double()
            if root_support == "receptive_field":
                v = v * (w != 0).double()
            root = a - (w @ a + bias[j]) / (w @ v) * v
            mids = root + ((torch.arange(n, dtype=D64) + 0.5) / n)[:, None] * (a - root)
            _, g_mid = f_and_grad(mids, b)
            valid = bool(((g_mid - g_a).abs().amax(1) <= 1e-10 * g_a.abs().max()).all())
            f_r, _ = f_and_grad(root[None], b)
            taylor = abs((f_a - f_r - g_a[0] @ (a - root)).item()) / abs(f_a.item())
            num += abs(r_j) * valid
            res += abs(r_j) * taylor
            den += abs(r_j)
        assert report.valid_share[b, 0].item() == pytest.approx(num / den, abs=1e-9)
        assert report.taylor_residual[b, 0].item() == pytest.approx(res / den, rel=1e-6)


def _relevance_after_first_conv(dtd, x, target):
    fw, _ = dtd._forward(x, target, None)
    return fw.rel_out[0].reshape(x.shape[0], -1)


def test_max_pool_switch_at_root_and_root_support():
    """out = max(relu(x1), relu(x2)) at x = (1, 2): all relevance on x2. With the
    literal direction the z+ root is (0, 0) (a tie, valid); cut to the receptive
    field it is (1, 0), where the max-pool switches to x1: flagged and invalid."""
    net = nn.Sequential(nn.Conv2d(1, 1, 1), nn.ReLU(), nn.MaxPool2d((1, 2)), nn.Flatten(),
                        nn.Linear(1, 1)).to(D64).eval()
    with torch.no_grad():
        net[0].weight.fill_(1.0)
        net[0].bias.zero_()
        net[4].weight.fill_(1.0)
        net[4].bias.zero_()
    x = torch.tensor([[[[1.0, 2.0]]]], dtype=D64)
    dtd = DTDRootCheck(net, rule="z+")
    torch.testing.assert_close(dtd.attribute(x), torch.tensor([[[[0.0, 2.0]]]], dtype=D64))
    literal = dtd.check(x, n_segment_points=4)
    local = dtd.check(x, n_segment_points=4, root_support="receptive_field")
    assert literal.n_roots[0, 0] == 1 and local.n_roots[0, 0] == 1
    assert literal.valid_share[0, 0] == 1.0 and literal.flipped_root_share[0, 0] == 0.0
    assert local.valid_share[0, 0] == 0.0 and local.flipped_root_share[0, 0] == 1.0
    assert local.flips_at_root[0, 0, 0] == 1.0  # the max-pool unit
    # F(1, 0) = 1, F(x) = 2, grad = (0, 1): residual |2 - 1 - 2| / 2
    assert local.taylor_residual[0, 0].item() == pytest.approx(0.5, abs=1e-12)
    assert literal.taylor_residual[0, 0].item() == pytest.approx(0.0, abs=1e-12)
