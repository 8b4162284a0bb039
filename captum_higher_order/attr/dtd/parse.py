"""Reading a model into a tape of DTD operations (see :mod:`.ops`).

Leaf modules are read in registration order; a BatchNorm directly after a
Linear/Conv2d is folded into it (on copies of the weights). *Canonizers*, as
in zennit, turn known non-chain modules into tape pieces: torchvision's ResNet
``BasicBlock`` and ``Bottleneck`` become their branches plus an :class:`AddOp`.
Whether the model's forward really is this tape is checked on the actual
inputs by :func:`verify_tape`, module by module, before any relevance is
computed (docs/dtd_root_check.md, "Models").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional, Tuple

import torch
from torch import nn

from captum_higher_order.attr.dtd.ops import ActOp, AddOp, Node, Op, WeightOp

__all__ = ["SUPPORTED_MODULES", "UnsupportedModuleError", "Tape", "parse_model",
           "Canonizer", "ResNetBlockCanonizer", "CANONIZERS"]

SUPPORTED_MODULES = (
    "nn.Linear, nn.Conv2d (padding_mode='zeros'), nn.ReLU, nn.MaxPool2d, "
    "nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Flatten (start_dim=1), nn.Identity, "
    "nn.Dropout (eval mode), nn.BatchNorm1d / nn.BatchNorm2d directly after a "
    "Linear / Conv2d (folded into it), torchvision ResNet BasicBlock / Bottleneck "
    "(residual addition), and containers (nn.Sequential or modules whose forward "
    "calls their children once each in registration order; a flatten before a "
    "Linear may be done in forward)"
)


class UnsupportedModuleError(TypeError):
    """The model contains a module that DTD cannot propagate through.

    The message names the module and lists :data:`SUPPORTED_MODULES`.
    """


def _unsupported(name: str, module: nn.Module, why: str = "") -> UnsupportedModuleError:
    return UnsupportedModuleError(
        f"Module {name!r} ({type(module).__name__}) is not supported by DTDRootCheck"
        f"{': ' + why if why else ''}. DTD needs a chain of Linear/Conv2d layers with "
        f"ReLU; supported modules: {SUPPORTED_MODULES}."
    )


@dataclass
class Unit:
    """A user module the tape stands for, with the slots holding its input and
    output (None where BatchNorm folding hides them)."""

    name: str
    module: nn.Module
    in_slot: Optional[int]
    out_slot: Optional[int]


@dataclass
class Tape:
    """The operations of a model (:class:`Node` list) and the modules behind them."""

    nodes: List[Node] = field(default_factory=list)
    units: List[Unit] = field(default_factory=list)
    cur: int = 0  # the slot holding the current tensor while building
    n_slots: int = 1

    def emit(self, op: Op, src: Optional[Tuple[int, ...]] = None,
             modules: Tuple[str, ...] = ()) -> int:
        dst = self.n_slots
        self.n_slots += 1
        self.nodes.append(Node(op, (self.cur,) if src is None else src, dst, modules))
        self.cur = dst
        return dst

    def to(self, dtype: torch.dtype) -> None:
        """Cast every weight layer's (copied) weights to ``dtype``."""
        for node in self.nodes:
            if isinstance(node.op, WeightOp):
                node.op.weight = node.op.weight.to(dtype)
                node.op.bias = node.op.bias.to(dtype)

    @property
    def weight_ix(self) -> List[int]:
        return [k for k, n in enumerate(self.nodes) if isinstance(n.op, WeightOp)]

    @property
    def ops(self) -> List[Op]:
        return [n.op for n in self.nodes]


# --------------------------------------------------------------------------- leaves


