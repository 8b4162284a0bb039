"""Layer attribution by replacement: what the three layer methods share.

Captum's ``LayerIntegratedGradients`` pattern: run the model on the user's
inputs (token ids, say) and replace the output of ``layer`` (the embedding) by
a tensor the attribution method differentiates. :class:`LayerPatch` is that
model as a function of the layer output, an ``nn.Module`` holding the user's
model so the engine's TorchScript and attention checks see it; its forward
hook is registered only inside :meth:`LayerPatch.hooked` and removed in a
``finally`` block.

With ``relative=True`` the patch takes a scale ``u`` instead of the layer
output and uses ``base + u * delta``: derivatives in ``u`` at ``u = 1`` are the
derivatives in the layer output multiplied by ``delta = act - base`` on both
sides, ``Delta_A^T H Delta_B`` after grouping (the second-order Taylor term
between the layer activations and their baseline).
"""

from __future__ import annotations

import contextlib
import numbers
from typing import Any, Callable, Iterator, List, Optional, Tuple, Union

import torch
from torch import Tensor, nn

from captum_higher_order._captum import format_additional_forward_args
from captum_higher_order._inputs import find_module
from captum_higher_order.hessian.attention import refuse_unsupported_attention

__all__ = [
    "LayerPatch",
    "ModelInputs",
    "format_model_inputs",
    "layer_activations",
    "layer_baseline_activations",
    "position_mask",
]


class LayerPatch(nn.Module):
    """``forward(act, *inputs, *args)`` runs ``forward_func(*inputs, *args)``
    with ``layer``'s output replaced by ``act`` (or by ``base + act * delta``
    when ``relative``, with ``base, delta`` passed before the inputs)."""

    def __init__(self, forward_func: Callable[..., Tensor], layer: nn.Module,
                 relative: bool = False) -> None:
        super().__init__()
        self.forward_func = forward_func
        owner = find_module(forward_func)
        if owner is not None:
            self.model = owner  # so the engine inspects it (TorchScript, attention)
        self.layer = layer
        self.relative = relative
        self.training = False  # this wrapper only; the user's modules are untouched
        self._act: Optional[Tensor] = None

    def forward(self, act: Tensor, *rest: Any) -> Tensor:
        if self.relative:
            base, delta, *others = rest
            act = base + act * delta
            rest = tuple(others)
        self._act = act
        try:
            return self.forward_func(*rest)
        finally:
            self._act = None

    def _hook(self, module: nn.Module, args: Any, output: Any) -> Optional[Tensor]:
        act = self._act
        if act is None:
            return None
        if not isinstance(output, Tensor):
            raise TypeError(
                f"The layer returns {type(output).__name__}; layer methods need a layer "
                "whose output is one Tensor (e.g. the embedding module)."
            )
        if act.shape != output.shape:
            raise ValueError(
                f"The layer's output has shape {tuple(output.shape)} but the replacement "
                f"has {tuple(act.shape)}; does the layer run more than once per forward?"
            )
        return act

    @contextlib.contextmanager
    def hooked(self) -> Iterator[LayerPatch]:
        handle = self.layer.register_forward_hook(self._hook)
        try:
            yield self
        finally:
            handle.remove()


class ModelInputs:
    """The user's model inputs (any dtype, e.g. token ids) and extra args."""

    def __init__(self, inputs: Tuple[Tensor, ...], args: Tuple[Any, ...]) -> None:
        self.inputs, self.args = inputs, args
        self.batch_size = inputs[0].shape[0]

    @property
    def forward_args(self) -> Tuple[Any, ...]:
        return self.inputs + self.args


def format_model_inputs(inputs: Any, additional_forward_args: Any) -> ModelInputs:
    """Inputs as a tuple of tensors sharing the batch dim, extra args as a tuple."""
    xs = (inputs,) if isinstance(inputs, Tensor) else inputs
    if not isinstance(xs, tuple) or not xs or not all(isinstance(x, Tensor) for x in xs):
        raise TypeError("`inputs` must be a Tensor or a non-empty tuple of Tensors.")
    if any(x.dim() == 0 for x in xs) or len({x.shape[0] for x in xs}) != 1:
        raise ValueError("Every input needs the same batch size in dim 0.")
    args = format_additional_forward_args(additional_forward_args)
    return ModelInputs(tuple(xs), () if args is None else tuple(args))


