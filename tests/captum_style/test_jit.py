"""Scripted and traced models give the eager result (Captum's test_jit, on CPU).

Captum's ``test_jit`` raises SkipTest without CUDA for every mode (its mode
check ``mode is A or B`` is always true), so upstream it runs nothing on a
CPU machine. Here ``script`` and ``trace`` run on CPU for every config entry
and algorithm, in float64 and float32. Each compiled model is explained
twice: TorchScript's profiling executor runs an optimised graph from the
second call on, which is where forward-mode AD used to lose its tangents
(issue 19, bug 1). Tracing needs tensor-only arguments, so entries with
non-tensor extra arguments are scripted only.

Refused by design: DTDRootCheck reads the model's layers, and TorchScript
modules are not ``nn.Linear`` / ``nn.Conv2d``; TaylorCAM hooks a layer, and
TorchScript modules take no Python hooks.
"""

from __future__ import annotations

from typing import Any, List, Tuple

import pytest
import torch
from torch import Tensor

from captum_higher_order import DTDRootCheck, TaylorCAM
from tests.captum_style.config import Refusal
from tests.captum_style.gen import (
    Case,
    assert_close,
    assert_magnitude,
    cases,
    script_or_trace,
)

JIT_REFUSALS = {
    DTDRootCheck: Refusal(TypeError, "RecursiveScriptModule|TracedModule"),
    # TorchScript modules take no forward hooks: refused in __init__.
    TaylorCAM: Refusal(TypeError, "(?i)torchscript|scriptmodule"),
}
# Bitwise equality is not promised: the optimised graph may fuse differently.
JIT_DELTA = {torch.float64: 1e-9, torch.float32: 1e-4}
# Convergence deltas are residuals (CG, completeness): compared absolutely, as
# they sit at rounding level in float32.
DELTA_ATOL = {torch.float64: 1e-10, torch.float32: 2e-6}


def _trace_example(case: Case) -> Tuple[Any, ...] | None:
    inputs = case.args["inputs"]
    example = (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)
    extra = case.args.get("additional_forward_args")
    if extra is not None:
        extra = extra if isinstance(extra, tuple) else (extra,)
        if not all(isinstance(e, Tensor) for e in extra):
            return None
        example += extra
    return example


def _jit_cases() -> List[Any]:
    out = []
    for case in cases():
        if case.refusal is not None:
            continue
        for how in ("script", "trace"):
            if how == "trace" and _trace_example(case) is None:
                continue
            refusal = JIT_REFUSALS.get(case.algorithm)
            marks = [pytest.mark.xfail(strict=False, reason=refusal.xfail)] if (
                refusal is not None and refusal.xfail) else []
            out.append(pytest.param(case, how, id=f"cpu_jit_{how}-{case.id}", marks=marks))
    return out


@pytest.mark.parametrize("case, how", _jit_cases())
def test_jit(case: Case, how: str) -> None:
    case = case.fresh()
    compiled = script_or_trace(case.model, how, _trace_example(case) or ())
    refusal = JIT_REFUSALS.get(case.algorithm)
    if refusal is not None:
        with pytest.raises(refusal.error, match=refusal.match):
            case.call(case.method(compiled))
        return
    eager_method, jit_method = case.method(), case.method(compiled)
    with_delta = eager_method.has_convergence_delta()
    extra = {"return_convergence_delta": True} if with_delta else {}
    torch.manual_seed(0)
    expected = case.call(eager_method, **extra)
    assert_magnitude(case, expected[0] if with_delta else expected)
    for call in range(2):  # the profiling executor swaps graphs after call 1
        torch.manual_seed(0)
        got = case.call(jit_method, **extra)
        what = f"{case.id} {how} call {call}"
        if not with_delta:
            assert_close(got, expected, JIT_DELTA[case.dtype], what)
            continue
        assert_close(got[0], expected[0], JIT_DELTA[case.dtype], what)
        err = float((got[1] - expected[1]).abs().max())
        assert err <= DELTA_ATOL[case.dtype], f"{what}: convergence deltas differ by {err:.3g}"