def _fold_bn(op: WeightOp, bn: Any, name: str) -> None:
    """Fold an eval-mode BatchNorm into the weight layer before it:
    ``gamma (W x + b - mu) / sqrt(var + eps) + beta``."""
    if bn.running_mean is None or bn.running_var is None:
        raise UnsupportedModuleError(
            f"BatchNorm {name!r} has track_running_stats=False, so it cannot be folded "
            "into the layer before it; DTD needs a fixed affine map.")
    std = torch.sqrt(bn.running_var.detach() + bn.eps)
    gamma = bn.weight.detach() if bn.weight is not None else torch.ones_like(std)
    beta = bn.bias.detach() if bn.bias is not None else torch.zeros_like(std)
    scale = (gamma / std).to(op.weight.dtype)
    if scale.numel() != op.weight.shape[0]:
        raise UnsupportedModuleError(
            f"BatchNorm {name!r} has {scale.numel()} features but the layer before it "
            f"has {op.weight.shape[0]} outputs.")
    op.weight = op.weight * scale.view(-1, *([1] * (op.weight.dim() - 1)))
    op.bias = (op.bias - bn.running_mean.detach().to(op.bias.dtype)) * scale + beta.to(
        op.bias.dtype)
    op.name = f"{op.name}+{name}"
    op.folded = True


def _weight_op(name: str, m: Any) -> WeightOp:
    w = m.weight.detach().clone()
    bias = m.bias.detach().clone() if m.bias is not None else w.new_zeros(w.shape[0])
    if isinstance(m, nn.Linear):
        return WeightOp("linear", name, w, bias)
    if m.padding_mode != "zeros":
        raise _unsupported(name, m, f"padding_mode={m.padding_mode!r}")
    if isinstance(m.padding, str):
        raise _unsupported(name, m, f"padding={m.padding!r}; give the padding as numbers")
    args = dict(stride=m.stride, padding=m.padding, dilation=m.dilation, groups=m.groups)
    return WeightOp("conv", name, w, bias, args)


def _act_op(name: str, m: nn.Module) -> Optional[ActOp]:
    if isinstance(m, nn.ReLU):
        return ActOp("relu", name)
    if isinstance(m, nn.MaxPool2d):
        if m.return_indices:
            raise _unsupported(name, m, "return_indices=True")
        return ActOp("maxpool", name, dict(
            kernel_size=m.kernel_size, stride=m.stride, padding=m.padding,
            dilation=m.dilation, ceil_mode=m.ceil_mode))
    if isinstance(m, nn.AvgPool2d):
        return ActOp("avgpool", name, dict(
            kernel_size=m.kernel_size, stride=m.stride, padding=m.padding,
            ceil_mode=m.ceil_mode, count_include_pad=m.count_include_pad,
            divisor_override=m.divisor_override))
    if isinstance(m, nn.AdaptiveAvgPool2d):
        return ActOp("adaptiveavgpool", name, dict(output_size=m.output_size))
    if isinstance(m, nn.Flatten):
        if m.start_dim != 1 or m.end_dim != -1:
            raise _unsupported(name, m, "only start_dim=1, end_dim=-1 is supported")
        return ActOp("flatten", name)
    return None


def _leaf(tape: Tape, name: str, m: nn.Module) -> None:
    """Append leaf module ``m`` at the tape's current slot."""
    before = tape.cur
    if isinstance(m, (nn.Linear, nn.Conv2d)):
        out = tape.emit(_weight_op(name, m), modules=(name,))
        tape.units.append(Unit(name, m, before, out))
        return
    if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
        last = tape.nodes[-1] if tape.nodes else None
        if (last is None or not isinstance(last.op, WeightOp) or last.op.folded
                or last.dst != tape.cur):
            raise _unsupported(name, m, "a BatchNorm must directly follow a Linear or "
                               "Conv2d layer to be folded into it")
        if m.training:
            raise ValueError(f"BatchNorm {name!r} is in training mode; call model.eval() first.")
        _fold_bn(last.op, m, name)
        last.modules = last.modules + (name,)
        for unit in reversed(tape.units):  # the layer's own output is folded away
            if unit.out_slot == tape.cur:
                unit.out_slot = None
                break
        tape.units.append(Unit(name, m, None, tape.cur))
        return
    if isinstance(m, nn.Dropout):
        if m.training and m.p > 0:
            raise ValueError(f"Dropout {name!r} is in training mode; call model.eval() first.")
        tape.units.append(Unit(name, m, before, before))
        return
    if isinstance(m, nn.Identity):
        tape.units.append(Unit(name, m, before, before))
        return
    op = _act_op(name, m)
    if op is None:
        raise _unsupported(name, m)
    tape.emit(op, modules=(name,))
    tape.units.append(Unit(name, m, before, tape.cur))


