"""The harness must fail loudly on a method that misbehaves."""

import pytest
import torch

from tests.contract.harness import (
    ContractCase,
    assert_reproduced,
    check_batched_targets,
    check_determinism,
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


def _jitter(relative):
    """A toy method whose result moves by ``relative`` x its size between calls,
    as reordered floating-point sums do on a non-deterministic backend."""

    def method(model, x, target, args, seed):
        out = model(x)
        return out + relative * out.abs().max() * torch.rand_like(out)

    return method


def test_cpu_determinism_is_bitwise():
    case = ContractCase("jitter", mlp, _inputs, _jitter(1e-15), targets=[0, 1, 2])
    with pytest.raises(AssertionError, match="same seed gave different results"):
        check_determinism(case, "cpu")


def test_non_deterministic_backend_is_held_to_the_tolerance():
    # What the harness checks on CUDA without deterministic algorithms: a
    # rounding-level difference passes, a real one fails.
    model = mlp()
    x = torch.randn(3, 6, dtype=torch.float64)
    small, large = _jitter(1e-12), _jitter(1e-3)
    assert_reproduced(small(model, x, 0, None, 0), small(model, x, 0, None, 0), False, "t")
    with pytest.raises(AssertionError, match="results differ"):
        assert_reproduced(large(model, x, 0, None, 0), large(model, x, 0, None, 0), False, "t")
