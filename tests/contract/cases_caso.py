"""Contract cases for SecondOrderSaliency and GroupSparseSaliency (CASO)."""

import torch

from captum_higher_order.attr.group_sparse_saliency import GroupSparseSaliency
from captum_higher_order.attr.second_order_saliency import SecondOrderSaliency
from tests.contract.harness import ContractCase
from tests.models import mlp, small_cnn, two_input_net

# Tight solver tolerances: batched and per-sample calls run Lanczos from
# different random starts, so they agree only to the solvers' accuracy.
_TIGHT = dict(eig_tol=1e-10)


def _mlp_inputs(model):
    return torch.randn(3, 6, dtype=torch.float64), None


def _cnn_inputs(model):
    return torch.randn(2, 1, 8, 8, dtype=torch.float64), None


def _tuple_inputs(model):
    x1 = torch.randn(3, 3, dtype=torch.float64)
    x2 = torch.randn(3, 2, 2, dtype=torch.float64)
    scale = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    return (x1, x2), (scale,)


def _run_caso(model, inputs, target, args, seed):
    return SecondOrderSaliency(model).attribute(
        inputs, target=target, additional_forward_args=args, lambda2=0.05,
        cg_tol=1e-11, **_TIGHT,
    )


def _run_caso_delta(model, inputs, target, args, seed):
    d, delta = SecondOrderSaliency(model).attribute(
        inputs, target=target, additional_forward_args=args, lambda2_mode="absolute",
        lambda2=1.0, cg_tol=1e-11, return_convergence_delta=True, **_TIGHT,
    )
    return d


def _run_sparse_fixed(model, inputs, target, args, seed):
    return GroupSparseSaliency(model).attribute(
        inputs, target=target, additional_forward_args=args, lambda1=1e-3,
        lambda2=0.05, tol=1e-11, **_TIGHT,
    )


def _run_sparse_search(model, inputs, target, args, seed):
    return GroupSparseSaliency(model).attribute(
        inputs, target=target, additional_forward_args=args, lambda2=0.05,
        tol=1e-11, **_TIGHT,
    )


def _run_sparse_groups_tuple(model, inputs, target, args, seed):
    # Ids shared across the tuple: group a spans both inputs.
    masks = (torch.tensor([[0, 1, 2]]), torch.tensor([[[0, 1], [2, 3]]]))
    return GroupSparseSaliency(model).attribute(
        inputs, target=target, additional_forward_args=args, feature_mask=masks,
        lambda2=0.05, sparsity_range=(0.2, 0.8), tol=1e-11, **_TIGHT,
    )


_MAP = {"result": "map"}

CASES = [
    ContractCase("caso-mlp", mlp, _mlp_inputs, _run_caso, targets=[0, 3, 1],
                 atol=1e-8, tags=_MAP),
    ContractCase("caso-cnn-absolute", small_cnn, _cnn_inputs, _run_caso_delta,
                 targets=[2, 0], atol=1e-8, tags=_MAP),
    ContractCase("caso-tuple-args", two_input_net, _tuple_inputs, _run_caso,
                 targets=[2, 0, 1], atol=1e-8, tags=_MAP),
    ContractCase("sparse-caso-mlp", mlp, _mlp_inputs, _run_sparse_fixed,
                 targets=[1, 2, 3], atol=1e-8, tags=_MAP),
    ContractCase("sparse-caso-cnn-search", small_cnn, _cnn_inputs, _run_sparse_search,
                 targets=[1, 0], atol=1e-8, tags=_MAP),
    ContractCase("sparse-caso-tuple-groups", two_input_net, _tuple_inputs,
                 _run_sparse_groups_tuple, targets=[0, 2, 1], atol=1e-8, tags=_MAP),
]
