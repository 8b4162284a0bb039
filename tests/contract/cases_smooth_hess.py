"""Contract cases for SmoothHess (interactions, grouped, SmoothGrad map, stderr)."""

import torch
from torch import nn

from captum_higher_order.attr.smooth_hess import SmoothHess
from tests.contract.harness import ContractCase
from tests.models import mlp, small_cnn, two_input_net


def _relu_mlp():
    return mlp(act=nn.ReLU)


def _mlp_inputs(model):
    return torch.randn(3, 6, dtype=torch.float64), None


def _run_dense(model, x, target, args, seed):
    return SmoothHess(model).attribute(x, target=target, sigma=0.5, n_samples=64,
                                       generator=seed)


def _tuple_inputs(model):
    x1 = torch.randn(3, 3, dtype=torch.float64)
    x2 = torch.randn(3, 2, 2, dtype=torch.float64)
    scale = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    return (x1, x2), (scale,)


def _run_tuple_grouped(model, inputs, target, args, seed):
    mask = (torch.tensor([[0, 1, 1]]), torch.tensor([[[2, 2], [0, 3]]]))
    hess, grads = SmoothHess(model).attribute(
        inputs, target=target, additional_forward_args=args, objective="log_softmax",
        sigma=0.3, n_samples=32, feature_mask=mask, return_gradient=True, generator=seed,
    )
    return (hess,) + grads


def _run_smoothgrad_map(model, inputs, target, args, seed):
    return SmoothHess(model).attribute(
        inputs, target=target, additional_forward_args=args, sigma=0.3, n_samples=16,
        return_gradient=True, generator=seed, batch_size=10,
    )[1]


def _cnn_inputs(model):
    return torch.randn(2, 1, 8, 8, dtype=torch.float64), None


def _run_cnn_grouped_stderr(model, x, target, args, seed):
    mask = torch.arange(64).view(1, 1, 8, 8) // 16
    hess, err = SmoothHess(model).attribute(
        x, target=target, objective="cross_entropy", sigma=0.2, n_samples=16,
        feature_mask=mask, return_stderr=True, generator=seed,
    )
    return hess, err


CASES = [
    ContractCase("smooth-hess-relu-mlp", _relu_mlp, _mlp_inputs, _run_dense,
                 targets=[0, 3, 1], atol=1e-10, stochastic=True),
    ContractCase("smooth-hess-tuple-grouped", two_input_net, _tuple_inputs,
                 _run_tuple_grouped, targets=[2, 0, 1], atol=1e-10, stochastic=True),
    ContractCase("smooth-hess-smoothgrad-map", two_input_net, _tuple_inputs,
                 _run_smoothgrad_map, targets=[1, 2, 0], atol=1e-10, stochastic=True,
                 tags={"result": "map"}),
    ContractCase("smooth-hess-cnn-stderr", lambda: small_cnn(act=nn.ReLU), _cnn_inputs,
                 _run_cnn_grouped_stderr, targets=[1, 2], atol=1e-10, stochastic=True),
]
