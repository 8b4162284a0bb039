"""Every row of the bad-input table (tests/fuzz/cases.py) raises the stated
exception with a message that contains the stated phrase, and no row changes
the shared model (weights, .grad, hooks), also when raising."""

from __future__ import annotations

import warnings

import pytest
import torch

from tests.fuzz import cases

CASES = cases.all_cases()


@pytest.mark.parametrize("case", CASES, ids=[f"{c.method}-{c.name}" for c in CASES])
def test_bad_input_gives_a_clear_error(case):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(case.error) as info:
            case.call()
    assert case.phrase in str(info.value), str(info.value)


def test_table_covers_every_method_and_leaves_the_model_untouched():
    assert {c.method for c in CASES} == set(cases.METHODS) | {"TaylorCAM"}
    model = cases._M
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for case in CASES[:40]:
            with pytest.raises(case.error):
                case.call()
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(p.grad is None for p in model.parameters())
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
