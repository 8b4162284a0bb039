"""Inputs in tuple form, extra forward args, the grad-mode check and the
forward call in Captum's argument order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from captum_higher_order import _captum

TensorOrTuple = Union[Tensor, Tuple[Tensor, ...]]
TargetType = Union[None, int, Tuple[int, ...], Tensor, List[Any]]


class ZeroHessianWarning(UserWarning):
    """An exact Hessian came back identically zero (piecewise-linear model)."""


# --------------------------------------------------------------------------- inputs


@dataclass
class FormattedInputs:
    """Inputs in tuple form plus what is needed to flatten features.

    Features are the flattened per-sample elements of all input tensors, in
    order: feature ``j`` of input ``i`` has global index ``offsets[i] + j``.
    """

    inputs: Tuple[Tensor, ...]
    is_tuple: bool
    additional_forward_args: Optional[Tuple[Any, ...]]
    batch_size: int
    #: The no-grad output at the inputs once :func:`check_forward` has checked it.
    checked_output: Optional[Tensor] = None

    @property
    def sample_shapes(self) -> Tuple[torch.Size, ...]:
        return tuple(x.shape[1:] for x in self.inputs)

    @property
    def feature_sizes(self) -> Tuple[int, ...]:
        return tuple(int(x[0].numel()) if x.shape[0] else 0 for x in self.inputs)

    @property
    def num_features(self) -> int:
        return sum(self.feature_sizes)

    @property
    def device(self) -> torch.device:
        return self.inputs[0].device

    @property
    def dtype(self) -> torch.dtype:
        return self.inputs[0].dtype

    def flatten(self, tensors: Sequence[Tensor], lead: int = 1) -> Tensor:
        """Concatenate per-input tensors shaped ``(*lead_dims, *sample_shape)``
        into one ``(*lead_dims, F)`` tensor; ``lead`` is the number of lead dims."""
        parts = [t.reshape(*t.shape[:lead], -1) for t in tensors]
        return torch.cat(parts, dim=-1)

    def unflatten(self, flat: Tensor) -> Tuple[Tensor, ...]:
        """Inverse of :meth:`flatten`: ``(*lead, F)`` to a tuple of
        ``(*lead, *sample_shape_i)`` tensors."""
        lead = flat.shape[:-1]
        pieces = torch.split(flat, list(self.feature_sizes), dim=-1)
        return tuple(
            p.reshape(*lead, *shape) for p, shape in zip(pieces, self.sample_shapes)
        )

    def format_like_inputs(self, tensors: Tuple[Tensor, ...]) -> TensorOrTuple:
        """A tuple for tuple inputs, the single tensor otherwise (Captum style)."""
        return _captum.format_output(self.is_tuple, tuple(tensors))


def format_inputs(
    inputs: TensorOrTuple, additional_forward_args: Any = None
) -> FormattedInputs:
    """Validate ``inputs`` and put them in tuple form.

    Raises:
        TypeError: inputs are not Tensors, or are integer/bool (point to the
            embedding layer).
        ValueError: empty tuple, mismatched batch sizes, NaN or Inf.
    """
    check_grad_mode()
    is_tuple = _captum.is_tuple(inputs)
    if isinstance(inputs, list):
        raise TypeError(
            "`inputs` must be a torch.Tensor or a tuple of Tensors, got a list; "
            "pass tuple(inputs)."
        )
    if not is_tuple and not isinstance(inputs, Tensor):
        raise TypeError(
            f"`inputs` must be a torch.Tensor or a tuple of Tensors, got "
            f"{type(inputs).__name__}."
        )
    tup = _captum.format_tensor_into_tuples(inputs)
    assert tup is not None
    if len(tup) == 0:
        raise ValueError("`inputs` is an empty tuple; pass at least one Tensor.")
    for i, x in enumerate(tup):
        if not isinstance(x, Tensor):
            raise TypeError(
                f"inputs[{i}] is a {type(x).__name__}; every element of the "
                "`inputs` tuple must be a torch.Tensor (pass other arguments "
                "through `additional_forward_args`)."
            )
        if not (x.is_floating_point() or x.is_complex()):
            raise TypeError(
                f"inputs[{i}] has dtype {x.dtype}; second derivatives need "
                "floating-point inputs. For token ids or other integer inputs, "
                "attribute with respect to the embedding layer's output instead "
                "(pass the embeddings as `inputs` and start the forward function "
                "after the embedding layer)."
            )
        if x.dim() == 0:
            raise ValueError(
                f"inputs[{i}] is a scalar; inputs need the batch in dim 0, "
                "e.g. x.unsqueeze(0)."
            )
        if not bool(torch.isfinite(x).all()):
            raise ValueError(
                f"inputs[{i}] contains NaN or Inf; clean the input (e.g. "
                "torch.nan_to_num) before attributing."
            )
    batch = tup[0].shape[0]
    for i, x in enumerate(tup):
        if x.shape[0] != batch:
            raise ValueError(
                f"All inputs must share the batch size in dim 0: inputs[0] has "
                f"{batch}, inputs[{i}] has {x.shape[0]}."
            )
        if x.device != tup[0].device:
            raise ValueError(
                f"inputs[{i}] is on {x.device} but inputs[0] is on "
                f"{tup[0].device}; move them to one device."
            )
        if x.dtype != tup[0].dtype:
            raise ValueError(
                f"inputs[{i}] has dtype {x.dtype} but inputs[0] has "
                f"{tup[0].dtype}; cast them to one floating dtype."
            )
    if batch == 0:
        raise ValueError("`inputs` has batch size 0; pass at least one sample.")
    # Detach: we differentiate our own views and never touch the user's
    # tensors' requires_grad or autograd history. Inference tensors (made under
    # torch.inference_mode()) cannot take part in autograd: copy them.
    detached = tuple(x.clone() if x.is_inference() else x.detach() for x in tup)
    args = _captum.format_additional_forward_args(additional_forward_args)
    return FormattedInputs(detached, is_tuple, args, batch)


def check_grad_mode() -> None:
    """Refuse a call under ``torch.inference_mode()``: no autograd graph can be
    built there, so no derivative exists (``torch.no_grad()`` is fine: the
    methods switch gradients on where they need them)."""
    if torch.is_inference_mode_enabled():
        raise ValueError(
            "Called under torch.inference_mode(), where autograd is off and cannot "
            "be switched back on, so no derivatives can be computed. Call the method "
            "outside the inference_mode block (torch.no_grad() around it is fine)."
        )


def expand_samples(fmt: FormattedInputs, n: int) -> FormattedInputs:
    """Repeat every sample ``n`` times (``repeat_interleave``), including
    batched tensor extra args, so sample ``b`` becomes rows ``b*n .. b*n+n-1``."""
    inputs = tuple(x.repeat_interleave(n, dim=0) for x in fmt.inputs)
    args = fmt.additional_forward_args
    if args is not None:
        args = tuple(
            a.repeat_interleave(n, dim=0)
            if isinstance(a, Tensor) and a.dim() > 0 and a.shape[0] == fmt.batch_size
            else a
            for a in args
        )
    return FormattedInputs(inputs, fmt.is_tuple, args, fmt.batch_size * n)


def slice_samples(fmt: FormattedInputs, start: int, stop: int) -> FormattedInputs:
    """Samples ``start..stop-1`` of ``fmt``, including batched tensor extra args
    (those whose dim 0 is the batch), so a method can process inputs in blocks."""
    inputs = tuple(x[start:stop] for x in fmt.inputs)
    args = fmt.additional_forward_args
    if args is not None:
        args = tuple(
            a[start:stop]
            if isinstance(a, Tensor) and a.dim() > 0 and a.shape[0] == fmt.batch_size
            else a
            for a in args
        )
    return FormattedInputs(inputs, fmt.is_tuple, args, stop - start)


def run_forward(
    forward_func: Callable[..., Tensor],
    inputs: Sequence[Tensor],
    additional_forward_args: Optional[Tuple[Any, ...]],
) -> Tensor:
    """Call the model with inputs then extra args, Captum's order."""
    args = tuple(inputs)
    if additional_forward_args is not None:
        args = args + tuple(additional_forward_args)
    return forward_func(*args)
