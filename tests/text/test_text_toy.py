"""The zoo's tiny text model: it fits its planted scores, the regeneration
script runs, and Layer Integrated Hessians finds the planted pairs."""

from __future__ import annotations

import warnings

import torch

from captum_higher_order import LayerIntegratedHessians
from captum_higher_order.metrics import roc_auc
from captum_higher_order.zoo import text_toy
from captum_higher_order.zoo.train_text import train_text


def test_committed_model_fits_planted_scores():
    model = text_toy.load_text_toy()
    sentences = text_toy.sample_sentences(200, seed=99)
    ids, mask = text_toy.encode(sentences)
    y = torch.tensor([text_toy.sentence_scores(s) for s in sentences])
    with torch.no_grad():
        pred = model(ids, mask)
    assert float(((pred - y) ** 2).mean()) < 0.05
    assert bool(((pred[:, 0] > 0) == (y[:, 0] > 0)).all())
    assert text_toy.text_toy_metadata()["test_sentiment_accuracy"] == 1.0
    size = sum(p.numel() * p.element_size() for p in model.parameters())
    assert size < 1_000_000


def test_planted_pairs_ground_truth():
    words = ["the", "sun", "was", "not", "good", "beach"]
    assert text_toy.planted_token_pairs(words, 0) == [(3, 4)]
    assert text_toy.planted_token_pairs(words, 1) == [(1, 5)]
    assert text_toy.planted_token_pairs(["good", "sun"], 1) == []
    assert text_toy.sentence_scores(words) == (-2.0, 2.0)


def test_lih_ranks_negation_pair_first():
    model = text_toy.load_text_toy()
    sentences = [s for s in text_toy.sample_sentences(60, seed=7)
                 if text_toy.planted_token_pairs(s, 0)][:6]
    ids, mask = text_toy.encode(sentences)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gamma = LayerIntegratedHessians(model, model.embedding).attribute(
            ids, baselines=text_toy.PAD_ID, target=0, additional_forward_args=(mask,),
            n_steps=8,
        )
    aucs = []
    for k, words in enumerate(sentences):
        n = len(words)
        iu = torch.triu_indices(n, n, 1)
        truth = torch.zeros(n, n, dtype=torch.bool)
        (i, j), = text_toy.planted_token_pairs(words, 0)
        truth[i, j] = True
        aucs.append(roc_auc(gamma[k].abs()[iu[0], iu[1]], truth[iu[0], iu[1]]))
        # Padded positions have no interaction.
        assert float(gamma[k, n:].abs().sum()) == 0.0
    assert sum(aucs) / len(aucs) >= 0.9


def test_regeneration_script_runs(tmp_path):
    meta = train_text(str(tmp_path), steps=5)
    assert (tmp_path / "text_toy.pt").exists() and meta["steps"] == 5
    model = text_toy.TextToy()
    model.load_state_dict(torch.load(tmp_path / "text_toy.pt", weights_only=True))
