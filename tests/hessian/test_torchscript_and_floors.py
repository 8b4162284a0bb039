"""TorchScript models get exact Hessians; float32 never turns a zero into NaN.

Issue 19, bugs 1 and 2: forward-mode AD through a scripted module was silently
wrong from the second call on (zeros under mode="auto"), and literal division
floors like 1e-300 are 0 in float32, so a sample with an exactly zero gradient
got a NaN convergence delta.
"""

import warnings

import pytest
import torch
from torch import nn

from captum_higher_order import CrossDerivatives, GroupSparseSaliency, SecondOrderSaliency
from captum_higher_order.hessian import hessian, hvp


def _tanh_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)).double().eval()


def _exact(net, x, target):
    def score(v, t):
        return net(v.unsqueeze(0))[0, t]

    return torch.stack([torch.func.hessian(score)(x[b], target[b]) for b in range(x.shape[0])])


@pytest.mark.parametrize("compile_", ["script", "trace"])
def test_auto_mode_is_exact_on_torchscript_every_call(compile_):
    net = _tanh_net()
    x = torch.randn(3, 4, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.script is deprecated
        scripted = torch.jit.script(net) if compile_ == "script" else torch.jit.trace(net, x)
    target = [0, 1, 2]
    expected = _exact(net, x, target)
    for _ in range(3):  # the profiling executor changes the graph after call 1
        got = hessian(scripted, x, target=target)
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


def test_cross_derivatives_on_scripted_tanh_net_is_not_zero():
    net = _tanh_net()
    x = torch.randn(2, 4, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.script(net)
    eager = CrossDerivatives(net).attribute(x, target=[0, 1])
    for _ in range(2):
        got = CrossDerivatives(scripted).attribute(x, target=[0, 1])
        torch.testing.assert_close(got, eager, rtol=1e-10, atol=1e-12)
        assert bool(got.abs().sum() > 0)


@pytest.mark.parametrize("mode", ["fwd_rev", "ggn"])
def test_forward_mode_on_torchscript_is_refused(mode):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.script(_tanh_net())
    x = torch.randn(2, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match="mode='rev_rev'"):
        hvp(scripted, x, torch.randn_like(x), target=0, mode=mode)


def _flat_classifier() -> nn.Module:
    """Logits that do not depend on the input: every gradient is exactly zero."""
    model = nn.Sequential(nn.Linear(5, 3)).eval()
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].bias.copy_(torch.tensor([0.3, -0.2, 0.1]))
    return model


@pytest.mark.parametrize("method", [SecondOrderSaliency, GroupSparseSaliency])
def test_zero_gradient_gives_finite_delta_in_float32(method):
    model = _flat_classifier()
    x = torch.randn(2, 5)
    kwargs = {"lambda1": 0.1} if method is GroupSparseSaliency else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the zero-curvature warning is right here
        d, delta = method(model).attribute(x, return_convergence_delta=True, **kwargs)
    assert bool(torch.isfinite(delta).all()), delta
    assert bool((d == 0).all())


def _tiny_literals(path):
    """Numeric literals in the code of ``path`` (not strings or comments) that
    are positive but below float32's smallest normal number."""
    import io
    import tokenize

    tiny = torch.finfo(torch.float32).tiny
    with open(path, encoding="utf-8") as handle:
        tokens = tokenize.generate_tokens(io.StringIO(handle.read()).readline)
        return [(tok.start[0], tok.string) for tok in tokens
                if tok.type == tokenize.NUMBER and 0 < float(tok.string.rstrip("jJ")) < tiny]


def test_no_literal_floor_below_float32_range():
    """A literal like 1e-300 is 0 in float32: floors must come from
    torch.finfo(dtype) (captum_higher_order._numeric.positive_floor)."""
    import pathlib

    import captum_higher_order

    root = pathlib.Path(captum_higher_order.__file__).parent
    found = {str(p.relative_to(root)): hits for p in sorted(root.rglob("*.py"))
             if (hits := _tiny_literals(p))}
    assert found == {}, f"literals below float32's range (use torch.finfo): {found}"
