"""LLMInteractionAttribution on a GPT-2 from a tiny config with an offline
word-level tokenizer (the ``tokenizers`` package; no downloads)."""

from __future__ import annotations

import warnings

import pytest
import torch

from captum_higher_order import (
    LayerCrossDerivatives,
    LayerIntegratedHessians,
    LayerSmoothHess,
)
from captum_higher_order.text import LLMInteractionAttribution

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")
captum_llm = pytest.importorskip("captum.attr._utils.interpretable_input")

WORDS = ["[UNK]", "[PAD]", "the", "film", "was", "not", "good", "bad", "at", "all", "."]


def word_tokenizer():
    vocab = {w: i for i, w in enumerate(WORDS)}
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]"
    )


@pytest.fixture(scope="module")
def lm():
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(
        vocab_size=len(WORDS), n_embd=16, n_layer=1, n_head=2, n_positions=16,
        attn_implementation="sdpa", initializer_range=0.2, resid_pdrop=0.0,
        bos_token_id=0, eos_token_id=0,
        embd_pdrop=0.0, attn_pdrop=0.0,
    )
    return transformers.GPT2LMHeadModel(cfg).double().eval()


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


def _log_prob(lm, prompt_ids, target_ids):
    ids = torch.cat([prompt_ids, target_ids], 1)
    with torch.no_grad():
        logp = torch.log_softmax(lm(input_ids=ids).logits[0], -1)
    t = prompt_ids.shape[1]
    return sum(float(logp[t - 1 + m, i]) for m, i in enumerate(target_ids[0].tolist()))


def test_integrated_hessians_completeness_and_rows(lm):
    tok = word_tokenizer()
    inp = captum_llm.TextTokenInput("the film was not good", tok, baselines="[PAD]")
    llm = LLMInteractionAttribution(
        LayerIntegratedHessians(lm, lm.get_input_embeddings()), tok
    )
    res = llm.attribute(inp, target="at all", n_steps=32)
    assert res.input_tokens == ["the", "film", "was", "not", "good"]
    assert res.output_tokens == ["at", "all"]
    assert res.interactions.shape == (5, 5)
    prompt, target = inp.inp_tensor, torch.tensor([[8, 9]])
    assert res.score == pytest.approx(_log_prob(lm, prompt, target), abs=1e-10)
    # Completeness: entries sum to log p(target | prompt) - log p(target | pads).
    gap = res.score - _log_prob(lm, torch.full_like(prompt, 1), target)
    assert float(res.interactions.sum()) == pytest.approx(gap, abs=1e-6)
    # First-order attributions are Captum's LayerIntegratedGradients of the score.
    from captum.attr import LayerIntegratedGradients

    from captum_higher_order.text import TargetLogProb

    scorer = TargetLogProb(lm, target)
    lig = LayerIntegratedGradients(scorer, lm.get_input_embeddings()).attribute(
        prompt, baselines=1, target=0, n_steps=128,
    )
    torch.testing.assert_close(res.token_attr, lig[0, :5].sum(-1), atol=1e-6, rtol=0)


def test_skip_tokens_smoothhess_crossderivatives_and_plot(lm):
    tok = word_tokenizer()
    inp = captum_llm.TextTokenInput("the film was not good", tok, skip_tokens=["the"])
    emb = lm.get_input_embeddings()
    sh = LLMInteractionAttribution(LayerSmoothHess(lm, emb), tok).attribute(
        inp, target="at", n_samples=16, generator=0,
    )
    assert sh.input_tokens == ["film", "was", "not", "good"]
    assert sh.interactions.shape == (4, 4) and sh.token_attr.shape == (4,)
    cd = LLMInteractionAttribution(LayerCrossDerivatives(lm, emb), tok).attribute(
        "the film was not good", target=torch.tensor([8]),
    )
    assert cd.interactions.shape == (5, 5) and cd.token_attr is None
    torch.testing.assert_close(cd.interactions, cd.interactions.T)
    fig, axes = cd.plot_token_interactions(use_pyplot=False)
    assert fig is not None and len(axes) == 2


def test_bad_method_and_target():
    with pytest.raises(TypeError, match="attr_method"):
        LLMInteractionAttribution(object(), None)  # type: ignore[arg-type]


def test_word_level_tokenizer_helper_matches_hand_built():
    from captum_higher_order.text import word_level_tokenizer

    tok = word_level_tokenizer(WORDS[2:])
    ref = word_tokenizer()
    text = "the film was not good at all ."
    assert tok.encode(text) == ref.encode(text)
    assert tok.convert_ids_to_tokens([5, 0]) == ["not", "[UNK]"]
    with pytest.raises(ValueError, match="duplicates"):
        word_level_tokenizer(["a", "a"])


def test_text_template_input_groups_values(lm):
    tok = word_tokenizer()
    emb = lm.get_input_embeddings()
    llm = LLMInteractionAttribution(LayerIntegratedHessians(lm, emb), tok)
    per_token = llm.attribute("the film was not good", target="at", baselines=1, n_steps=8)
    tmpl = captum_llm.TextTemplateInput("{} film was {} {}", values=["the", "not", "good"])
    res = llm.attribute(tmpl, target="at", baselines=1, n_steps=8)
    assert res.input_tokens == ["the", "not", "good"]
    keep = torch.tensor([0, 3, 4])
    # The same path (only explained tokens move) restricted to the three values.
    sub = llm.attribute(captum_llm.TextTokenInput("the film was not good", tok,
                                                  skip_tokens=["film", "was"]),
                        target="at", baselines=1, n_steps=8)
    torch.testing.assert_close(res.interactions, sub.interactions, atol=1e-12, rtol=0)
    assert res.interactions.shape == (3, 3) and per_token.interactions[keep].shape == (3, 5)
    grouped = llm.attribute(
        captum_llm.TextTemplateInput("{} film was {} {}", values=["the", "not", "good"],
                                     mask=[0, 1, 1]),
        target="at", baselines=1, n_steps=8)
    assert grouped.input_tokens == ["the", "not good"]
    onehot = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]], dtype=torch.float64)
    torch.testing.assert_close(grouped.interactions, onehot.T @ res.interactions @ onehot,
                               atol=1e-12, rtol=0)
