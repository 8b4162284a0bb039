"""DTDRootCheck on residual networks and VGGs (torchvision), non-chain models,
conv rows from the receptive field, and the dtype policy.

Oracles: zennit (``pip install zennit``; z+ with ``zero_params='bias'``,
``Norm`` on sums and average pooling, its ResNet/VGG canonizers), a residual
block propagated by hand, conservation on bias-free networks, autograd
Jacobian rows."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from captum_higher_order import DTDRootCheck
from captum_higher_order.attr.dtd import UnsupportedModuleError
from captum_higher_order.attr.dtd import root_check as root_check_module
from captum_higher_order.attr.dtd.ops import WeightOp

tv = pytest.importorskip("torchvision")
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet  # noqa: E402
from torchvision.models.vgg import VGG, make_layers  # noqa: E402

D64 = torch.float64


def _randomize_bn(model):
    for mod in model.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.2, 0.2)
            mod.running_var.uniform_(0.5, 2.0)
            # zennit's canonizer leaves each BatchNorm as x / sqrt(1 + eps) after
            # merging (a 5e-6 scale error per layer with the default eps); eps = 0
            # makes its merge exact, so the comparison can be tight.
            mod.eps = 0.0
            with torch.no_grad():
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.1, 0.1)
    return model


def _small_resnet(block, seed=0):
    torch.manual_seed(seed)
    return _randomize_bn(ResNet(block, [1, 1, 1, 1], num_classes=5)).to(D64).eval()


def _small_vgg(batch_norm, seed=0):
    torch.manual_seed(seed)
    model = VGG(make_layers([8, "M", 16, "M", 16, 16, "M"], batch_norm=batch_norm),
                num_classes=5, init_weights=True)
    model.avgpool = nn.AdaptiveAvgPool2d((2, 2))
    model.classifier = nn.Sequential(nn.Linear(64, 12), nn.ReLU(True), nn.Dropout(),
                                     nn.Linear(12, 5))
    return _randomize_bn(model).to(D64).eval()


def _zennit_zplus(model, x, target, canonizer):
    from zennit.attribution import Gradient
    from zennit.composites import LayerMapComposite
    from zennit.layer import Sum
    from zennit.rules import Norm, ZPlus
    from zennit.types import AvgPool, Linear

    composite = LayerMapComposite(
        layer_map=[(Sum, Norm(1e-9)), (AvgPool, Norm(1e-9)),
                   (Linear, ZPlus(stabilizer=1e-9, zero_params="bias"))],
        canonizers=[canonizer])
    with Gradient(model=model, composite=composite) as attributor:
        out = model(x)
        onehot = torch.zeros_like(out)
        onehot[torch.arange(len(x)), target] = 1
        _, rel = attributor(x, lambda o: o * onehot)
    return rel.detach()


# --------------------------------------------------------------------------- relevance


@pytest.mark.parametrize("batch_norm", [False, True])
def test_vgg_zplus_equals_zennit(batch_norm):
    VGGCanonizer = pytest.importorskip("zennit.torchvision").VGGCanonizer

    model = _small_vgg(batch_norm)
    x = torch.rand(2, 3, 16, 16, dtype=D64)
    ours = DTDRootCheck(model, rule="z+").attribute(x, target=[1, 3])
    ref = _zennit_zplus(model, x.clone(), [1, 3], VGGCanonizer())
    # both use a 1e-9 stabiliser; they differ by rounding where denominators are small
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-9 * float(ref.abs().max()))


@pytest.mark.parametrize("block", [BasicBlock, Bottleneck])
def test_resnet_zplus_close_to_zennit_and_conserving(block):
    """Canonized ResNets (BatchNorm merged, relevance of each residual sum split
    by zennit's ``Norm``) give the same z+ relevance."""
    ResNetCanonizer = pytest.importorskip("zennit.torchvision").ResNetCanonizer

    model = _small_resnet(block)
    x = torch.rand(2, 3, 32, 32, dtype=D64)
    ours = DTDRootCheck(model, rule="z+").attribute(x, target=[1, 3])
    ref = _zennit_zplus(model, x.clone(), [1, 3], ResNetCanonizer())
    assert ours.shape == x.shape and torch.isfinite(ours).all()
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-9 * float(ref.abs().max()))


