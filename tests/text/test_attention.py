"""Second order through scaled_dot_product_attention (hessian/attention.py)."""

from __future__ import annotations

import types
import warnings

import pytest
import torch
from torch import nn

from captum_higher_order.hessian import hessian, hvp
from captum_higher_order.hessian.attention import (
    attention_modules,
    fused_attention_lacks_second_order,
    math_attention,
)

D, T = 8, 5


def _encoder_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            layer = nn.TransformerEncoderLayer(D, 2, 16, dropout=0.0, batch_first=True)
            self.enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
            self.head = nn.Linear(D, 3)

        def forward(self, x, pad=None):
            h = self.enc(x, src_key_padding_mask=pad)
            return self.head(torch.tanh(h[:, 0]))

    return Encoder().double().eval()


def _oracle(model, x, target, pad=None):
    """float64 torch.func.hessian of one sample's target output (math kernel:
    the fused kernels cannot be differentiated twice, which is the point)."""
    def f(z):
        return model(z.unsqueeze(0), None if pad is None else pad[:1])[0, target]

    with math_attention():
        return torch.func.hessian(f)(x).reshape(x.numel(), x.numel())


@pytest.mark.parametrize("mode", ["fwd_rev", "rev_rev", "auto"])
def test_encoder_hessian_matches_torch_func(mode):
    model = _encoder_model()
    x = torch.randn(2, T, D, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = hessian(model, x, target=1, mode=mode)
    for b in range(2):
        torch.testing.assert_close(got[b], _oracle(model, x[b], 1), atol=1e-10, rtol=1e-8)


def test_encoder_with_padding_mask_and_hvp():
    model = _encoder_model(1)
    x = torch.randn(1, T, D, dtype=torch.float64)
    pad = torch.tensor([[False, False, False, True, True]])
    v = torch.randn(1, T, D, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = hvp(model, x, v, target=2, additional_forward_args=(pad,), mode="fwd_rev")
    want = _oracle(model, x[0], 2, pad) @ v.flatten()
    torch.testing.assert_close(got.flatten(), want, atol=1e-10, rtol=1e-8)
    # Padded positions do not reach the output: their rows are zero.
    h = _oracle(model, x[0], 2, pad).view(T, D, T, D)
    assert float(h[3:].detach().abs().max()) == 0.0


def test_multihead_attention_module():
    torch.manual_seed(3)
    mha = nn.MultiheadAttention(D, 2, batch_first=True).double().eval()

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.mha = mha

        def forward(self, x):
            return self.mha(x, x, x, need_weights=False)[0].pow(2).sum((1, 2))

    net = Net()
    x = torch.randn(2, 3, D, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = hessian(net, x, mode="rev_rev")
    with math_attention():
        want = torch.func.hessian(lambda z: net(z.unsqueeze(0))[0])(x[1])
    torch.testing.assert_close(got[1], want.reshape(3 * D, 3 * D), atol=1e-10, rtol=1e-8)


def test_fused_kernel_fails_without_switch_and_warning_is_once():
    if not fused_attention_lacks_second_order("cpu", torch.float64):
        pytest.skip("this PyTorch build differentiates its fused CPU kernel twice")
    model = _encoder_model(2)
    x = torch.randn(1, T, D, dtype=torch.float64)
    with pytest.raises(NotImplementedError):  # the problem the engine works around
        torch.func.hessian(lambda z: model(z.unsqueeze(0))[0, 0])(x[0])
    assert attention_modules(model)

    class Fresh(nn.Module):  # a new class: the warning is keyed by model class
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, z):
            return self.inner(z)

    fresh = Fresh().eval()
    with warnings.catch_warnings(record=True) as first:
        warnings.simplefilter("always")
        hessian(fresh, x, target=0, mode="fwd_rev")
    with warnings.catch_warnings(record=True) as second:
        warnings.simplefilter("always")
        hessian(fresh, x, target=0, mode="rev_rev")
    said = [w for w in first if "math kernel" in str(w.message)]
    assert len(said) == 1 and "Fresh" in str(said[0].message)
    assert not [w for w in second if "math kernel" in str(w.message)]


def test_attention_free_model_is_silent():
    model = nn.Sequential(nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 1)).double()
    assert attention_modules(model) == []
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        hessian(model, torch.randn(1, 4, dtype=torch.float64))
    assert not [w for w in seen if "math kernel" in str(w.message)]


def test_flash_attention_2_is_refused():
    class HFLike(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.config = types.SimpleNamespace(_attn_implementation="flash_attention_2")
            self.lin = nn.Linear(4, 1)

        def forward(self, x):
            return self.lin(x).tanh()

    with pytest.raises(ValueError, match="attn_implementation='sdpa'"):
        hessian(HFLike().double(), torch.randn(1, 4, dtype=torch.float64))
