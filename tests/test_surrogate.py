"""softplus_surrogate: swaps ReLU modules for Softplus(beta), always restores them."""

import pytest
import torch
from torch import nn

from captum_higher_order.hessian import hessian
from captum_higher_order.surrogate import softplus_surrogate


class Nested(nn.Module):
    """ReLUs at several depths, one instance used twice, one in-place ReLU."""

    def __init__(self) -> None:
        super().__init__()
        self.shared = nn.ReLU()
        self.l1 = nn.Linear(4, 6)
        self.block = nn.Sequential(nn.Linear(6, 6), nn.ReLU(inplace=True), nn.Linear(6, 6))
        self.l2 = nn.Linear(6, 3)

    def forward(self, x):
        return self.l2(self.shared(self.block(self.shared(self.l1(x)))))


def softplus_reference(model, x, beta):
    sp = lambda t: nn.functional.softplus(t, beta=beta)  # noqa: E731
    h = sp(model.l1(x))
    h = model.block[2](sp(model.block[0](h)))
    return model.l2(sp(h))


def relu_modules(model):
    return {name: m for name, m in model.named_modules() if isinstance(m, nn.ReLU)}


def test_swaps_every_relu_and_keeps_sharing():
    torch.manual_seed(0)
    model = Nested().double().eval()
    x = torch.randn(5, 4, dtype=torch.float64)
    with softplus_surrogate(model, beta=3.0) as surrogate:
        assert surrogate is model
        assert not relu_modules(model)
        assert isinstance(model.shared, nn.Softplus) and model.shared.beta == 3.0
        assert isinstance(model.block[1], nn.Softplus)
        assert not model.shared.training  # follows the module it replaces
        torch.testing.assert_close(model(x), softplus_reference(model, x, 3.0))
    torch.testing.assert_close(model(x), Nested.forward(model, x))


def test_restores_exact_objects_and_hooks_after_normal_exit_and_on_error():
    model = Nested().eval()
    before = dict(model.named_modules())
    calls = []
    model.shared.register_forward_hook(lambda *a: calls.append(1))
    with softplus_surrogate(model, beta=5.0):
        model(torch.randn(2, 4))
    assert calls == []  # the hooked ReLU was out of the model
    after = dict(model.named_modules())
    assert list(after) == list(before)
    assert all(after[k] is before[k] for k in before)

    class Boom(RuntimeError):
        pass

    with pytest.raises(Boom):
        with softplus_surrogate(model, beta=5.0):
            assert isinstance(model.block[1], nn.Softplus)
            raise Boom("the body raised")
    after = dict(model.named_modules())
    assert list(after) == list(before)
    assert all(after[k] is before[k] for k in before)
    model(torch.randn(2, 4))
    assert calls == [1, 1]  # the shared ReLU runs twice per forward


def test_softplus_hessian_baseline_matches_torch_func():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)).double().eval()
    x = torch.randn(3, 4, dtype=torch.float64)
    beta = 4.0
    with softplus_surrogate(model, beta=beta):
        got = hessian(model, x, target=2)

    def f(xb):
        h = nn.functional.softplus(model[0](xb), beta=beta)
        return model[2](h)[2]

    expected = torch.stack([torch.func.hessian(f)(xb) for xb in x])
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-12)
    assert isinstance(model[1], nn.ReLU)


def test_bad_arguments():
    with pytest.raises(ValueError, match="beta"):
        with softplus_surrogate(nn.Sequential(nn.ReLU()), beta=0.0):
            pass
    with pytest.raises(ValueError, match="container"):
        with softplus_surrogate(nn.ReLU()):
            pass
    with pytest.raises(TypeError, match="nn.Module"):
        with softplus_surrogate(lambda x: x):
            pass