def _fold(conv, bn):
    s = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return conv.weight * s.view(-1, 1, 1, 1), bn.bias - bn.running_mean * s


def test_residual_block_by_hand():
    """One BasicBlock + pooling + linear: the sum's relevance split in proportion
    to the branches, z+ through each folded conv, written out with F.conv2d."""
    torch.manual_seed(4)
    blk = _randomize_bn(BasicBlock(4, 4))
    model = nn.Sequential(blk, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    model = model.to(D64).eval()
    x = torch.rand(1, 4, 3, 3, dtype=D64)
    ours = DTDRootCheck(model, rule="z+", rule_kwargs={"epsilon": 1e-300}).attribute(x, 1)
    lin = model[3]
    with torch.no_grad():
        w1, b1 = _fold(blk.conv1, blk.bn1)
        w2, b2 = _fold(blk.conv2, blk.bn2)
        h = F.relu(F.conv2d(x, w1, b1, padding=1))
        z = F.conv2d(h, w2, b2, padding=1)
        y = F.relu(z + x)
        p = y.mean((2, 3))
        wp = lin.weight[1].clamp(min=0)
        r_p = p[0] * wp / (p[0] @ wp) * lin(p)[0, 1]
        r_y = y / y.sum((2, 3), keepdim=True) * r_p.view(1, -1, 1, 1)

        def zplus(a, w, r):
            d = F.conv2d(a, w.clamp(min=0), padding=1)
            d = torch.where(d == 0, torch.ones_like(d), d)  # 0 / 0 -> 0
            return a * F.conv_transpose2d(r / d, w.clamp(min=0), padding=1)

        expected = zplus(x, w1, zplus(h, w2, z / (z + x) * r_y)) + x / (z + x) * r_y
    torch.testing.assert_close(ours, expected, rtol=1e-10, atol=1e-14)


def test_resnet18_conservation_without_biases():
    torch.manual_seed(0)
    model = tv.models.resnet18(weights=None, num_classes=7).to(D64).eval()
    with torch.no_grad():
        model.fc.bias.zero_()  # fresh BatchNorms fold to zero biases
    x = torch.rand(2, 3, 32, 32, dtype=D64)
    rel = DTDRootCheck(model, rule="z+").attribute(x, target=[0, 4])
    out = model(x).detach()[[0, 1], [0, 4]]
    torch.testing.assert_close(rel.sum((1, 2, 3)), out, rtol=1e-7, atol=1e-12)


# --------------------------------------------------------------------------- errors


def test_basic_model_multilayer_valueerror_before_any_relevance(monkeypatch):
    from captum.testing.helpers.basic_models import BasicModel_MultiLayer

    def boom(*args, **kwargs):
        raise AssertionError("relevance computed before the chain check")

    monkeypatch.setattr(root_check_module, "relevance_pass", boom)
    model = BasicModel_MultiLayer()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="'linear1_alt'.*never called.*not a plain chain"):
        DTDRootCheck(model).attribute(torch.rand(2, 3), target=0)
    with pytest.raises(ValueError, match="linear1_alt"):
        DTDRootCheck(model).check(torch.rand(2, 3), target=0)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


