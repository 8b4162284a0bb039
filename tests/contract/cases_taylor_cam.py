"""Contract cases for TaylorCAM (a layer method: conv models with the layer named)."""

import torch
from torch import Tensor

from captum_higher_order.attr.taylor_cam import TaylorCAM
from tests.contract.harness import ContractCase
from tests.models import SmallCNN, small_cnn


class ScaledCNN(SmallCNN):
    """SmallCNN whose logits are multiplied by a per-sample extra argument."""

    def forward(self, x: Tensor, scale: Tensor) -> Tensor:  # type: ignore[override]
        return super().forward(x) * scale.reshape(-1, 1)


def _scaled_cnn():
    return ScaledCNN().double().eval()


def _cnn_inputs(model):
    return torch.randn(3, 1, 8, 8, dtype=torch.float64), None


def _scaled_inputs(model):
    return torch.randn(3, 1, 8, 8, dtype=torch.float64), (
        torch.tensor([1.0, 0.5, 2.0], dtype=torch.float64),
    )


def _run_conv2(model, x, target, args, seed):
    return TaylorCAM(model, model.conv2).attribute(
        x, target=target, additional_forward_args=args
    )


def _run_first_order_regions(model, x, target, args, seed):
    quadrants = (torch.arange(8).view(8, 1) // 4) * 2 + torch.arange(8).view(1, 8) // 4
    return TaylorCAM(model, model.act1).attribute(
        x, target=target, regions=quadrants, return_first_order=True
    )


def _run_recorded_tail(model, x, target, args, seed):
    # rev_rev: the products go through the recorded tail graph (no second pass
    # through the layers before conv2).
    return TaylorCAM(model, model.conv2).attribute(
        x, target=target, additional_forward_args=args, mode="rev_rev",
        return_first_order=True,
    )


def _run_layer_input(model, x, target, args, seed):
    return TaylorCAM(model, model.act2).attribute(
        x, target=target, additional_forward_args=args, attribute_to_layer_input=True,
        objective="cross_entropy",
    )


CASES = [
    ContractCase("taylor-cam-conv2", small_cnn, _cnn_inputs, _run_conv2, targets=[0, 2, 1],
                 atol=1e-10, rtol=1e-8),
    ContractCase("taylor-cam-regions-first-order", small_cnn, _cnn_inputs,
                 _run_first_order_regions, targets=[1, 1, 2], atol=1e-10, rtol=1e-8),
    ContractCase("taylor-cam-layer-input-args", _scaled_cnn, _scaled_inputs,
                 _run_layer_input, targets=[2, 0, 1], atol=1e-10, rtol=1e-8),
    ContractCase("taylor-cam-conv2-args", _scaled_cnn, _scaled_inputs, _run_conv2,
                 targets=[1, 0, 2], atol=1e-10, rtol=1e-8),
    ContractCase("taylor-cam-recorded-tail", _scaled_cnn, _scaled_inputs, _run_recorded_tail,
                 targets=[0, 2, 1], atol=1e-10, rtol=1e-8),
]
