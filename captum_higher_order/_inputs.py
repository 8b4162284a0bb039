"""Inputs, targets, extra forward args, feature masks and objectives.

Every method formats what the user passed through this module, so Captum's
conventions (a Tensor or a tuple of Tensors with the batch in dim 0, every form
of ``target``, ``additional_forward_args`` passed through, Captum-style
``feature_mask``) are implemented once, and so are the error messages that tell
the user what to change.
"""

from __future__ import annotations

import numbers
import warnings
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from captum_higher_order import _captum

TensorOrTuple = Union[Tensor, Tuple[Tensor, ...]]
TargetType = Union[None, int, Tuple[int, ...], Tensor, List[Any]]

#: Objectives (docs/design.md, "Objectives"): which scalar per sample is differentiated.
OBJECTIVES = ("output", "log_softmax", "softmax", "cross_entropy")
_CLASS_OBJECTIVES = ("log_softmax", "softmax", "cross_entropy")


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
    # tensors' requires_grad or autograd history.
    detached = tuple(x.detach() for x in tup)
    args = _captum.format_additional_forward_args(additional_forward_args)
    return FormattedInputs(detached, is_tuple, args, batch)


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


# --------------------------------------------------------------------------- targets


def format_target(target: TargetType, batch_size: int) -> Optional[Tensor]:
    """Turn every Captum target form into ``None`` or a LongTensor ``(B,)``.

    Accepted: ``None``; an int; a 1-tuple ``(c,)``; a scalar Tensor; a Tensor of
    ``B`` ints; a list of ``B`` ints or of ``B`` 1-tuples. Outputs must be
    ``(B,)`` or ``(B, C)``, so a target indexes the class dimension.
    """
    if target is None:
        return None
    if isinstance(target, bool):
        raise TypeError("`target` must be an int class index, not a bool.")
    if isinstance(target, int):
        return torch.full((batch_size,), target, dtype=torch.long)
    if isinstance(target, tuple):
        if len(target) != 1 or not isinstance(target[0], int):
            raise ValueError(
                f"A tuple target indexes the output beyond the batch dim; outputs "
                f"here are (B,) or (B, C), so pass a 1-tuple like (3,), got {target}."
            )
        return torch.full((batch_size,), target[0], dtype=torch.long)
    if isinstance(target, Tensor):
        if target.is_floating_point() or target.is_complex():
            raise TypeError(
                f"`target` tensor must hold integer class indices, got {target.dtype}."
            )
        if target.numel() == 1:
            return torch.full((batch_size,), int(target.item()), dtype=torch.long)
        if target.dim() != 1 or target.numel() != batch_size:
            raise ValueError(
                f"A tensor `target` must be a scalar or have shape ({batch_size},) "
                f"(one class per sample), got shape {tuple(target.shape)}."
            )
        return target.detach().to(device="cpu", dtype=torch.long)
    if isinstance(target, list):
        if len(target) != batch_size:
            raise ValueError(
                f"A list `target` needs one entry per sample: got {len(target)} for "
                f"a batch of {batch_size}."
            )
        flat: List[int] = []
        for t in target:
            if isinstance(t, tuple) and len(t) == 1:
                t = t[0]
            if isinstance(t, Tensor) and t.numel() == 1:
                t = int(t.item())
            if not isinstance(t, int) or isinstance(t, bool):
                raise TypeError(
                    f"Entries of a list `target` must be ints or 1-tuples of ints, "
                    f"got {t!r}."
                )
            flat.append(t)
        return torch.tensor(flat, dtype=torch.long)
    raise TypeError(
        f"`target` must be None, an int, a tuple, a Tensor or a list; got "
        f"{type(target).__name__}."
    )


def expand_target(target: Optional[Tensor], n: int) -> Optional[Tensor]:
    """Match :func:`expand_samples`: each sample's target repeated ``n`` times."""
    return None if target is None else target.repeat_interleave(n)


def check_objective(objective: str) -> None:
    if objective not in OBJECTIVES:
        raise ValueError(
            f"Unknown objective {objective!r}; choose one of {', '.join(OBJECTIVES)}."
        )