class _ReusedRelu(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(3, 4)
        self.relu = nn.ReLU()
        self.b = nn.Linear(4, 2)

    def forward(self, x):
        return self.b(self.relu(self.relu(self.a(x))))


def test_reused_module_named():
    with pytest.raises(ValueError, match="'relu'.*called 2 times"):
        DTDRootCheck(_ReusedRelu().eval()).attribute(torch.rand(2, 3), target=0)


def test_unsupported_module_inside_resnet_raises_at_init():
    model = tv.models.resnet18(weights=None).eval()
    model.layer2[0].relu = nn.Sigmoid()  # inside a canonized block: still read by name
    model.layer3 = nn.Sequential(model.layer3, nn.GELU())
    with pytest.raises(UnsupportedModuleError, match="GELU"):
        DTDRootCheck(model)


# --------------------------------------------------------------------------- rows


@pytest.mark.parametrize("args", [
    dict(stride=1, padding=1, dilation=1, groups=1),
    dict(stride=2, padding=3, dilation=1, groups=1),
    dict(stride=(2, 1), padding=(0, 2), dilation=(2, 1), groups=2),
])
def test_conv_rows_equal_jacobian_rows(args):
    torch.manual_seed(1)
    conv = nn.Conv2d(4, 6, (3, 2), bias=False, **args).to(D64)
    op = WeightOp("conv", "c", conv.weight.detach(), torch.zeros(6, dtype=D64), args)
    in_shape = (4, 7, 6)
    jac = torch.autograd.functional.jacobian(
        lambda v: conv(v.view(1, *in_shape)).reshape(-1), torch.zeros(4 * 7 * 6, dtype=D64))
    neurons = torch.randperm(jac.shape[0])[:25]
    torch.testing.assert_close(op.rows(in_shape, neurons), jac[neurons], rtol=0, atol=0)


# --------------------------------------------------------------------------- dtype


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_computed_in_float32(dtype):
    """float16 / bfloat16 models and inputs are computed in float32 on the
    rounded weights: the same numbers (and verdicts) as that float32 run, no NaN
    (float16 used to give NaN relevance: the 1e-9 stabiliser underflows)."""
    import copy

    from tests.models import small_cnn

    torch.manual_seed(0)
    half = small_cnn(nn.ReLU).eval().to(dtype)
    wide = copy.deepcopy(half).float()
    x = torch.rand(2, 1, 8, 8).to(dtype)
    rel = DTDRootCheck(half).attribute(x, target=[0, 1])
    ref = DTDRootCheck(wide).attribute(x.float(), target=[0, 1])
    assert rel.dtype == dtype and torch.isfinite(rel).all()
    torch.testing.assert_close(rel, ref.to(dtype), rtol=0, atol=0)
    rep = DTDRootCheck(half).check(x, target=[0, 1], n_segment_points=4)
    rep32 = DTDRootCheck(wide).check(x.float(), target=[0, 1], n_segment_points=4)
    assert rep.verdict == rep32.verdict
    torch.testing.assert_close(rep.valid_share, rep32.valid_share, equal_nan=True)
    assert rep.valid_share.dtype == torch.float32


def test_input_and_model_dtypes_must_agree():
    from tests.models import mlp

    model = mlp(act=nn.ReLU)  # float64
    with pytest.raises(ValueError, match="torch.float32.*torch.float64"):
        DTDRootCheck(model).attribute(torch.rand(2, 6), target=0)


# --------------------------------------------------------------------------- check


def _block_net(seed=5):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), BasicBlock(4, 4),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    return _randomize_bn(net).to(D64).eval()


def _brute_force_layer(f, a, w_rows, bias, rel, n):
    """Valid share and Taylor residual of z+ roots, neuron by neuron, for
    ``F_l = f`` at layer input ``a`` (flat)."""
    def f_and_grad(points):
        pts = points.clone().requires_grad_(True)
        out = f(pts)
        (g,) = torch.autograd.grad(out.sum(), pts)
        return out.detach(), g

    f_a, g_a = f_and_grad(a[None])
    num = den = res = den_ok = 0.0
    for j in range(w_rows.shape[0]):
        r_j = rel[j].item()
        if abs(r_j) <= 1e-12 * rel.abs().sum().item():
            continue
        w = w_rows[j]
        v = a * (w >= 0).double()
        den += abs(r_j)
        if (w @ v).abs() <= 1e-150:  # no root: counts as invalid
            continue
        root = a - (w @ a + bias[j]) / (w @ v) * v
        mids = root + ((torch.arange(n, dtype=D64) + 0.5) / n)[:, None] * (a - root)
        _, g_mid = f_and_grad(mids)
        valid = bool(((g_mid - g_a).abs().amax(1) <= 1e-10 * g_a.abs().max()).all())
        f_r, _ = f_and_grad(root[None])
        num += abs(r_j) * valid
        res += abs(r_j) * abs((f_a - f_r - g_a[0] @ (a - root)).item()) / abs(f_a.item())
        den_ok += abs(r_j)
    return num / den, res / den_ok


