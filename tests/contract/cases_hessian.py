"""Contract cases for the HVP engine itself (hvp, hessian, solve, eigenpairs)."""

import torch

from captum_higher_order.hessian import hessian, hvp, solve, top_eigenpairs
from tests.contract.harness import ContractCase
from tests.models import mlp, small_cnn, two_input_net


def _mlp_inputs(model):
    return torch.randn(3, 6, dtype=torch.float64), None


def _fixed_vectors(inputs, k=3):
    gen = torch.Generator().manual_seed(7)
    x = inputs if isinstance(inputs, torch.Tensor) else inputs[0]
    v = torch.randn(x.shape[1:].numel() * k, generator=gen, dtype=x.dtype).to(x.device)
    # The same k vectors for every sample, so per-sample calls can be compared.
    return v.view(1, k, *x.shape[1:]).expand(x.shape[0], -1, *([-1] * (x.dim() - 1)))


def _run_hvp(model, x, target, args, seed):
    return hvp(model, x, _fixed_vectors(x), target=target, objective="cross_entropy")


def _run_hessian_tuple(model, inputs, target, args, seed):
    return hessian(model, inputs, target=target, additional_forward_args=args,
                   objective="log_softmax")


def _tuple_inputs(model):
    x1 = torch.randn(3, 3, dtype=torch.float64)
    x2 = torch.randn(3, 2, 2, dtype=torch.float64)
    scale = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    return (x1, x2), (scale,)


def _run_hessian_cnn_grouped(model, x, target, args, seed):
    mask = torch.arange(64).view(1, 1, 8, 8) // 16  # 4 horizontal bands
    return hessian(model, x, target=target, objective="cross_entropy", feature_mask=mask)


def _cnn_inputs(model):
    return torch.randn(2, 1, 8, 8, dtype=torch.float64), None


def _run_solve(model, x, target, args, seed):
    rhs = torch.ones_like(x)
    return solve(model, x, rhs, shift=5.0, target=target, objective="cross_entropy",
                 tol=1e-10).solution


def _run_eigs(model, x, target, args, seed):
    return top_eigenpairs(model, x, k=2, target=target, objective="cross_entropy",
                          seed=seed, tol=1e-10).eigenvalues


CASES = [
    ContractCase("hvp-mlp-ce", mlp, _mlp_inputs, _run_hvp, targets=[0, 3, 1]),
    ContractCase("hessian-tuple-args", two_input_net, _tuple_inputs, _run_hessian_tuple,
                 targets=[2, 0, 1]),
    ContractCase("hessian-cnn-grouped", small_cnn, _cnn_inputs, _run_hessian_cnn_grouped,
                 targets=[1, 2]),
    ContractCase("solve-mlp", mlp, _mlp_inputs, _run_solve, targets=[1, 1, 2],
                 atol=1e-8),
    ContractCase("eigs-mlp", mlp, _mlp_inputs, _run_eigs, targets=[3, 0, 2],
                 atol=1e-8, stochastic=True),
]