def _check_output(output: Any, batch_size: int) -> Tensor:
    if not isinstance(output, Tensor):
        raise TypeError(
            f"The forward function must return a Tensor, got {type(output).__name__}."
        )
    if output.dim() == 2 and output.shape[0] == batch_size:
        return output
    if output.dim() == 1 and output.shape[0] == batch_size:
        return output
    raise ValueError(
        f"The forward function must return shape (B,) or (B, C) with B={batch_size}, "
        f"got {tuple(output.shape)}. Wrap the model so it returns one score per "
        "sample or one row of class scores per sample."
    )


def select_objective(
    output: Tensor, target: Optional[Tensor], objective: str
) -> Tensor:
    """The per-sample scalar ``(B,)`` that the methods differentiate.

    ``"output"``: the selected output (Captum's default); ``"log_softmax"`` and
    ``"softmax"``: of the target class; ``"cross_entropy"``: minus log-softmax of
    the target class. With ``target=None``, class objectives use the predicted
    class at this evaluation point; ``"output"`` needs a target for ``(B, C>1)``.
    """
    batch = output.shape[0]
    output = _check_output(output, batch)
    if output.dim() == 1:
        if objective != "output":
            raise ValueError(
                f"objective={objective!r} needs class scores of shape (B, C) with "
                "C >= 2, but the forward function returns (B,); use "
                "objective='output'."
            )
        if target is not None and bool((target != 0).any()):
            raise ValueError(
                "The forward function returns one score per sample (B,), so "
                "`target` must be None or 0."
            )
        return output
    num_classes = output.shape[1]
    if objective in _CLASS_OBJECTIVES and num_classes < 2:
        raise ValueError(
            f"objective={objective!r} needs C >= 2 classes, the output has shape "
            f"{tuple(output.shape)}; use objective='output'."
        )
    if target is None:
        if objective == "output":
            if num_classes == 1:
                return output[:, 0]
            raise ValueError(
                f"The output has {num_classes} columns: pass `target` (an int, a "
                "list or a tensor of class indices) to pick the output to explain."
            )
        target = output.detach().argmax(dim=1)
    else:
        if bool((target < 0).any()) or bool((target >= num_classes).any()):
            raise ValueError(
                f"`target` out of range: the output has {num_classes} classes "
                f"(valid 0..{num_classes - 1}), got {target.tolist()}."
            )
        target = target.to(output.device)
    index = target.reshape(batch, 1)
    if objective == "output":
        return output.gather(1, index).squeeze(1)
    log_p = torch.log_softmax(output, dim=1).gather(1, index).squeeze(1)
    if objective == "log_softmax":
        return log_p
    if objective == "cross_entropy":
        return -log_p
    return log_p.exp()  # softmax


def resolve_target(
    forward_func: Callable[..., Tensor],
    fmt: FormattedInputs,
    target: Optional[Tensor],
    objective: str,
) -> Optional[Tensor]:
    """Fix the target at the clean input (one no-grad forward when needed).

    Methods that evaluate the model at perturbed points (noise, paths) must use
    the class predicted at ``x``, not the class predicted at each perturbation.
    """
    if target is not None:
        return target
    with torch.no_grad():
        output = _check_output(
            run_forward(forward_func, fmt.inputs, fmt.additional_forward_args),
            fmt.batch_size,
        )
    if output.dim() == 1:
        return None
    if output.shape[1] == 1:
        return torch.zeros(fmt.batch_size, dtype=torch.long)
    if objective == "output":
        raise ValueError(
            f"The output has {output.shape[1]} columns: pass `target` (an int, a "
            "list or a tensor of class indices) to pick the output to explain."
        )
    return output.argmax(dim=1).cpu()


# --------------------------------------------------------------------------- model state


def find_module(forward_func: Callable[..., Any]) -> Optional[nn.Module]:
    """The nn.Module behind ``forward_func`` (a module or its bound method)."""
    if isinstance(forward_func, nn.Module):
        return forward_func
    owner = getattr(forward_func, "__self__", None)
    return owner if isinstance(owner, nn.Module) else None


