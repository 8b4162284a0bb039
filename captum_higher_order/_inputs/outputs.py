"""The forward's output checked against the inputs: one Tensor, ``(B,)`` or
``(B, C)`` with the batch in dim 0, finite, and the dtype of the model."""

from __future__ import annotations

from typing import Any, Callable, Optional

import torch
from torch import Tensor

from captum_higher_order._inputs.formatting import (
    FormattedInputs,
    run_forward,
    slice_samples,
)
from captum_higher_order._inputs.model import find_module

_SHAPES = "shape (B,) or (B, C) (one score, or one row of class scores, per sample)"


def check_output(output: Any, batch_size: int) -> Tensor:
    """Check that a forward output is ``(B,)`` or ``(B, C)`` with ``B`` the
    inputs' batch size, else say what to change (a ValueError)."""
    if not isinstance(output, Tensor):
        kind = type(output).__name__
        if isinstance(output, dict):
            hint = (f"with keys {list(output)[:5]}; wrap it, e.g. "
                    "`lambda *a: model(*a)['logits']`")
        elif isinstance(output, (tuple, list)):
            hint = "; wrap it to pick the tensor to explain, e.g. `lambda *a: model(*a)[0]`"
        else:
            hint = "; wrap it so that it returns the tensor to explain"
        raise ValueError(
            f"The forward function must return one Tensor of {_SHAPES}, but it "
            f"returned a {kind} {hint}."
        )
    if output.dim() == 0:
        raise ValueError(
            "The forward function returned a scalar (shape ()), e.g. a loss or a "
            f"mean over the batch; return one score per sample: {_SHAPES}, "
            "without reducing over the batch."
        )
    if output.dim() > 2:
        raise ValueError(
            f"The forward function must return {_SHAPES} with B={batch_size}, got "
            f"{tuple(output.shape)}. Wrap the model so it returns one score per "
            "sample or one row of class scores per sample."
        )
    if output.shape[0] != batch_size:
        raise ValueError(
            f"The forward function returned shape {tuple(output.shape)} for a batch "
            f"of {batch_size} samples, but dim 0 of the output must be the batch "
            f"({_SHAPES}). Return per-sample scores (not a mean over the batch), "
            "transpose a (C, B) output to (B, C), and give an un-batched input a "
            "batch dim (x.unsqueeze(0))."
        )
    return output


def check_forward(
    forward_func: Callable[..., Any],
    fmt: FormattedInputs,
    output: Optional[Tensor] = None,
) -> Tensor:
    """Check once per call that the model puts the batch in dim 0 of its output.

    Shapes alone cannot tell ``(B, C)`` from a transposed ``(C, B)`` when
    ``B == C``, nor ``(B,)`` from a batch mean of ``(B, B)`` scores, nor a
    batched input from one un-batched sample; in those ambiguous cases one
    forward pass on the first sample alone must give ``(1,)`` or ``(1, C)``.
    ``output`` is the model's output at ``fmt`` when the caller has it;
    otherwise one no-grad forward pass computes it. Returns the output
    (detached) and keeps it on ``fmt``.
    """
    if fmt.checked_output is not None:
        return fmt.checked_output
    if output is None:
        try:
            with torch.no_grad():
                output = run_forward(forward_func, fmt.inputs, fmt.additional_forward_args)
        except Exception as err:
            _explain_dtype_mismatch(forward_func, fmt, err)
            _explain_extra_args(fmt, err)
            raise
    output = check_output(output, fmt.batch_size).detach()
    if not bool(torch.isfinite(output).all()):
        half = (" In float16 values above 65504 overflow: run the model in float32 "
                "(model.float(), x.float()) or bfloat16."
                if output.dtype == torch.float16 else "")
        raise ValueError(
            "The model's output at the inputs contains NaN or Inf, so its derivatives "
            f"there are undefined; check the model and the inputs.{half}"
        )
    batch = fmt.batch_size
    if batch > 1 and (output.dim() == 1 or output.shape[1] == batch):
        _probe_one_sample(forward_func, fmt, output)
    fmt.checked_output = output
    return output


def model_float_dtype(forward_func: Callable[..., Any]) -> Optional[torch.dtype]:
    """The floating dtype of the model's parameters and buffers when they share
    one (None for a plain function or mixed dtypes)."""
    module = find_module(forward_func)
    if module is None:
        return None
    tensors = list(module.parameters()) + list(module.buffers())
    dtypes = {t.dtype for t in tensors if t.is_floating_point()}
    return dtypes.pop() if len(dtypes) == 1 else None


def _explain_dtype_mismatch(forward_func: Callable[..., Any], fmt: FormattedInputs,
                            err: Exception) -> None:
    """Turn a forward that fails because the inputs' float dtype is not the
    model's into a ValueError naming both (docs/design.md, "Dtype policy")."""
    model_dtype = model_float_dtype(forward_func)
    if model_dtype is None or model_dtype == fmt.dtype:
        return
    raise ValueError(
        f"The inputs have dtype {fmt.dtype} but the model's parameters are "
        f"{model_dtype}, and the forward pass failed ({type(err).__name__}: {err}). "
        f"Cast one to the other: x.to({model_dtype}) or model.to({fmt.dtype}). "
        "Inputs are never cast silently."
    ) from err


def _explain_extra_args(fmt: FormattedInputs, err: Exception) -> None:
    """A forward that fails with a tensor extra arg whose dim 0 is neither 1
    nor the batch: say so (Captum passes extra args unchanged, batched args
    must have the batch in dim 0)."""
    for i, arg in enumerate(fmt.additional_forward_args or ()):
        if isinstance(arg, Tensor) and arg.dim() > 0 and arg.shape[0] not in (1, fmt.batch_size):
            raise ValueError(
                f"additional_forward_args[{i}] has shape {tuple(arg.shape)}, but the "
                f"inputs' batch is {fmt.batch_size}, and the forward pass failed "
                f"({type(err).__name__}: {err}). A per-sample extra argument needs the "
                f"batch in dim 0 ({fmt.batch_size} rows); pass one shared by all samples "
                "with dim 0 of size 1."
            ) from err


def _probe_one_sample(forward_func: Callable[..., Any], fmt: FormattedInputs,
                      output: Tensor) -> None:
    one = slice_samples(fmt, 0, 1)
    expected = (1, *output.shape[1:])
    shapes = ", ".join(str(tuple(x.shape)) for x in fmt.inputs)
    advice = (
        f"Inputs of shape {shapes} are read as a batch of {fmt.batch_size} samples "
        "(dim 0). If the input is one un-batched sample, add the batch dim "
        "(x.unsqueeze(0)); if the model returns (C, B) or averages over the batch, "
        "wrap it so that it returns per-sample scores with the batch in dim 0."
    )
    try:
        with torch.no_grad():
            single = run_forward(forward_func, one.inputs, one.additional_forward_args)
    except Exception as err:  # the user's model: any error means "not batched"
        raise ValueError(
            f"The forward function runs on the whole batch but fails on its first "
            f"sample alone ({type(err).__name__}: {err}). {advice}"
        ) from err
    got = tuple(single.shape) if isinstance(single, Tensor) else type(single).__name__
    if got != expected:
        raise ValueError(
            f"The forward function returned {tuple(output.shape)} for the batch but "
            f"{got} for its first sample alone, where {expected} was expected: dim 0 "
            f"of the output is not the batch. {advice}"
        )
