"""Contract cases for IntegratedHessians and ExpectedHessians."""

import torch

from captum_higher_order.attr.integrated_hessians import ExpectedHessians, IntegratedHessians
from tests.contract.harness import ContractCase
from tests.models import mlp, small_cnn, two_input_net


def _mlp_inputs(model):
    return torch.randn(3, 6, dtype=torch.float64), None


def _run_mlp(model, x, target, args, seed):
    base = torch.linspace(-0.5, 0.5, 6, dtype=torch.float64).view(1, 6)
    return IntegratedHessians(model).attribute(
        x, base, target=target, objective="log_softmax", n_steps=4
    )


def _tuple_inputs(model):
    x1 = torch.randn(3, 3, dtype=torch.float64)
    x2 = torch.randn(3, 2, 2, dtype=torch.float64)
    scale = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    return (x1, x2), (scale,)


def _run_tuple(model, inputs, target, args, seed):
    gamma, delta = IntegratedHessians(model).attribute(
        inputs, (0.1, torch.zeros(1, 2, 2, dtype=torch.float64)), target=target,
        additional_forward_args=args, n_steps=3, internal_batch_size=5,
        return_convergence_delta=True,
    )
    return gamma, delta


def _cnn_inputs(model):
    return torch.randn(2, 1, 8, 8, dtype=torch.float64), None


def _run_cnn_grouped(model, x, target, args, seed):
    mask = torch.arange(64).view(1, 1, 8, 8) // 16  # 4 horizontal bands
    return IntegratedHessians(model).attribute(
        x, target=target, objective="cross_entropy", n_steps=2, feature_mask=mask
    )


def _run_adaptive(model, x, target, args, seed):
    # The rule is chosen over the whole batch, so per-sample calls may pick
    # another n_steps; at tol=1e-9 both agree far inside the tolerances below.
    base = torch.linspace(-0.5, 0.5, 6, dtype=torch.float64).view(1, 6)
    return IntegratedHessians(model).attribute(
        x, base, target=target, objective="log_softmax", n_steps=None, tol=1e-9
    )


def _run_expected(model, x, target, args, seed):
    references = torch.randn(
        7, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64
    )
    return ExpectedHessians(model).attribute(
        x, references, target=target, n_steps=3, n_references=3, seed=seed
    )


CASES = [
    ContractCase("ih-mlp-logsoftmax", mlp, _mlp_inputs, _run_mlp, targets=[0, 3, 1],
                 atol=1e-10),
    ContractCase("ih-mlp-adaptive", mlp, _mlp_inputs, _run_adaptive, targets=[0, 3, 1],
                 atol=1e-8, rtol=1e-6),
    ContractCase("ih-tuple-args-delta", two_input_net, _tuple_inputs, _run_tuple,
                 targets=[2, 0, 1], atol=1e-10),
    ContractCase("ih-cnn-grouped", small_cnn, _cnn_inputs, _run_cnn_grouped,
                 targets=[1, 2], atol=1e-10),
    ContractCase("eh-mlp-references", mlp, _mlp_inputs, _run_expected, targets=[2, 2, 0],
                 atol=1e-10, stochastic=True),
]
