"""Batched calls equal one-sample calls, for every target form (Captum's test_targets).

For every entry of the config and every algorithm: attribute the whole batch,
then each example alone (its target, its row of tensor extra arguments, its
row of per-example baselines; a baseline distribution stays whole) and
compare. Convergence deltas must be finite (a zero gradient in float32
used to give NaN). When the target is per example, the one-element list form
``target[i:i+1]`` is checked too. Unlike Captum's, an int or None target is
covered as well (the same target for every call), and refusals by design are
asserted with their messages.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from tests.captum_style.gen import (
    Case,
    assert_close,
    assert_magnitude,
    cases,
    expect_refusal,
    num_examples,
    params,
    row,
)

CASES = list(cases())


def _per_example_targets(target, n):
    return isinstance(target, (list, Tensor)) and len(target) == n and n > 1


@pytest.mark.parametrize("case", params(CASES))
def test_target(case: Case) -> None:
    case = case.fresh()
    if case.refusal is not None:
        expect_refusal(case, lambda: case.call(case.method()))
        return
    method = case.method()
    batched = case.call(method)
    assert_magnitude(case, batched)
    if method.has_convergence_delta():
        _, delta = case.call(method, return_convergence_delta=True)
        assert bool(torch.isfinite(delta).all()), f"{case.id}: convergence delta {delta}"
    args = case.args
    n = num_examples(args["inputs"])
    target = args["target"]
    per_example = _per_example_targets(target, n)
    for i in range(n):
        one = {"inputs": row(args["inputs"], i)}
        one["target"] = target[i] if per_example else target
        if "additional_forward_args" in args:
            one["additional_forward_args"] = row(args["additional_forward_args"], i)
        if "baselines" in args and not case.baseline_distr:
            one["baselines"] = row(args["baselines"], i)
        expected = [b[i : i + 1] for b in _as_list(batched)]
        torch.manual_seed(0)
        single = case.call(method, **one)
        assert_close(_as_list(single), expected, case.target_delta, f"{case.id} example {i}")
        if per_example:
            one["target"] = target[i : i + 1]
            single = case.call(method, **one)
            assert_close(_as_list(single), expected, case.target_delta,
                         f"{case.id} example {i}, target[i:i+1]")


def _as_list(result):
    return [result] if isinstance(result, Tensor) else list(result)
