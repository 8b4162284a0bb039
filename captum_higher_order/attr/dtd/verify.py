"""Is the model's forward the tape read off its modules? Checked module by module.

The model is run once on the actual inputs with temporary hooks (removed in a
``finally``, also when raising) that copy each module's input and output; the
tape is then run step by step and compared with them. The first module that is
never called, called more than once, or fed something other than what the
tape computes is named in a ``ValueError``, before any relevance or root is
computed (issue: Captum's ``BasicModel_MultiLayer`` used to fail inside the
chain with a shape error).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Set, Tuple

import torch
from torch import Tensor, nn

from captum_higher_order._inputs import run_forward
from captum_higher_order._numeric import HALF_DTYPES
from captum_higher_order.attr.dtd.ops import AddOp
from captum_higher_order.attr.dtd.parse import SUPPORTED_MODULES, Tape

__all__ = ["verify_tape", "NotAChainError"]


class NotAChainError(ValueError):
    """The model's forward is not the chain of its modules (a ``ValueError``)."""


def _not_a_chain(detail: str) -> NotAChainError:
    return NotAChainError(
        f"{detail} So the model's forward is not a plain chain of its modules in "
        "registration order (functional ops other than a flatten, skip connections "
        "outside torchvision ResNet blocks, reused or unused modules, or extra "
        "arguments that change the output). Wrap the computation in an nn.Sequential "
        f"of supported modules: {SUPPORTED_MODULES}.")


def _close(a: Tensor, b: Tensor) -> bool:
    if a.shape != b.shape:
        if a.numel() != b.numel() or a.shape[0] != b.shape[0]:
            return False
        a = a.reshape(b.shape)
    if a.numel() == 0:
        return True
    dtypes = {a.dtype, b.dtype}
    if dtypes & set(HALF_DTYPES):
        # the model ran in half precision, the tape in float32: rounding grows with
        # depth; structural mismatches are O(1).
        rel = 5e-2
    elif torch.float32 in dtypes:
        rel = 1e-4
    else:
        rel = 1e-9
    scale = 1.0 + float(b.abs().max())
    return bool((a - b.to(a.dtype)).abs().max() <= rel * scale)


def _record(model: nn.Module, tape: Tape, inputs: Tuple[Tensor, ...],
            additional_forward_args: Any) -> Tuple[Any, Dict[str, List[Tuple[Tensor, Tensor]]]]:
    """Run the model with hooks copying every unit's (first input, output)."""
    calls: Dict[str, List[Tuple[Tensor, Tensor]]] = {u.name: [] for u in tape.units}
    pending: Dict[str, List[Tensor]] = {u.name: [] for u in tape.units}
    handles = []

    def pre(name: str):  # type: ignore[no-untyped-def]
        def hook(module: nn.Module, args: Tuple[Any, ...]) -> None:
            first = args[0] if args and isinstance(args[0], Tensor) else torch.empty(0)
            pending[name].append(first.detach().clone())  # before an in-place op
        return hook

    def post(name: str):  # type: ignore[no-untyped-def]
        def hook(module: nn.Module, args: Tuple[Any, ...], out: Any) -> None:
            value = out.detach().clone() if isinstance(out, Tensor) else torch.empty(0)
            calls[name].append((pending[name].pop(), value))
        return hook

    try:
        for unit in tape.units:
            handles.append(unit.module.register_forward_pre_hook(pre(unit.name)))
            handles.append(unit.module.register_forward_hook(post(unit.name)))
        with torch.no_grad():
            model_out = run_forward(model, inputs, additional_forward_args)
    finally:
        for h in handles:
            h.remove()
    return model_out, calls


def verify_tape(model: nn.Module, tape: Tape, inputs: Tuple[Tensor, ...],
                additional_forward_args: Any,
                x: Optional[Tensor] = None) -> Tuple[Any, Dict[int, Tensor]]:
    """Run the model on ``inputs`` and the tape on ``x`` (default: the first
    input; the tape may compute in a wider dtype); return the model's output
    and the tape's slots, or raise :class:`NotAChainError` naming the first
    module where they part."""
    model_out, calls = _record(model, tape, inputs, additional_forward_args)
    slots: Dict[int, Tensor] = {0: inputs[0].detach() if x is None else x}
    checked_in: Set[int] = set()
    checked_out: Set[int] = set()

    def check_units(ready: int) -> None:
        # A unit's input is checked as soon as it exists (before the tape uses it),
        # its output once the tape has computed it.
        for i, unit in enumerate(tape.units):
            kind = type(unit.module).__name__
            if i not in checked_in and (unit.in_slot is None or unit.in_slot <= ready):
                checked_in.add(i)
                _check_input(unit.name, kind, calls[unit.name],
                             None if unit.in_slot is None else slots[unit.in_slot])
            if i not in checked_out and unit.out_slot is not None and unit.out_slot <= ready:
                checked_out.add(i)
                _check_output(unit.name, kind, calls[unit.name][0][1], slots[unit.out_slot])

    check_units(0)
    with torch.no_grad():
        for node in tape.nodes:
            xs = [slots[s] for s in node.src]
            op = node.op
            try:
                slots[node.dst] = op.apply(*xs) if isinstance(op, AddOp) else op.apply(xs[0])
            except RuntimeError as err:
                raise _not_a_chain(
                    f"Module {node.modules[0]!r} cannot be applied to the output of the "
                    f"modules registered before it ({err}).") from None
            check_units(node.dst)
    check_units(tape.n_slots)
    out = slots[tape.nodes[-1].dst]
    if not (isinstance(model_out, Tensor) and model_out.shape == out.shape
            and _close(out, model_out.detach())):
        raise _not_a_chain("The model's output differs from running its modules in "
                           "registration order.")
    return model_out, slots


def _check_input(name: str, kind: str, calls: List[Tuple[Tensor, Tensor]],
                 expected: Optional[Tensor]) -> None:
    if len(calls) != 1:
        how = "never called" if not calls else f"called {len(calls)} times"
        raise _not_a_chain(f"Module {name!r} ({kind}) is {how} in the model's forward.")
    if expected is not None and not _close(expected, calls[0][0]):
        raise _not_a_chain(
            f"Module {name!r} ({kind}) receives a different tensor from the output of "
            "the modules registered before it.")


def _check_output(name: str, kind: str, got: Tensor, expected: Tensor) -> None:
    if not _close(expected, got):
        raise _not_a_chain(
            f"Module {name!r} ({kind}) returns a different tensor from the layer chain.")
