"""Layer variants: oracles are torch.func Hessians of the model as a function
of its embeddings, Captum's LayerIntegratedGradients and completeness."""

from __future__ import annotations

import warnings

import pytest
import torch
from captum.attr import LayerIntegratedGradients
from torch import nn

from captum_higher_order import (
    LayerCrossDerivatives,
    LayerIntegratedHessians,
    LayerSmoothHess,
    SmoothHess,
)
from captum_higher_order.hessian.attention import math_attention

V, D, T = 20, 6, 5


class TinyEncoder(nn.Module):
    """Embedding -> one GELU encoder layer (smooth: IH completeness needs it)."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(V, D)
        layer = nn.TransformerEncoderLayer(D, 2, 12, dropout=0.0, batch_first=True,
                                           activation="gelu")
        self.enc = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.out = nn.Linear(D, 3)

    def from_embeddings(self, e, mask):
        h = self.enc(e, src_key_padding_mask=~mask.bool())
        return self.out(torch.tanh(h[:, 0]))

    def forward(self, ids, mask):
        return self.from_embeddings(self.emb(ids), mask)


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = TinyEncoder().double().eval()
    ids = torch.tensor([[3, 4, 5, 6, 0], [7, 8, 9, 10, 11]])
    mask = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]])
    return model, ids, mask


def _hess(model, e, mask, target):
    """(T, D, T, D) float64 Hessian of one sample in its embeddings."""
    with math_attention():
        h = torch.func.hessian(
            lambda z: model.from_embeddings(z.unsqueeze(0), mask)[0, target]
        )(e)
    return h.detach()


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


def test_lih_completeness_and_rows_equal_captum_lig(setup):
    model, ids, mask = setup
    hooks = dict(model.emb._forward_hooks)
    gamma, delta = LayerIntegratedHessians(model, model.emb).attribute(
        ids, baselines=1, target=2, additional_forward_args=(mask,), n_steps=48,
        return_convergence_delta=True,
    )
    assert gamma.shape == (2, T, T)
    with torch.no_grad():
        gap = model(ids, mask)[:, 2] - model(torch.ones_like(ids), mask)[:, 2]
    torch.testing.assert_close(gamma.sum((1, 2)), gap, atol=1e-6, rtol=0)
    assert float(delta.abs().max()) < 1e-6
    lig = LayerIntegratedGradients(model, model.emb).attribute(
        ids, baselines=1, target=2, additional_forward_args=(mask,), n_steps=128,
    )
    torch.testing.assert_close(gamma.sum(2), lig.sum(-1), atol=1e-6, rtol=0)
    torch.testing.assert_close(gamma, gamma.transpose(1, 2))
    # The padded position (sample 0, token 4) interacts with nothing.
    assert float(gamma[0, 4].abs().max()) == 0.0 and float(gamma[0, :, 4].abs().max()) == 0.0
    assert dict(model.emb._forward_hooks) == hooks


def test_lih_layer_baselines_and_layer_mask(setup):
    model, ids, mask = setup
    lih = LayerIntegratedHessians(model, model.emb)
    kw = dict(target=0, additional_forward_args=(mask,), n_steps=12)
    by_ids = lih.attribute(ids, baselines=2, **kw)
    base = model.emb.weight[2].detach()
    by_act = lih.attribute(ids, layer_baselines=base, **kw)
    torch.testing.assert_close(by_ids, by_act, atol=1e-12, rtol=0)
    words = torch.tensor([0, 0, 1, 2, 2])  # sub-tokens grouped into words
    grouped = lih.attribute(ids, baselines=2, layer_mask=words, **kw)
    onehot = torch.nn.functional.one_hot(words).double()  # (T, G)
    torch.testing.assert_close(grouped, onehot.T @ by_ids @ onehot, atol=1e-10, rtol=0)


@pytest.mark.parametrize("multiply", [False, True])
def test_lcd_matches_torch_func(setup, multiply):
    model, ids, mask = setup
    out = LayerCrossDerivatives(model, model.emb, multiply_by_inputs=multiply).attribute(
        ids, target=1, additional_forward_args=(mask,), baselines=3,
    )
    for b in range(2):
        e = model.emb(ids[b]).detach()
        h = _hess(model, e, mask[b:b + 1], 1)
        if multiply:
            d = e - model.emb.weight[3].detach()
            want = torch.einsum("id,idje,je->ij", d, h, d)
        else:
            want = h.sum((1, 3))
        torch.testing.assert_close(out[b], want, atol=1e-9, rtol=1e-7)


def test_lsh_quadratic_model_recovers_hessian():
    """For f quadratic in the embeddings, the smoothed Hessian is the Hessian."""
    torch.manual_seed(1)
    emb = nn.Embedding(V, D).double()
    a = torch.randn(T * D, T * D, dtype=torch.float64)
    a = (a + a.T) / 2

    class Quad(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = emb

        def forward(self, ids):
            z = self.emb(ids).flatten(1)
            return 0.5 * ((z @ a) * z).sum(1, keepdim=True)

    model = Quad().eval()
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    got = LayerSmoothHess(model, emb, multiply_by_inputs=False).attribute(
        ids, target=0, sigma=0.5, n_samples=8192, generator=0,
    )
    want = a.view(T, D, T, D).sum((1, 3))
    assert float((got[0] - want).norm() / want.norm()) < 0.15  # Monte-Carlo error
    # The same draws as SmoothHess on the embeddings themselves.
    direct = SmoothHess(lambda z: 0.5 * ((z.flatten(1) @ a) * z.flatten(1)).sum(1, keepdim=True))
    same = direct.attribute(emb(ids).detach(), target=0, sigma=0.5, n_samples=8192, generator=0,
                            feature_mask=torch.arange(T).view(1, T, 1))
    torch.testing.assert_close(got, same, atol=1e-10, rtol=0)


def test_lsh_runs_on_encoder_and_is_symmetric(setup):
    model, ids, mask = setup
    out, grad = LayerSmoothHess(model, model.emb).attribute(
        ids, target=0, additional_forward_args=(mask,), sigma=0.2, n_samples=64,
        generator=0, return_gradient=True,
    )
    assert out.shape == (2, T, T) and grad.shape == (2, T, D)
    torch.testing.assert_close(out, out.transpose(1, 2))


def test_bad_arguments_raise_and_leave_no_hooks(setup):
    model, ids, mask = setup
    lih = LayerIntegratedHessians(model, model.emb)
    with pytest.raises(ValueError, match="layer_mask"):
        lih.attribute(ids, additional_forward_args=(mask,), layer_mask=torch.zeros(3).long())
    with pytest.raises(ValueError, match="not both"):
        lih.attribute(ids, baselines=1, layer_baselines=0.0, additional_forward_args=(mask,))
    with pytest.raises(TypeError, match="layer_mask"):
        lih.attribute(ids, additional_forward_args=(mask,), layer_mask=torch.zeros(T))
    with pytest.raises((RuntimeError, AssertionError, ValueError)):  # the forward raises
        lih.attribute(ids, additional_forward_args=(mask[:, :2],))
    assert not model.emb._forward_hooks


def test_layer_classes_are_captum_layer_attributions():
    import inspect

    from captum.attr import GradientAttribution, LayerAttribution, NoiseTunnel

    for cls in (LayerIntegratedHessians, LayerCrossDerivatives, LayerSmoothHess):
        assert issubclass(cls, LayerAttribution) and issubclass(cls, GradientAttribution)
        params = list(inspect.signature(cls.attribute.__wrapped__).parameters)
        assert params[:2] == ["self", "inputs"]
        assert "target" in params and "additional_forward_args" in params
        assert "Examples::" in (inspect.getdoc(cls) or "")
    assert NoiseTunnel(LayerCrossDerivatives(lambda x: x, nn.Identity()))  # wraps


def test_lih_adaptive_steps_meet_tol(setup):
    model, ids, mask = setup
    gamma, delta = LayerIntegratedHessians(model, model.emb).attribute(
        ids, baselines=1, target=2, additional_forward_args=(mask,), n_steps=None,
        tol=1e-7, return_convergence_delta=True,
    )
    with torch.no_grad():
        gap = model(ids, mask)[:, 2] - model(torch.ones_like(ids), mask)[:, 2]
    assert bool((delta.abs() <= 1e-6 * gap.abs().clamp(min=1.0)).all())
