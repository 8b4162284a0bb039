"""The Captum contract every registered method is held to.

A :class:`ContractCase` says how to build a model and inputs and how to run one
method on them. The checks here run it through: batched list/tensor targets
equal per-sample calls; tuple inputs and additional_forward_args pass through;
no side effects (hooks on every module, ``training`` flags, parameters and their
``.grad``, the inputs' ``requires_grad``), also when the call raises; the same
seed gives the same result, as docs/design.md ("Reproducibility") promises per
device. ``test_contract.py`` parametrises them over every
case in the registry and over the devices present.

To register a method, add a module ``tests/contract/cases_<name>.py`` defining
``CASES = [ContractCase(...), ...]``; ``registry.py`` discovers it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

Inputs = Any  # Tensor or tuple of Tensors


@dataclass
class ContractCase:
    """One configuration of one method.

    Attributes:
        name: Test id, e.g. ``"hvp-mlp-ce"``.
        make_model: Builds the model (deterministically; the harness seeds
            torch before calling it). Must return an ``nn.Module`` in eval mode.
        make_inputs: ``(model) -> (inputs, additional_forward_args)``; inputs
            with batch size >= 2.
        run: ``(model, inputs, target, additional_forward_args, seed) -> result``;
            calls the method. ``result`` is a Tensor or a tuple of Tensors whose
            dim 0 is the batch (extra return values: return only the per-sample
            tensors).
        targets: One target per sample of ``make_inputs`` (ints), or None if the
            model returns one score per sample.
        atol, rtol: Tolerances for "per-sample equals batched".
        stochastic: True if ``run`` uses ``seed``; determinism is then checked
            against a different seed too.
    """

    name: str
    make_model: Callable[[], nn.Module]
    make_inputs: Callable[[nn.Module], Tuple[Inputs, Any]]
    run: Callable[[nn.Module, Inputs, Any, Any, int], Any]
    targets: Optional[List[int]] = None
    atol: float = 1e-6
    rtol: float = 1e-5
    stochastic: bool = False
    tags: Dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- snapshots

_HOOK_DICTS = (
    "_forward_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_forward_pre_hooks",
    "_forward_pre_hooks_with_kwargs",
    "_backward_hooks",
    "_backward_pre_hooks",
    "_state_dict_hooks",
    "_state_dict_pre_hooks",
    "_load_state_dict_pre_hooks",
    "_load_state_dict_post_hooks",
)


def snapshot_model(model: nn.Module) -> Dict[str, Any]:
    """Everything a method must leave as it found it."""
    snap: Dict[str, Any] = {}
    for name, module in model.named_modules():
        snap[f"{name}.training"] = module.training
        snap[f"{name}.class"] = type(module)
        for attr in _HOOK_DICTS:
            hooks = getattr(module, attr, None)
            if hooks is not None:
                snap[f"{name}.{attr}"] = list(hooks.items())
        snap[f"{name}.is_full_backward_hook"] = getattr(
            module, "_is_full_backward_hook", None
        )
    for name, param in model.named_parameters():
        snap[f"param:{name}"] = param.detach().clone()
        snap[f"param:{name}.requires_grad"] = param.requires_grad
        snap[f"param:{name}.grad"] = None if param.grad is None else param.grad.clone()
    for name, buf in model.named_buffers():
        snap[f"buffer:{name}"] = buf.detach().clone()
    snap["global_forward_hooks"] = list(nn.modules.module._global_forward_hooks.items())
    snap["global_forward_pre_hooks"] = list(
        nn.modules.module._global_forward_pre_hooks.items()
    )
    snap["global_backward_hooks"] = list(nn.modules.module._global_backward_hooks.items())
    snap["grad_enabled"] = torch.is_grad_enabled()
    return snap


def snapshot_inputs(inputs: Inputs, args: Any) -> List[Any]:
    tensors = list(inputs) if isinstance(inputs, tuple) else [inputs]
    if isinstance(args, tuple):
        tensors += [a for a in args if isinstance(a, Tensor)]
    elif isinstance(args, Tensor):
        tensors.append(args)
    return [(t.requires_grad, t.detach().clone(), t.grad) for t in tensors]


def assert_same_state(before: Dict[str, Any], after: Dict[str, Any]) -> None:
    assert before.keys() == after.keys(), (
        "modules or parameters were added or removed: "
        f"{sorted(set(before) ^ set(after))}"
    )
    for key, old in before.items():
        new = after[key]
        if isinstance(old, Tensor) or isinstance(new, Tensor):
            assert isinstance(old, Tensor) and isinstance(new, Tensor), key
            assert torch.equal(old, new), f"{key} changed"
        else:
            assert old == new, f"{key} changed: {old!r} -> {new!r}"


def assert_same_inputs(before: List[Any], after: List[Any]) -> None:
    for i, ((rg0, v0, g0), (rg1, v1, g1)) in enumerate(zip(before, after)):
        assert rg0 == rg1, f"input {i}: requires_grad changed {rg0} -> {rg1}"
        assert torch.equal(v0, v1), f"input {i}: values were modified in place"
        assert (g0 is None) == (g1 is None), f"input {i}: .grad changed"


# --------------------------------------------------------------------------- helpers


def as_tuple(result: Any) -> Tuple[Tensor, ...]:
    return result if isinstance(result, tuple) else (result,)


def to_device(obj: Any, device: str) -> Any:
    if isinstance(obj, Tensor):
        return obj.to(device)
    if isinstance(obj, tuple):
        return tuple(to_device(o, device) for o in obj)
    return obj


def select_samples(obj: Any, index: Sequence[int], batch: int) -> Any:
    """Rows ``index`` of every batched tensor in ``obj`` (inputs or extra args)."""
    if isinstance(obj, Tensor):
        if obj.dim() > 0 and obj.shape[0] == batch:
            return obj[list(index)]
        return obj
    if isinstance(obj, tuple):
        return tuple(select_samples(o, index, batch) for o in obj)
    return obj


def build(case: ContractCase, device: str) -> Tuple[nn.Module, Inputs, Any]:
    torch.manual_seed(0)
    model = case.make_model().to(device)
    torch.manual_seed(1)
    inputs, args = case.make_inputs(model)
    return model, to_device(inputs, device), to_device(args, device)


def batch_size(inputs: Inputs) -> int:
    return as_tuple(inputs)[0].shape[0]


def assert_close(a: Any, b: Any, case: ContractCase, what: str) -> None:
    ta, tb = as_tuple(a), as_tuple(b)
    assert len(ta) == len(tb), f"{what}: {len(ta)} vs {len(tb)} tensors"
    for x, y in zip(ta, tb):
        assert x.shape == y.shape, f"{what}: shape {tuple(x.shape)} vs {tuple(y.shape)}"
        torch.testing.assert_close(
            x.detach().cpu().double(),
            y.detach().cpu().double(),
            atol=case.atol,
            rtol=case.rtol,
            msg=lambda m: f"{what}: {m}",
        )


# --------------------------------------------------------------------------- checks


def check_batched_targets(case: ContractCase, device: str) -> None:
    """List targets, tensor targets and per-sample calls agree."""
    model, inputs, args = build(case, device)
    batch = batch_size(inputs)
    targets = case.targets
    as_list = None if targets is None else list(targets)
    batched = case.run(model, inputs, as_list, args, 0)
    if targets is not None:
        as_tensor = torch.tensor(targets, device=device)
        assert_close(
            batched, case.run(model, inputs, as_tensor, args, 0), case,
            "tensor target vs list target",
        )
    singles = []
    for b in range(batch):
        x_b = select_samples(inputs, [b], batch)
        a_b = select_samples(args, [b], batch)
        t_b = None if targets is None else targets[b]
        singles.append(as_tuple(case.run(model, x_b, t_b, a_b, 0)))
    stacked = tuple(torch.cat([s[i] for s in singles]) for i in range(len(singles[0])))
    assert_close(as_tuple(batched), stacked, case, "batched vs per-sample")


def check_structure(case: ContractCase, device: str) -> None:
    """Every returned tensor has the batch in dim 0; maps of a tuple input are a
    tuple of the same length."""
    model, inputs, args = build(case, device)
    result = case.run(model, inputs, case.targets, args, 0)
    batch = batch_size(inputs)
    for t in as_tuple(result):
        assert isinstance(t, Tensor)
        assert t.shape[0] == batch, f"dim 0 is {t.shape[0]}, batch is {batch}"
        assert bool(torch.isfinite(t).all()), "result contains NaN/Inf"
    if case.tags.get("result") == "map":
        tup = as_tuple(inputs)
        res = as_tuple(result)
        assert isinstance(result, tuple) == isinstance(inputs, tuple)
        assert [r.shape for r in res] == [x.shape for x in tup]


def check_no_side_effects(case: ContractCase, device: str) -> None:
    """Model state, hooks and inputs are untouched by a successful call."""
    model, inputs, args = build(case, device)
    for p in model.parameters():  # a user mid-training may have grads around
        p.grad = torch.full_like(p, 0.5)
    model_before = snapshot_model(model)
    inputs_before = snapshot_inputs(inputs, args)
    case.run(model, inputs, case.targets, args, 0)
    assert_same_state(model_before, snapshot_model(model))
    assert_same_inputs(inputs_before, snapshot_inputs(inputs, args))


class Boom(RuntimeError):
    pass


def check_no_side_effects_on_error(case: ContractCase, device: str) -> None:
    """Same, when the forward pass raises part-way (from a user hook on the
    first module that is called)."""
    model, inputs, args = build(case, device)
    leaves = [m for m in model.modules() if not list(m.children())]
    target_module = leaves[-1] if leaves else model
    calls = {"n": 0}

    def explode(module: nn.Module, inp: Any, out: Any) -> None:
        calls["n"] += 1
        raise Boom("raised inside the forward pass")

    handle = target_module.register_forward_hook(explode)
    try:
        model_before = snapshot_model(model)
        inputs_before = snapshot_inputs(inputs, args)
        try:
            case.run(model, inputs, case.targets, args, 0)
        except Exception:
            pass
        assert calls["n"] > 0, "the method never ran the model's forward pass"
        assert_same_state(model_before, snapshot_model(model))
        assert_same_inputs(inputs_before, snapshot_inputs(inputs, args))
    finally:
        handle.remove()


# The reproducibility contract of docs/design.md ("Reproducibility"):
# - CPU: the same seed gives bitwise-equal results;
# - CUDA with torch.use_deterministic_algorithms(True): bitwise-equal results;
# - CUDA otherwise: equal within REPRODUCIBILITY_RTOL[dtype] * max |result|
#   (cuDNN algorithm choice and atomics reorder floating-point sums);
# - seeded noise is drawn on the CPU, so a stochastic method's result on CUDA
#   equals its CPU result within the same tolerance.
REPRODUCIBILITY_RTOL = {torch.float64: 1e-9, torch.float32: 1e-4, torch.bfloat16: 2e-2,
                        torch.float16: 2e-2}


def expects_bitwise(device: str) -> bool:
    """Whether the contract promises bitwise reproducibility on ``device`` now."""
    return device == "cpu" or torch.are_deterministic_algorithms_enabled()


def assert_reproduced(first: Any, again: Any, bitwise: bool, what: str) -> None:
    for x, y in zip(as_tuple(first), as_tuple(again)):
        if bitwise:
            assert torch.equal(x, y), f"{what}: the same seed gave different results"
            continue
        rtol = REPRODUCIBILITY_RTOL.get(x.dtype, 1e-4)
        scale = float(x.detach().abs().max()) if x.numel() else 0.0
        diff = float((x.detach() - y.detach().to(x.device)).abs().max()) if x.numel() else 0.0
        assert diff <= rtol * max(scale, torch.finfo(x.dtype).tiny), (
            f"{what}: results differ by {diff:.3g}, more than {rtol:g} x max|result| "
            f"= {rtol * scale:.3g}"
        )


def check_determinism(case: ContractCase, device: str) -> None:
    model, inputs, args = build(case, device)
    first = case.run(model, inputs, case.targets, args, 123)
    again = case.run(model, inputs, case.targets, args, 123)
    assert_reproduced(first, again, expects_bitwise(device), "same seed, same device")


def check_determinism_deterministic_algorithms(case: ContractCase, device: str) -> None:
    """With torch.use_deterministic_algorithms(True) the same seed gives bitwise
    equal results on every device (CUDA needs CUBLAS_WORKSPACE_CONFIG, set in
    tests/conftest.py before CUDA starts). On the CPU this is what
    :func:`check_determinism` already checks."""
    if device == "cpu":
        return
    model, inputs, args = build(case, device)
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        first = case.run(model, inputs, case.targets, args, 123)
        again = case.run(model, inputs, case.targets, args, 123)
    finally:
        torch.use_deterministic_algorithms(previous)
    assert_reproduced(first, again, True, "deterministic algorithms")


def check_devices_agree(case: ContractCase, device: str) -> None:
    """The result on ``device`` equals the CPU result within the contract's
    tolerance (for stochastic methods: the seeded noise is the same)."""
    if device == "cpu":
        return
    model, inputs, args = build(case, device)
    here = case.run(model, inputs, case.targets, args, 123)
    model_cpu, inputs_cpu, args_cpu = build(case, "cpu")
    there = case.run(model_cpu, inputs_cpu, case.targets, args_cpu, 123)
    tol = {torch.float64: 1e-7, torch.float32: 2e-3}
    for x, y in zip(as_tuple(here), as_tuple(there)):
        rtol = tol.get(x.dtype, 5e-2)
        scale = float(y.abs().max()) if y.numel() else 0.0
        diff = float((x.detach().cpu() - y.detach()).abs().max()) if y.numel() else 0.0
        assert diff <= rtol * max(scale, 1e-30), (
            f"{device} vs cpu: results differ by {diff:.3g} (max|cpu result| {scale:.3g})"
        )


#: Checks that only say something on an accelerator.
CUDA_ONLY = ("determinism_deterministic_algorithms", "devices_agree")

CHECKS = {
    "batched_targets": check_batched_targets,
    "structure": check_structure,
    "no_side_effects": check_no_side_effects,
    "no_side_effects_on_error": check_no_side_effects_on_error,
    "determinism": check_determinism,
    "determinism_deterministic_algorithms": check_determinism_deterministic_algorithms,
    "devices_agree": check_devices_agree,
}