def test_check_inside_residual_block_matches_brute_force():
    """Layers 1 and 2 of conv-relu-BasicBlock-pool-linear: ``F_l`` is the output as
    a function of the layer input, the block's other input held at its value at
    x (layer 2) or moving with it (layer 1, whose input is also the shortcut)."""
    net = _block_net()
    blk = net[2]
    x = torch.rand(1, 2, 4, 4, dtype=D64)
    n = 3
    dtd = DTDRootCheck(net, rule="z+")
    report = dtd.check(x, target=[2], n_segment_points=n, max_roots=None)
    fw, _ = dtd._forward(x, [2], None)
    head = lambda y: net[5](net[3](F.relu(y)).flatten(1))[:, 2]  # noqa: E731
    with torch.no_grad():
        s = F.relu(net[0](x))
        w1, b1 = _fold(blk.conv1, blk.bn1)
        w2, b2 = _fold(blk.conv2, blk.bn2)
        h = F.relu(F.conv2d(s, w1, b1, padding=1))
    cases = {
        1: (lambda p: head(F.conv2d(F.relu(F.conv2d(p.view(-1, 4, 4, 4), w1, b1, padding=1)),
                                    w2, b2, padding=1) + p.view(-1, 4, 4, 4)), s, w1, b1),
        2: (lambda p: head(F.conv2d(p.view(-1, 4, 4, 4), w2, b2, padding=1) + s), h, w2, b2),
    }
    for li, (f, a, w, b) in cases.items():
        jac = torch.autograd.functional.jacobian(
            lambda v, w=w: F.conv2d(v.view(1, 4, 4, 4), w, None, padding=1).reshape(-1),
            torch.zeros(64, dtype=D64))
        rel = fw.rel_out[fw.weight_ix[li]].reshape(-1)
        valid, resid = _brute_force_layer(f, a.reshape(-1), jac, b.repeat_interleave(16),
                                          rel, n)
        assert report.valid_share[0, li].item() == pytest.approx(valid, abs=1e-9)
        assert report.taylor_residual[0, li].item() == pytest.approx(resid, rel=1e-6)


def test_sampled_roots_estimate_the_exhaustive_report():
    net = _block_net(seed=6)
    x = torch.rand(2, 2, 8, 8, dtype=D64)  # 256 neurons per conv layer
    dtd = DTDRootCheck(net, rule="z+")
    full = dtd.check(x, target=[0, 1], n_segment_points=2, max_roots=None)
    m = int(full.n_roots[:, :3].min()) - 1  # every conv layer of every sample sampled
    assert m > 60
    part = dtd.check(x, target=[0, 1], n_segment_points=2, max_roots=m, seed=3)
    assert not full.sampled.any() and part.sampled[:, :3].all()
    assert (part.n_roots[:, :3] <= m).all() and part.max_roots == m
    assert f"roots sampled: at most {m}" in part.summary()
    # a share's standard error is at most 0.5 / sqrt(m); allow 4 of them
    for name in ("valid_share", "flipped_root_share"):
        diff = (getattr(part, name)[:, :3] - getattr(full, name)[:, :3]).abs()
        assert (diff < 2 / m ** 0.5).all(), (name, diff)


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "vgg11_bn"])
def test_check_image_scale_runs_bounded(name):
    """torchvision nets at 3x32x32 (the 64x64 memory and time are measured in
    benchmarks/dtd_root_check.py): every layer checked on a few sampled roots."""
    torch.manual_seed(0)
    model = getattr(tv.models, name)(weights=None, num_classes=4).eval()
    x = torch.rand(1, 3, 32, 32)
    report = DTDRootCheck(model).check(x, target=1, max_roots=2, n_segment_points=2,
                                       n_directions=1)
    n_layers = len(report.layers)
    assert report.valid_share.shape == (1, n_layers) and n_layers > 8
    assert (report.n_roots <= 2).all() and report.sampled[:, :-1].all()
    assert torch.isfinite(report.taylor_residual).all()
    rel = DTDRootCheck(model).attribute(x, target=1)
    assert rel.shape == x.shape and torch.isfinite(rel).all()
