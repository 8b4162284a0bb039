"""Contract cases for CrossDerivatives (pairs, dense triples, ranked triples, groups)."""

import torch

from captum_higher_order.attr.cross_derivatives import CrossDerivatives
from tests.contract.harness import ContractCase
from tests.models import mlp, two_input_net


def _mlp_inputs(model):
    return torch.randn(3, 6, dtype=torch.float64), None


def _tuple_inputs(model):
    x1 = torch.randn(3, 3, dtype=torch.float64)
    x2 = torch.randn(3, 2, 2, dtype=torch.float64)
    scale = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    return (x1, x2), (scale,)


def _run_pairs(model, x, target, args, seed):
    return CrossDerivatives(model).attribute(x, target=target, objective="log_softmax")


def _run_triples_tuple(model, inputs, target, args, seed):
    return CrossDerivatives(model).attribute(
        inputs, target=target, additional_forward_args=args, order=3
    )


def _run_ranked_triples(model, x, target, args, seed):
    ranking = CrossDerivatives(model).attribute(
        x, target=target, order=3, top_k=4, search="exhaustive"
    )
    return ranking.indices, ranking.scores


def _run_grouped_triples(model, x, target, args, seed):
    mask = torch.tensor([[0, 0, 1, 2, 2, 3]])
    return CrossDerivatives(model).attribute(
        x, target=target, order=3, feature_mask=mask, absolute=False
    )


CASES = [
    ContractCase("cross-derivatives-pairs", mlp, _mlp_inputs, _run_pairs, targets=[0, 3, 1]),
    ContractCase("cross-derivatives-triples-tuple", two_input_net, _tuple_inputs,
                 _run_triples_tuple, targets=[2, 0, 1], atol=1e-8),
    ContractCase("cross-derivatives-ranked", mlp, _mlp_inputs, _run_ranked_triples,
                 targets=[1, 2, 3], atol=1e-8),
    ContractCase("cross-derivatives-grouped", mlp, _mlp_inputs, _run_grouped_triples,
                 targets=[3, 0, 2], atol=1e-8),
]
