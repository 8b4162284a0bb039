"""Hugging Face models from tiny configs (random weights, no downloads) with
sdpa attention: layer interactions run, agree with torch.func, and padded
positions get zero interaction."""

from __future__ import annotations

import warnings

import pytest
import torch

from captum_higher_order import LayerCrossDerivatives, LayerIntegratedHessians
from captum_higher_order.hessian.attention import math_attention
from captum_higher_order.text import HFForward

transformers = pytest.importorskip("transformers")


def _bert():
    cfg = transformers.BertConfig(
        vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=16, num_labels=3,
        attn_implementation="sdpa", initializer_range=0.2, hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    return transformers.BertForSequenceClassification(cfg)


def _gpt2():
    cfg = transformers.GPT2Config(
        vocab_size=40, n_embd=16, n_layer=1, n_head=2, n_positions=16,
        attn_implementation="sdpa", initializer_range=0.2, resid_pdrop=0.0,
        bos_token_id=0, eos_token_id=0,
        embd_pdrop=0.0, attn_pdrop=0.0,
    )
    return transformers.GPT2LMHeadModel(cfg)


def _llama():
    cfg = transformers.LlamaConfig(
        vocab_size=40, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=16,
        attn_implementation="sdpa", initializer_range=0.2,
    )
    return transformers.LlamaForCausalLM(cfg)


MODELS = {"bert": _bert, "gpt2": _gpt2, "llama": _llama}
IDS = torch.tensor([[5, 6, 7, 8, 9, 10], [11, 12, 13, 14, 0, 0]])
MASK = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])


@pytest.fixture(params=sorted(MODELS))
def hf(request):
    torch.manual_seed(0)
    model = MODELS[request.param]().double().eval()
    assert model.config._attn_implementation == "sdpa"
    return request.param, model


def test_layer_methods_run_with_sdpa_and_padding(hf):
    name, model = hf
    fwd = HFForward(model)
    emb = model.get_input_embeddings()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gamma, delta = LayerIntegratedHessians(fwd, emb).attribute(
            IDS, baselines=0, target=2, additional_forward_args=(MASK,), n_steps=32,
            return_convergence_delta=True,
        )
    assert gamma.shape == (2, 6, 6)
    assert bool(torch.isfinite(gamma).all())
    # Completeness (Llama's float32 norms bound how close it gets).
    assert float(delta.abs().max()) < 1e-5
    # Padded positions (row 1, tokens 4-5) interact with nothing.
    assert float(gamma[1, 4:].abs().max()) < 1e-12
    assert float(gamma[1, :, 4:].abs().max()) < 1e-12
    assert float(gamma[1, :4, :4].abs().max()) > 1e-8


def test_cross_derivatives_match_torch_func(hf):
    name, model = hf
    fwd = HFForward(model)
    emb = model.get_input_embeddings()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = LayerCrossDerivatives(fwd, emb).attribute(
            IDS[1:], target=2, additional_forward_args=(MASK[1:],), mode="rev_rev",
            baselines=1,
        )
    e = emb(IDS[1:]).detach()

    def f(z):
        out = model(inputs_embeds=z.unsqueeze(0), attention_mask=MASK[1:])["logits"]
        return (out[0] if out.dim() == 2 else out[0, 3])[2]

    with math_attention():
        h = torch.func.hessian(f)(e[0]).detach()
    # Delta_i^T H Delta_j (the all-ones direction is invisible behind LayerNorm).
    d = e[0] - emb.weight[1].detach()
    want = torch.einsum("id,idje,je->ij", d, h, d)
    assert float(want[:4, :4].abs().max()) > 1e-6
    # Llama's RMSNorm and rotary embeddings compute in float32 even in a
    # float64 model: both sides then differ from each other at ~1e-7 relative.
    tol = 1e-5 if name == "llama" else 1e-9
    torch.testing.assert_close(got[0], want, atol=tol * float(want.abs().max()), rtol=0)


def test_sdpa_model_is_reported_and_flash_refused(hf):
    from captum_higher_order.hessian.attention import attention_modules

    name, model = hf
    assert attention_modules(HFForward(model)) == ["model"]
    model.config._attn_implementation = "flash_attention_2"
    try:
        with pytest.raises(ValueError, match="attn_implementation='sdpa'"):
            LayerCrossDerivatives(HFForward(model), model.get_input_embeddings()).attribute(
                IDS, target=0, additional_forward_args=(MASK,),
            )
    finally:
        model.config._attn_implementation = "sdpa"
