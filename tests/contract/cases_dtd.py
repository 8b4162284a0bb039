"""Contract cases for DTDRootCheck: the relevance map and the report."""

import torch
from torch import nn

from captum_higher_order.attr.dtd_root_check import DTDRootCheck
from tests.contract.harness import ContractCase
from tests.models import mlp, small_cnn


def _relu_mlp():
    return mlp(act=nn.ReLU)


def _relu_cnn():
    return small_cnn(nn.ReLU)


def _relu_resnet():
    """A torchvision ResNet with one BasicBlock per stage (residual additions,
    BatchNorm folding, adaptive pooling); float64, eval."""
    from torchvision.models.resnet import BasicBlock, ResNet

    return ResNet(BasicBlock, [1, 1, 1, 1], num_classes=4).double().eval()


def _resnet_inputs(model):
    return torch.rand(2, 3, 16, 16, dtype=torch.float64), None


def _mlp_inputs(model):
    return torch.rand(3, 6, dtype=torch.float64), None


def _cnn_inputs(model):
    return torch.rand(2, 1, 8, 8, dtype=torch.float64), None


def _run_zplus(model, x, target, args, seed):
    return DTDRootCheck(model, rule="z+").attribute(x, target=target,
                                                    additional_forward_args=args)


def _run_gamma(model, x, target, args, seed):
    return DTDRootCheck(model, rule="gamma", rule_kwargs={"gamma": 0.5}).attribute(
        x, target=target)


def _run_check(model, x, target, args, seed):
    report = DTDRootCheck(model, rule="z+").check(x, target=target, n_segment_points=4,
                                                  seed=seed)
    # per-sample tensors only (the harness compares batched with per-sample calls)
    return (report.cosine_gxi, report.rel_l1_gxi, report.spearman_gxi,
            torch.nan_to_num(report.valid_share, nan=-1.0),
            torch.nan_to_num(report.root_dependence, nan=-1.0),
            report.conservation_total)


CASES = [
    ContractCase("dtd-zplus-mlp", _relu_mlp, _mlp_inputs, _run_zplus, targets=[0, 3, 1],
                 tags={"result": "map"}),
    ContractCase("dtd-gamma-cnn", _relu_cnn, _cnn_inputs, _run_gamma, targets=[1, 2],
                 tags={"result": "map"}),
    ContractCase("dtd-zplus-resnet", _relu_resnet, _resnet_inputs, _run_zplus, targets=[3, 1],
                 tags={"result": "map"}),
    ContractCase("dtd-check-cnn", _relu_cnn, _cnn_inputs, _run_check, targets=[2, 0],
                 atol=1e-8, stochastic=True),
]