_BATCHNORM = (nn.modules.batchnorm._BatchNorm, nn.SyncBatchNorm)
_warned_dropout: set = set()


def check_model_state(forward_func: Callable[..., Any]) -> None:
    """Refuse batch-norm in training mode (samples would not be independent);
    warn once about dropout in training mode (results would be random)."""
    module = find_module(forward_func)
    if module is None:
        return
    for name, sub in module.named_modules():
        if sub.training and isinstance(sub, _BATCHNORM):
            raise ValueError(
                f"Module {name or type(module).__name__!r} is a batch-norm layer in "
                "training mode: batch statistics couple the samples, so per-sample "
                "second derivatives would be wrong. Call model.eval() first."
            )
    key = id(module)
    if key not in _warned_dropout:
        for sub in module.modules():
            if sub.training and isinstance(sub, nn.modules.dropout._DropoutNd):
                _warned_dropout.add(key)
                warnings.warn(
                    "The model has dropout in training mode, so attributions are "
                    "random; call model.eval() for deterministic results.",
                    stacklevel=3,
                )
                break


# --------------------------------------------------------------------------- per-input values


def broadcast_to_input(value: Tensor, x: Tensor, what: str) -> Tensor:
    """``value`` broadcast to the shape of its input ``x``, or a ValueError that
    names ``what`` (e.g. ``"feature_mask[0]"``) and the shapes that would work."""
    try:
        return torch.broadcast_to(value, x.shape)
    except RuntimeError:
        raise ValueError(
            f"{what} of shape {tuple(value.shape)} does not broadcast to its input of "
            f"shape {tuple(x.shape)}; use the input's shape, the sample shape "
            f"{tuple(x.shape[1:])}, or size 1 in any dim (first dim 1 or the batch size)."
        ) from None


def is_per_sample(value: Tensor, x: Tensor) -> bool:
    """Whether a per-input ``value`` differs across the batch (has dim 0 = B > 1)."""
    return value.dim() == x.dim() and value.shape[0] == x.shape[0] and x.shape[0] > 1


BaselineType = Union[None, int, float, Tensor, Tuple[Union[int, float, Tensor], ...]]


def format_baselines(baselines: BaselineType, fmt: FormattedInputs) -> Tuple[Tensor, ...]:
    """Every Captum baseline form as a tuple of tensors shaped like the inputs.

    Accepted (per input, or one value for all inputs when not a tuple): None
    (zeros), a Python number, or a tensor broadcastable to the input (batch dim
    1 or B, or the per-sample shape without batch dim).
    """
    n = len(fmt.inputs)
    if baselines is None:
        per_input: Tuple[Any, ...] = (0.0,) * n
    elif isinstance(baselines, tuple):
        if len(baselines) != n:
            raise ValueError(
                f"`baselines` has {len(baselines)} elements but there are {n} inputs; "
                "pass one baseline (number or tensor) per input tensor."
            )
        per_input = baselines
    elif isinstance(baselines, (Tensor, numbers.Number)) and not isinstance(baselines, bool):
        if isinstance(baselines, Tensor) and n > 1:
            raise ValueError(
                "With tuple inputs pass `baselines` as a tuple (one per input) or "
                "a single number."
            )
        per_input = (baselines,) * n
    else:
        raise TypeError(
            "`baselines` must be None, a number, a Tensor, or a tuple of those "
            f"(one per input); got {type(baselines).__name__}."
        )
    out: List[Tensor] = []
    for i, (b, x) in enumerate(zip(per_input, fmt.inputs)):
        if isinstance(b, bool) or not isinstance(b, (Tensor, numbers.Number)):
            raise TypeError(
                f"baselines[{i}] must be a number or a Tensor, got {type(b).__name__}."
            )
        # Python numbers go straight to the input's dtype (not through float32).
        b_t = b.detach() if isinstance(b, Tensor) else torch.tensor(b, dtype=x.dtype)
        b_t = broadcast_to_input(b_t.to(device=x.device, dtype=x.dtype), x, f"baselines[{i}]")
        if not bool(torch.isfinite(b_t).all()):
            raise ValueError(f"baselines[{i}] contains NaN or Inf.")
        out.append(b_t)
    return tuple(out)