def layer_activations(forward_func: Callable[..., Tensor], layer: nn.Module,
                      forward_args: Tuple[Any, ...]) -> Tensor:
    """The (detached) output of ``layer`` when the model runs on ``forward_args``."""
    refuse_unsupported_attention(find_module(forward_func))
    seen: List[Any] = []

    def hook(module: nn.Module, args: Any, output: Any) -> None:
        seen.append(output)

    handle = layer.register_forward_hook(hook)
    try:
        with torch.no_grad():
            forward_func(*forward_args)
    finally:
        handle.remove()
    if len(seen) != 1:
        raise ValueError(
            f"The layer ran {len(seen)} times in one forward; layer methods need a layer "
            "that runs exactly once (pass the module whose output to explain)."
        )
    if not isinstance(seen[0], Tensor) or not seen[0].is_floating_point():
        raise TypeError(
            "The layer's output must be one floating-point Tensor (e.g. an embedding "
            f"layer's output), got {type(seen[0]).__name__}."
        )
    return seen[0].detach()


BaselineLike = Union[None, numbers.Number, Tensor, Tuple[Any, ...]]


def _input_baselines(baselines: BaselineLike, model: ModelInputs) -> Tuple[Tensor, ...]:
    """Captum's input-space baselines (None = zeros, a number, a tensor with batch
    1 or B, or a tuple of those), expanded to the batch."""
    n = len(model.inputs)
    if baselines is None or isinstance(baselines, (numbers.Number, Tensor)):
        per_input: Tuple[Any, ...] = (0 if baselines is None else baselines,) * n
    elif isinstance(baselines, tuple) and len(baselines) == n:
        per_input = baselines
    else:
        raise ValueError(
            f"`baselines` must be None, a number, a Tensor or a tuple of {n} of those "
            "(one per input, in the input space, e.g. pad-token ids)."
        )
    out = []
    for i, (b, x) in enumerate(zip(per_input, model.inputs)):
        if isinstance(b, bool) or not isinstance(b, (numbers.Number, Tensor)):
            raise TypeError(f"baselines[{i}] must be a number or a Tensor.")
        b_t = torch.as_tensor(b, device=x.device).to(x.dtype)
        try:
            if b_t.dim() == x.dim() - 1:
                b_t = b_t.unsqueeze(0)
            out.append(torch.broadcast_to(b_t, x.shape).clone())
        except RuntimeError:
            raise ValueError(
                f"baselines[{i}] has shape {tuple(b_t.shape)}; it must broadcast to the "
                f"input's shape {tuple(x.shape)} (batch dim 1 or B)."
            ) from None
    return tuple(out)


def layer_baseline_activations(
    forward_func: Callable[..., Tensor], layer: nn.Module, model: ModelInputs,
    act: Tensor, baselines: BaselineLike, layer_baselines: Union[None, float, Tensor],
) -> Tensor:
    """The baseline of the layer output: ``layer_baselines`` (activations,
    broadcast to ``act``) or ``baselines`` (input space) run through the layer."""
    if layer_baselines is None:
        base_inputs = _input_baselines(baselines, model)
        return layer_activations(forward_func, layer, base_inputs + model.args)
    if baselines is not None:
        raise ValueError(
            "Pass either `baselines` (in the input space, mapped through the layer) or "
            "`layer_baselines` (layer activations), not both."
        )
    if isinstance(layer_baselines, bool) or not isinstance(
        layer_baselines, (numbers.Number, Tensor)
    ):
        raise TypeError("`layer_baselines` must be a number or a Tensor of activations.")
    base = torch.as_tensor(layer_baselines).detach().to(device=act.device, dtype=act.dtype)
    try:
        return torch.broadcast_to(base, act.shape).clone()
    except RuntimeError:
        raise ValueError(
            f"`layer_baselines` has shape {tuple(base.shape)}; it must broadcast to the "
            f"layer output's shape {tuple(act.shape)}."
        ) from None


def position_mask(act: Tensor, layer_mask: Optional[Tensor]) -> Tensor:
    """A Captum ``feature_mask`` for the layer output ``(B, T, ...)`` grouping
    everything at position ``t`` (dim 1) into group ``layer_mask[b, t]``
    (default ``t``): shape ``(1 or B, T, 1, ...)``."""
    if act.dim() < 2:
        raise ValueError("The layer output needs a batch dim and at least one more dim.")
    batch, length = act.shape[0], act.shape[1]
    if layer_mask is None:
        mask = torch.arange(length, device=act.device).view(1, length)
    else:
        if not isinstance(layer_mask, Tensor) or layer_mask.is_floating_point() or (
            layer_mask.dtype == torch.bool
        ):
            raise TypeError("`layer_mask` must be an integer Tensor of group ids per position.")
        mask = layer_mask.to(act.device)
        if mask.dim() == 1:
            mask = mask.unsqueeze(0)
        if mask.dim() != 2 or mask.shape[1] != length or mask.shape[0] not in (1, batch):
            raise ValueError(
                f"`layer_mask` has shape {tuple(layer_mask.shape)}; pass (T,), (1, T) or "
                f"(B, T) group ids with T={length} positions and B={batch}."
            )
    return mask.long().view(*mask.shape, *([1] * (act.dim() - 2)))