# --------------------------------------------------------------------------- canonizers


class Canonizer:
    """Turns one kind of module that is not a chain into tape pieces (zennit's
    canonizers rewrite the module; here nothing of the user's model changes)."""

    def matches(self, module: nn.Module) -> bool:
        raise NotImplementedError

    def emit(self, tape: Tape, name: str, module: nn.Module) -> None:
        raise NotImplementedError


def _torchvision_blocks() -> Tuple[type, ...]:
    try:
        from torchvision.models.resnet import BasicBlock, Bottleneck
    except ImportError:  # torchvision is optional (the `vision` extra)
        return ()
    return (BasicBlock, Bottleneck)


class ResNetBlockCanonizer(Canonizer):
    """torchvision's ResNet ``BasicBlock`` and ``Bottleneck``:
    ``relu(bn_k(conv_k(... relu(bn1(conv1(x))))) + downsample(x))``. The
    shortcut (``downsample`` or the identity) is read first, then the main
    branch, the :class:`AddOp` and the ReLU. The relevance of the sum is split
    between the branches in proportion to their contributions."""

    def matches(self, module: nn.Module) -> bool:
        blocks = _torchvision_blocks()
        return any(type(module) is b for b in blocks)

    def emit(self, tape: Tape, name: str, module: nn.Module) -> None:
        x = tape.cur
        start_units = len(tape.units)
        downsample = getattr(module, "downsample", None)
        if downsample is not None:
            _walk(tape, downsample, f"{name}.downsample")
        shortcut = tape.cur
        tape.cur = x
        n_conv = 3 if hasattr(module, "conv3") else 2
        for i in range(1, n_conv + 1):
            _leaf(tape, f"{name}.conv{i}", module.get_submodule(f"conv{i}"))
            _leaf(tape, f"{name}.bn{i}", module.get_submodule(f"bn{i}"))
            if i < n_conv:
                tape.emit(ActOp("relu", f"{name}.relu"), modules=(name,))
        main = tape.cur
        tape.emit(AddOp(f"{name}.add"), src=(main, shortcut), modules=(name,))
        tape.emit(ActOp("relu", f"{name}.relu"), modules=(name,))
        # The block is checked as one unit (its ReLU module is called several times).
        del tape.units[start_units:]
        tape.units.append(Unit(name, module, x, tape.cur))


CANONIZERS: List[Canonizer] = [ResNetBlockCanonizer()]


def _walk(tape: Tape, module: nn.Module, prefix: str) -> None:
    for canonizer in CANONIZERS:
        if canonizer.matches(module):
            canonizer.emit(tape, prefix, module)
            return
    children = list(module.named_children())
    if not children:
        _leaf(tape, prefix or type(module).__name__, module)
        return
    if any(True for _ in module.named_parameters(recurse=False)):
        raise UnsupportedModuleError(
            f"Module {prefix or type(module).__name__!r} ({type(module).__name__}) holds "
            f"its own parameters besides its children, so its forward is not a plain "
            f"chain. DTDRootCheck supports: {SUPPORTED_MODULES}.")
    for child_name, child in children:
        _walk(tape, child, f"{prefix}.{child_name}" if prefix else child_name)


def parse_model(model: nn.Module) -> Tape:
    """Read ``model`` into a :class:`Tape`.

    Raises:
        UnsupportedModuleError: for any module outside :data:`SUPPORTED_MODULES`
            (for example ``nn.LSTM`` or an ``nn.Sigmoid`` between layers), a
            BatchNorm that does not directly follow a Linear/Conv2d, or a model
            without a weight layer.
    """
    tape = Tape()
    _walk(tape, model, "")
    if not tape.weight_ix:
        raise UnsupportedModuleError(
            f"The model has no Linear or Conv2d layer; supported modules: {SUPPORTED_MODULES}.")
    return tape