# --------------------------------------------------------------------------- feature masks


@dataclass
class FeatureGroups:
    """Group membership of every flattened feature (Captum ``feature_mask``).

    ``index`` is a LongTensor ``(B or 1, F)`` holding, for every feature, the
    position ``0..G-1`` of its group; ``ids`` holds the user's group id of each
    position (sorted). Ids are shared across the inputs of a tuple.
    """

    index: Tensor
    ids: Tensor

    @property
    def num_groups(self) -> int:
        return int(self.ids.numel())

    def project(self, flat: Tensor) -> Tensor:
        """``P^T v``: sum a ``(..., B, F)`` tensor over each group, giving
        ``(..., B, G)``."""
        batch = flat.shape[-2]
        index = self.index.expand(batch, -1).to(flat.device)
        index = index.expand(*flat.shape[:-1], -1)
        out = torch.zeros(
            *flat.shape[:-1], self.num_groups, dtype=flat.dtype, device=flat.device
        )
        return out.scatter_add_(-1, index, flat)

    def indicators(
        self, start: int, stop: int, batch: int, dtype: torch.dtype, device: Any
    ) -> Tensor:
        """Indicator directions ``1_a`` of groups ``start..stop-1``, shaped
        ``(stop-start, B, F)``."""
        groups = torch.arange(start, stop, device=device).view(-1, 1, 1)
        index = self.index.to(device).expand(batch, -1).unsqueeze(0)
        return (index == groups).to(dtype)

    def expand(self, n: int) -> FeatureGroups:
        """Match :func:`expand_samples` for per-sample masks."""
        if self.index.shape[0] == 1:
            return self
        return FeatureGroups(self.index.repeat_interleave(n, dim=0), self.ids)


def format_feature_mask(
    feature_mask: Union[None, Tensor, Tuple[Tensor, ...]], fmt: FormattedInputs
) -> Optional[FeatureGroups]:
    """Validate a Captum-style ``feature_mask`` and map it onto flat features.

    Each mask tensor holds integer group ids and must broadcast to its input
    (first dim 1 or B); ids are shared across the tuple, so id ``a`` in two
    inputs is one group. Ids need not be contiguous: the result is ordered by id.
    """
    if feature_mask is None:
        return None
    masks = _captum.format_tensor_into_tuples(feature_mask)
    assert masks is not None
    if len(masks) != len(fmt.inputs):
        raise ValueError(
            f"`feature_mask` has {len(masks)} tensors but there are "
            f"{len(fmt.inputs)} inputs; pass one mask per input tensor."
        )
    per_input: List[Tensor] = []
    per_sample = False
    for i, (m, x) in enumerate(zip(masks, fmt.inputs)):
        if not isinstance(m, Tensor) or m.is_floating_point() or m.dtype == torch.bool:
            raise TypeError(
                f"feature_mask[{i}] must be an integer tensor of group ids."
            )
        if m.dim() > x.dim():
            raise ValueError(
                f"feature_mask[{i}] has shape {tuple(m.shape)}, more dims than its "
                f"input {tuple(x.shape)}."
            )
        m_full = broadcast_to_input(m, x, f"feature_mask[{i}]")
        per_sample = per_sample or is_per_sample(m, x)
        per_input.append(m_full.reshape(x.shape[0], -1).to(torch.long))
    ids_full = torch.cat(per_input, dim=1)
    if bool((ids_full < 0).any()):
        raise ValueError("feature_mask ids must be non-negative integers.")
    if not per_sample:
        ids_full = ids_full[:1]
    ids, index = torch.unique(ids_full, sorted=True, return_inverse=True)
    return FeatureGroups(index.reshape(ids_full.shape), ids)


def check_dense_size(num: int, max_features: int, what: str) -> None:
    """Refuse dense ``num x num`` results above ``max_features``."""
    if num > max_features:
        raise ValueError(
            f"{what} would be a dense {num} x {num} matrix per sample, above "
            f"max_features={max_features}. Group features with a Captum-style "
            "`feature_mask` (e.g. superpixels or channels) so the result is G x G, "
            "or raise `max_features` if you have the memory."
        )
