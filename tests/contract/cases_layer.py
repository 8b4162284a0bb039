"""Contract cases for the layer methods on a tiny token model (ids in, the
embedding layer explained, attention mask as an extra argument)."""

import torch
from torch import nn

from captum_higher_order.attr.layer import (
    LayerCrossDerivatives,
    LayerIntegratedHessians,
    LayerSmoothHess,
)
from tests.contract.harness import ContractCase


class TokenNet(nn.Module):
    """Word (+ optional segment) embeddings, one GELU encoder layer, a head."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(12, 4)
        self.seg = nn.Embedding(2, 4)
        layer = nn.TransformerEncoderLayer(4, 2, 8, dropout=0.0, batch_first=True,
                                           activation="gelu")
        self.enc = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.out = nn.Linear(4, 3)

    def forward(self, ids, *rest):
        segments = rest[0] if len(rest) == 2 else None
        mask = rest[-1]
        e = self.emb(ids) if segments is None else self.emb(ids) + self.seg(segments)
        h = self.enc(e, src_key_padding_mask=~mask.bool())
        return self.out(torch.tanh(h[:, 0]))


def token_net() -> nn.Module:
    return TokenNet().double().eval()


def _ids(model):
    ids = torch.tensor([[1, 2, 3, 4, 0], [5, 6, 7, 8, 9], [2, 3, 11, 0, 0]])
    mask = (ids != 0).long()
    return ids, (mask,)


def _tuple(model):
    ids, (mask,) = _ids(model)
    return (ids, (ids > 4).long()), (mask,)


def _run_ih(model, ids, target, args, seed):
    return LayerIntegratedHessians(model, model.emb).attribute(
        ids, baselines=10, target=target, additional_forward_args=args, n_steps=3,
        layer_mask=torch.tensor([0, 0, 1, 2, 3]), return_convergence_delta=True,
    )


def _run_cd(model, inputs, target, args, seed):
    return LayerCrossDerivatives(model, model.emb).attribute(
        inputs, target=target, additional_forward_args=args, baselines=(10, 0),
    )


def _run_sh(model, ids, target, args, seed):
    return LayerSmoothHess(model, model.emb).attribute(
        ids, target=target, additional_forward_args=args, sigma=0.3, n_samples=8,
        generator=seed,
    )


CASES = [
    ContractCase("layer-ih-mask-words", token_net, _ids, _run_ih, targets=[0, 2, 1],
                 atol=1e-10),
    ContractCase("layer-cd-tuple-segments", token_net, _tuple, _run_cd, targets=[1, 1, 0],
                 atol=1e-10),
    ContractCase("layer-sh-encoder", token_net, _ids, _run_sh, targets=[2, 0, 1],
                 atol=1e-10, stochastic=True),
]


# A Hugging Face BERT from a tiny config (sdpa attention), when the text extra is there.
try:
    import transformers
except ImportError:  # pragma: no cover - without the text extra
    transformers = None


def tiny_bert() -> nn.Module:
    from captum_higher_order.text import HFForward

    assert transformers is not None
    cfg = transformers.BertConfig(
        vocab_size=16, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=16, max_position_embeddings=8, num_labels=3,
        attn_implementation="sdpa", initializer_range=0.2,
    )
    return HFForward(transformers.BertForSequenceClassification(cfg)).double().eval()


def _run_bert_ih(model, ids, target, args, seed):
    return LayerIntegratedHessians(model, model.model.get_input_embeddings()).attribute(
        ids, baselines=0, target=target, additional_forward_args=args, n_steps=3,
    )


if transformers is not None:
    CASES.append(ContractCase("layer-ih-hf-bert-sdpa", tiny_bert, _ids, _run_bert_ih,
                              targets=[2, 1, 0], atol=1e-10))
