"""Turns the entries of :mod:`tests.captum_style.config` into pytest cases.

Captum builds its generated tests with a metaclass over ``config``; here the
same loop produces ``pytest.param`` objects with Captum-style ids
(``<entry>_<Algorithm>[NoiseTunnel]-<dtype>``), so each consumer is one
parametrised test function.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest
import torch
from captum.attr import LayerAttribution, NoiseTunnel
from torch import Tensor, nn

from tests.captum_style.config import (
    ALGORITHM_ARGS,
    DP_DELTA,
    DTYPES,
    TARGET_DELTA,
    Refusal,
    config,
)


@dataclass
class Case:
    name: str
    dtype: torch.dtype
    algorithm: type
    model: nn.Module
    args: Dict[str, Any]
    layer: Optional[str] = None
    noise_tunnel: bool = False
    baseline_distr: bool = False
    target_delta: float = 0.0
    dp_delta: float = 0.0
    refusal: Optional[Refusal] = None
    all_zero: bool = False
    entry: Dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        nt = "NoiseTunnel" if self.noise_tunnel else ""
        return f"{self.name}_{self.algorithm.__name__}{nt}-{str(self.dtype)[6:]}"

    def fresh(self) -> Case:
        """A deep copy, so that no test sees another's model or arguments."""
        return copy.deepcopy(self)

    def method(self, model: Optional[nn.Module] = None, layer_of: Optional[nn.Module] = None):
        """The algorithm on ``model`` (default: the case's), NoiseTunnel-wrapped
        when the entry says so. ``layer_of`` is the module the layer is read
        from (the unwrapped model, for DataParallel)."""
        model = self.model if model is None else model
        if self.layer is not None and issubclass(self.algorithm, LayerAttribution):
            owner = model if layer_of is None else layer_of
            method = self.algorithm(model, getattr(owner, self.layer))
        else:
            method = self.algorithm(model)
        return NoiseTunnel(method) if self.noise_tunnel else method

    def call(self, method: Any, **overrides: Any) -> Any:
        kwargs = {**ALGORITHM_ARGS.get(self.algorithm, {}), **self.args, **overrides}
        with warnings.catch_warnings():
            # ZeroHessianWarning or a sparsity-search warning must not fail a
            # comparison; the nonzero checks below catch all-zero results.
            warnings.simplefilter("ignore")
            return method.attribute(**kwargs)


def cases(dtypes: Tuple[torch.dtype, ...] = DTYPES) -> Iterator[Case]:
    for dtype in dtypes:
        for entry in config(dtype):
            for algorithm in entry["algorithms"]:
                yield Case(
                    name=entry["name"], dtype=dtype, algorithm=algorithm,
                    model=entry["model"], args=entry["attribute_args"],
                    layer=entry.get("layer"), noise_tunnel=entry.get("noise_tunnel", False),
                    baseline_distr=entry.get("baseline_distr", False),
                    target_delta=entry.get("target_delta", TARGET_DELTA)[dtype],
                    dp_delta=entry.get("dp_delta", DP_DELTA)[dtype],
                    refusal=entry.get("refusals", {}).get(algorithm),
                    all_zero=entry.get("all_zero", False), entry=entry,
                )


def params(selected: List[Case]) -> List[Any]:
    """pytest params with Captum-style ids; xfail refusals marked non-strict."""
    out = []
    for case in selected:
        marks = []
        if case.refusal is not None and case.refusal.xfail:
            marks.append(pytest.mark.xfail(strict=False, reason=case.refusal.xfail))
        out.append(pytest.param(case, id=case.id, marks=marks))
    return out


def expect_refusal(case: Case, run: Callable[[], Any]) -> None:
    """The call raises the documented error, with its message."""
    assert case.refusal is not None
    with pytest.raises(case.refusal.error, match=case.refusal.match):
        run()


def flat(result: Any) -> List[Tensor]:
    """The tensors of an attribution result (tensor, tuple, or (attr, delta))."""
    if isinstance(result, Tensor):
        return [result]
    out: List[Tensor] = []
    for item in result:
        out.extend(flat(item))
    return out


def assert_close(actual: Any, expected: Any, delta: float, what: str = "") -> None:
    """Captum's ``assertTensorTuplesAlmostEqual(mode="max")``, relative to the
    largest entry of ``expected`` (these attributions span many scales)."""
    a_list, e_list = flat(actual), flat(expected)
    assert len(a_list) == len(e_list), what
    for a, e in zip(a_list, e_list):
        assert a.shape == e.shape, f"{what}: shape {tuple(a.shape)} != {tuple(e.shape)}"
        scale = float(e.detach().abs().max()) if e.numel() else 0.0
        err = float((a.detach().cpu() - e.detach().cpu()).abs().max()) if e.numel() else 0.0
        assert err <= delta * max(scale, 1e-3), (
            f"{what}: max |diff| {err:.3g} > {delta:g} x max |expected| {scale:.3g}")


def assert_magnitude(case: Case, result: Any) -> None:
    """Not identically zero (nothing passes on zeros), unless the entry is
    zero by construction, where it must be zero up to rounding."""
    tensors = flat(result)
    if case.all_zero:
        largest = max(float(t.abs().max()) for t in tensors)
        assert largest <= 16 * torch.finfo(case.dtype).eps, f"{case.id}: {largest:.3g} != 0"
    else:
        assert any(bool(t.abs().sum() > 0) for t in tensors), f"{case.id}: all zero"


def num_examples(inputs: Any) -> int:
    return len(inputs) if isinstance(inputs, Tensor) else len(inputs[0])


def row(value: Any, i: int) -> Any:
    """Example ``i`` (kept 2-D) of a tensor, or of each tensor in a tuple."""
    if isinstance(value, Tensor):
        return value[i : i + 1]
    if isinstance(value, tuple):
        return tuple(v[i : i + 1] if isinstance(v, Tensor) else v for v in value)
    return value


def script_or_trace(model: nn.Module, how: str, example: Tuple[Any, ...]) -> nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated in favour of export
        if how == "script":
            return torch.jit.script(model)
        return torch.jit.trace(model, example)
