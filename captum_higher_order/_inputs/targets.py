"""Every Captum ``target`` form, the objectives, and the per-sample scalar
that the methods differentiate."""

from __future__ import annotations

from typing import Callable, List, Optional

import torch
from torch import Tensor

from captum_higher_order._inputs.formatting import FormattedInputs, TargetType
from captum_higher_order._inputs.outputs import check_forward, check_output

#: Objectives (docs/design.md, "Objectives"): which scalar per sample is differentiated.
OBJECTIVES = ("output", "log_softmax", "softmax", "cross_entropy")
_CLASS_OBJECTIVES = ("log_softmax", "softmax", "cross_entropy")


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


def select_objective(
    output: Tensor, target: Optional[Tensor], objective: str
) -> Tensor:
    """The per-sample scalar ``(B,)`` that the methods differentiate.

    ``"output"``: the selected output (Captum's default); ``"log_softmax"`` and
    ``"softmax"``: of the target class; ``"cross_entropy"``: minus log-softmax of
    the target class. With ``target=None``, class objectives use the predicted
    class at this evaluation point; ``"output"`` needs a target for ``(B, C>1)``.
    """
    has_batch = isinstance(output, Tensor) and output.dim() > 0
    output = check_output(output, output.shape[0] if has_batch else 0)
    batch = output.shape[0]
    if target is not None and target.shape[0] != batch:
        raise ValueError(
            f"The forward function returned shape {tuple(output.shape)}, but there "
            f"are {target.shape[0]} samples (one target each): dim 0 of the output "
            "must be the batch."
        )
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
    The output is checked here (:func:`check_forward`), so errors about it
    quote the user's batch, not a method's expanded one.
    """
    output = check_forward(forward_func, fmt)
    if target is not None:
        select_objective(output, target, objective)  # target range, objective
        return target
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
