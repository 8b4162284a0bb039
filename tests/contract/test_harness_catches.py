"""The harness must fail loudly on a method that misbehaves."""

import pytest
import torch

from tests.contract.harness import (
    ContractCase,
    check_batched_targets,
    check_no_side_effects,
    check_no_side_effects_on_error,
)
from tests.models import mlp


def _inputs(model):
    return torch.randn(3, 6, dtype=torch.float64), None


def leaky_hook_method(model, x, target, args, seed):
    """A bad toy method: registers a forward hook and never removes it."""
    model[0].register_forward_hook(lambda m, i, o: None)
    return model(x)[torch.arange(x.shape[0]), torch.as_tensor(target)].unsqueeze(1)


def hook_removed_only_on_success(model, x, target, args, seed):
    handle = model[0].register_forward_hook(lambda m, i, o: None)
    out = model(x)  # raises under the harness's exploding hook
    handle.remove()
    return out


def mode_flipping_method(model, x, target, args, seed):
    model.train()
    return model(x)


def grad_leaking_method(model, x, target, args, seed):
    out = model(x)[:, 0].sum()
    out.backward()  # writes into the parameters' .grad
    return out.detach().expand(x.shape[0]).unsqueeze(1)


def requires_grad_method(model, x, target, args, seed):
    x.requires_grad_(True)
    return model(x)


def batch_coupling_method(model, x, target, args, seed):
    return model(x) - model(x).mean(0, keepdim=True)


@pytest.mark.parametrize(
    "method",
    [leaky_hook_method, mode_flipping_method, grad_leaking_method, requires_grad_method],
)
def test_side_effects_are_caught(method):
    case = ContractCase("bad", mlp, _inputs, method, targets=[0, 1, 2])
    with pytest.raises(AssertionError):
        check_no_side_effects(case, "cpu")


def test_hook_left_behind_on_error_is_caught():
    case = ContractCase("bad", mlp, _inputs, hook_removed_only_on_success, targets=[0, 1, 2])
    with pytest.raises(AssertionError, match="_forward_hooks"):
        check_no_side_effects_on_error(case, "cpu")


def test_batch_coupling_is_caught():
    case = ContractCase("bad", mlp, _inputs, batch_coupling_method, targets=[0, 1, 2])
    with pytest.raises(AssertionError):
        check_batched_targets(case, "cpu")
