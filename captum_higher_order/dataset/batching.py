"""What one batch is: unpacking, shapes, devices, per-batch targets and sharding.

:func:`explain_dataset` reads whatever a DataLoader or iterable yields through
:func:`default_unpack` (or the caller's ``unpack``) into a :class:`Batch`, moves
it to the requested device and turns the ``target`` setting into a Captum target
for that batch. Which rank processes which batch is decided by :data:`SHARDING`.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Tuple

import torch
from torch import Tensor

from captum_higher_order._inputs import TensorOrTuple, run_forward

__all__ = [
    "SHARDING",
    "Batch",
    "batch_size",
    "batch_target",
    "check_target_spec",
    "default_unpack",
    "inputs_tuple",
    "read_batch",
    "shard_mode",
    "to_device",
]

#: How batches are split between ranks under ``torch.distributed``:
#: ``"batch"``: rank ``r`` of ``W`` takes the batches whose index ``i`` (position
#: in the iterable) has ``i % W == r``; every rank iterates the full iterable, so
#: it must yield the same batches in the same order on every rank.
#: ``"none"``: the data are already sharded per rank (a DataLoader with a
#: ``DistributedSampler``); every rank processes every batch it is given.
#: ``"auto"``: ``"none"`` for a DataLoader whose sampler is a
#: ``DistributedSampler``, ``"batch"`` otherwise.
SHARDING = ("auto", "batch", "none")


class Batch(NamedTuple):
    """One batch as :func:`explain_dataset` sees it."""

    inputs: TensorOrTuple
    labels: Optional[Tensor] = None
    additional_forward_args: Any = None


_INPUT_KEYS = ("inputs", "input", "x")
_LABEL_KEYS = ("labels", "label", "targets", "target", "y")


def default_unpack(batch: Any) -> Batch:
    """Split what a DataLoader or iterable yields into inputs, labels, extra args.

    * a Tensor: the inputs;
    * a tuple or list ``(inputs,)``, ``(inputs, labels)`` or
      ``(inputs, labels, additional_forward_args)``, where ``inputs`` is a
      Tensor or a tuple of Tensors (models with several inputs nest them:
      ``((x1, x2), y)``) and ``labels`` may be None;
    * a dict with an ``"inputs"`` (or ``"input"``, ``"x"``) entry and optional
      ``"labels"`` (``"label"``, ``"targets"``, ``"target"``, ``"y"``) and
      ``"additional_forward_args"``.

    Anything else: pass ``unpack=`` to :func:`explain_dataset`.
    """
    if isinstance(batch, Batch):
        return batch
    if isinstance(batch, Tensor):
        return Batch(batch)
    if isinstance(batch, dict):
        inputs = next((batch[k] for k in _INPUT_KEYS if k in batch), None)
        if inputs is None:
            raise ValueError(
                f"A dict batch needs an 'inputs' entry, got keys {sorted(batch)}; "
                "pass `unpack=` to explain_dataset for other layouts."
            )
        labels = next((batch[k] for k in _LABEL_KEYS if k in batch), None)
        return Batch(_as_inputs(inputs), labels, batch.get("additional_forward_args"))
    if isinstance(batch, (tuple, list)):
        if 1 <= len(batch) <= 3:
            parts = list(batch) + [None] * (3 - len(batch))
            return Batch(_as_inputs(parts[0]), parts[1], parts[2])
        raise ValueError(
            f"A batch with {len(batch)} elements is ambiguous: batches are "
            "(inputs,), (inputs, labels) or (inputs, labels, additional_forward_args); "
            "nest several input tensors as a tuple, ((x1, x2), y), or pass `unpack=`."
        )
    raise TypeError(
        f"Cannot read a batch of type {type(batch).__name__}: yield a Tensor, a "
        "tuple (inputs, labels) or a dict, or pass `unpack=` to explain_dataset."
    )


def read_batch(unpack: Callable[[Any], Any], raw: Any) -> Batch:
    """``unpack(raw)`` as a :class:`Batch` (a user's ``unpack`` may return a tuple)."""
    batch = unpack(raw)
    return batch if isinstance(batch, Batch) else Batch(*batch)


def _as_inputs(inputs: Any) -> TensorOrTuple:
    if isinstance(inputs, Tensor):
        return inputs
    if isinstance(inputs, (tuple, list)) and inputs and all(
        isinstance(x, Tensor) for x in inputs
    ):
        return tuple(inputs)
    raise TypeError(
        f"Batch inputs must be a Tensor or a tuple of Tensors, got "
        f"{type(inputs).__name__}."
    )


def inputs_tuple(inputs: TensorOrTuple) -> Tuple[Tensor, ...]:
    return inputs if isinstance(inputs, tuple) else (inputs,)


def batch_size(batch: Batch, index: int) -> int:
    """The number of samples in ``batch`` (dim 0 of every input tensor)."""
    sizes = {int(x.shape[0]) if x.dim() else -1 for x in inputs_tuple(batch.inputs)}
    if len(sizes) != 1 or -1 in sizes:
        raise ValueError(
            f"Batch {index}: every input tensor needs the batch in dim 0 with the "
            f"same size, got shapes {[tuple(x.shape) for x in inputs_tuple(batch.inputs)]}."
        )
    return sizes.pop()


def to_device(obj: Any, device: Optional[torch.device]) -> Any:
    """``obj`` with its tensors (also inside tuples and lists) moved to ``device``."""
    if device is None:
        return obj
    if isinstance(obj, Tensor):
        return obj.to(device)
    if isinstance(obj, tuple):
        return tuple(to_device(o, device) for o in obj)
    if isinstance(obj, list):
        return [to_device(o, device) for o in obj]
    return obj


def shard_mode(shard: str, data: Any) -> str:
    """Resolve ``shard="auto"``: pre-sharded for a DistributedSampler loader."""
    if shard != "auto":
        return shard
    from torch.utils.data import DataLoader
    from torch.utils.data.distributed import DistributedSampler

    if isinstance(data, DataLoader):
        samplers = [data.sampler, getattr(data.batch_sampler, "sampler", None)]
        if any(isinstance(s, DistributedSampler) for s in samplers):
            return "none"
    return "batch"


# --------------------------------------------------------------------------- targets


def _forward_func_of(method: Any) -> Optional[Callable[..., Tensor]]:
    func = getattr(method, "forward_func", None)
    if func is None:  # NoiseTunnel and other wrappers
        func = getattr(getattr(method, "attribution_method", None), "forward_func", None)
    return func


def check_target_spec(target: Any) -> None:
    """Refuse a string target other than ``"label"`` and ``"predicted"``."""
    if isinstance(target, str) and target not in ("label", "predicted"):
        raise ValueError(
            f"target={target!r} is not understood: pass a constant Captum target "
            "(an int), 'label' (use each batch's labels) or 'predicted' (the "
            "model's predicted class)."
        )


def batch_target(target: Any, method: Any, batch: Batch, size: int, index: int) -> Any:
    """The Captum target for one batch: its labels, the predicted classes, or
    the constant ``target`` unchanged."""
    if isinstance(target, str) and target == "label":
        return _label_target(batch, size, index)
    if isinstance(target, str) and target == "predicted":
        return _predicted_target(method, batch)
    return target


def _label_target(batch: Batch, size: int, index: int) -> Tensor:
    labels = batch.labels
    if labels is None:
        raise ValueError(
            f"target='label' but batch {index} has no labels; yield "
            "(inputs, labels) batches or pass a constant target / 'predicted'."
        )
    if not isinstance(labels, Tensor):
        labels = torch.as_tensor(labels)
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise ValueError(
            f"target='label' needs integer class labels, batch {index} has "
            f"{labels.dtype} labels."
        )
    labels = labels.reshape(-1) if labels.dim() > 1 and labels.numel() == size else labels
    if labels.dim() != 1 or labels.shape[0] != size:
        raise ValueError(
            f"Batch {index} has labels of shape {tuple(labels.shape)} for "
            f"{size} samples; pass one class index per sample."
        )
    return labels.long()


def _predicted_target(method: Any, batch: Batch) -> Any:
    func = _forward_func_of(method)
    if func is None:
        raise ValueError(
            "target='predicted' needs the model: the method has no "
            "`forward_func`; pass a constant target or 'label'."
        )
    args = batch.additional_forward_args
    if args is not None and not isinstance(args, tuple):
        args = (args,)
    with torch.no_grad():
        out = run_forward(func, inputs_tuple(batch.inputs), args)
    if out.dim() == 1 or (out.dim() == 2 and out.shape[1] == 1):
        return None if out.dim() == 1 else 0
    if out.dim() != 2:
        raise ValueError(
            f"target='predicted' needs outputs of shape (B, C), got {tuple(out.shape)}."
        )
    return out.argmax(dim=1)
