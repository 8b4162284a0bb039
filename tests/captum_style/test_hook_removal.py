"""No hook is left behind (Captum's test_hook_removal), also when a call fails.

One test per algorithm (and NoiseTunnel wrapping) and mode, on the first
config entry that uses it, as in Captum:

* ``normal``: a successful call;
* ``incorrect_target``: ``target=(9999,) * 20`` must be refused with a
  ValueError or TypeError whose message names the target;
* ``invalid_module``: a module the forward runs (the explained layer for
  layer methods, as in Captum) is replaced after the method is built by one
  that raises; the error must reach the caller.

Afterwards no module holds a forward, forward-pre, backward or backward-pre
hook, torch's global module hooks are as before, parameters keep their
``requires_grad`` and get no ``.grad``, and the inputs are unchanged.
"""

from __future__ import annotations

import copy
from typing import Any, Dict, List

import pytest
import torch
from captum.attr import LayerAttribution
from torch import nn
from torch.nn.modules import module as module_mod

from tests.captum_style.gen import Case, cases, flat

MODES = ("normal", "incorrect_target", "invalid_module")
# The module each model's forward runs last (Captum replaces the layer).
ERROR_AT = {"MultiLayer": "linear2", "MultiInput": "model.linear2", "ConvNet": "fc2"}
GLOBAL_HOOKS = ("_global_forward_hooks", "_global_forward_pre_hooks",
                "_global_backward_hooks", "_global_backward_pre_hooks")


class ForwardFailure(RuntimeError):
    pass


def _raise(*args: Any, **kwargs: Any) -> Any:
    raise ForwardFailure("Raising error on execution")


def _failing(original: nn.Module) -> nn.Module:
    """A copy of ``original`` whose forward raises. It keeps the original's
    class as a base, so methods that read the model's layers (DTD) accept it
    and the failure happens while the model runs."""
    failing = copy.deepcopy(original)
    failing.__class__ = type("Error" + type(original).__name__, (type(original),),
                             {"forward": _raise})
    return failing


def _first_cases() -> List[Any]:
    seen = set()
    out = []
    for case in cases((torch.float64,)):
        if case.refusal is not None:
            continue
        for mode in MODES:
            key = (case.algorithm, case.noise_tunnel, mode)
            if key not in seen:
                seen.add(key)
                out.append(pytest.param(case, mode, id=f"{mode}-{case.id}"))
    return out


def _break_module(model: nn.Module, path: str) -> None:
    *parents, last = path.split(".")
    owner = model
    for name in parents:
        owner = getattr(owner, name)
    setattr(owner, last, _failing(getattr(owner, last)))


def _hook_counts(model: nn.Module) -> Dict[str, int]:
    counts: Dict[str, int] = {}
    for name, mod in model.named_modules():
        for kind in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks",
                     "_backward_pre_hooks"):
            n = len(getattr(mod, kind))
            if n:
                counts[f"{name or '<model>'}.{kind}"] = n
    return counts


@pytest.mark.parametrize("case, mode", _first_cases())
def test_hook_removal(case: Case, mode: str) -> None:
    case = case.fresh()
    model = case.model
    global_before = {k: len(getattr(module_mod, k)) for k in GLOBAL_HOOKS}
    requires = {n: p.requires_grad for n, p in model.named_parameters()}
    inputs_before = [t.clone() for t in flat(case.args["inputs"])]
    method = case.method()
    overrides: Dict[str, Any] = {}
    if mode == "incorrect_target":
        overrides["target"] = (9999,) * 20
        with pytest.raises((ValueError, TypeError), match="target"):
            case.call(method, **overrides)
    elif mode == "invalid_module":
        is_layer = case.layer is not None and issubclass(case.algorithm, LayerAttribution)
        path = case.layer if is_layer else ERROR_AT[type(model).__name__]
        _break_module(model, path)
        if is_layer:  # Captum's order: the hooked layer is the failing module
            method = case.method()
        with pytest.raises(ForwardFailure):
            case.call(method)
    else:
        case.call(method)

    assert _hook_counts(model) == {}
    assert {k: len(getattr(module_mod, k)) for k in GLOBAL_HOOKS} == global_before
    for name, p in model.named_parameters():
        assert p.requires_grad == requires[name], f"{name}.requires_grad changed"
        assert p.grad is None, f"{name}.grad was written"
    for before, after in zip(inputs_before, flat(case.args["inputs"])):
        torch.testing.assert_close(after, before, rtol=0, atol=0)
        assert not after.requires_grad


def test_hook_check_catches_a_leak() -> None:
    """The check above can fail: a hook left on a submodule is reported."""
    model = nn.Sequential(nn.Linear(2, 2), nn.Tanh())
    handle = model[1].register_forward_hook(lambda m, i, o: None)
    assert _hook_counts(model) == {"1._forward_hooks": 1}
    handle.remove()
    assert _hook_counts(model) == {}
