"""Per-input values broadcast to the inputs: baselines and Captum-style
feature masks (groups of features), and the dense-size guard."""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any, List, Optional, Tuple, Union

import torch
from torch import Tensor

from captum_higher_order import _captum
from captum_higher_order._inputs.formatting import FormattedInputs

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
    if isinstance(feature_mask, list):
        raise TypeError(
            "`feature_mask` must be a Tensor or a tuple of Tensors (one per input), "
            f"got a list of {len(feature_mask)}; pass tuple(feature_mask)."
        )
    if not isinstance(feature_mask, (Tensor, tuple)):
        raise TypeError(
            "`feature_mask` must be a Tensor or a tuple of Tensors (one per input) of "
            f"integer group ids, got {type(feature_mask).__name__}."
        )
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
