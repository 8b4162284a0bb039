"""Hessian-vector products, dense and group Hessians, and input gradients.

The public entry points most users call; each states its problem, runs it on
the :class:`~captum_higher_order.hessian.engine.Engine`, and returns results in
the structure of the inputs (Captum style).
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Tuple, Union

import torch
from torch import Tensor

from captum_higher_order._inputs import (
    FeatureGroups,
    FormattedInputs,
    TargetType,
    TensorOrTuple,
    check_dense_size,
    format_feature_mask,
)
from captum_higher_order.hessian.budget import BudgetLike
from captum_higher_order.hessian.engine import (
    Engine,
    check_finite,
    make_problem,
    warn_if_zero_curvature,
)

__all__ = ["DEFAULT_MAX_DENSE_FEATURES", "hvp", "hessian", "value_and_grad",
           "format_vectors", "directional_hessian"]

#: Largest ``F`` (features or groups) for which dense ``F x F`` per-sample
#: results are built; above it the engine asks for a ``feature_mask``.
DEFAULT_MAX_DENSE_FEATURES = 4096


def hvp(
    forward_func: Callable[..., Tensor],
    inputs: TensorOrTuple,
    vectors: TensorOrTuple,
    target: TargetType = None,
    additional_forward_args: Any = None,
    objective: str = "output",
    mode: str = "auto",
    chunk_size: Optional[int] = None,
    memory_budget: BudgetLike = None,
    precision: Optional[str] = None,
) -> TensorOrTuple:
    r"""Batched Hessian-vector products ``H_b v`` for every sample ``b``.

    Args:
        forward_func (Callable): The model or function, called as
            ``forward_func(*inputs, *additional_forward_args)``; returns ``(B,)``
            or ``(B, C)``.
        inputs (Tensor or tuple[Tensor, ...]): Inputs with the batch in dim 0.
        vectors (Tensor or tuple[Tensor, ...]): Same structure as ``inputs``.
            Either one vector per sample, shaped like the inputs ``(B, ...)``, or
            ``k`` vectors per sample, shaped ``(B, k, ...)`` (one more dim than
            the inputs).
        target (int, tuple, Tensor or list, optional): Captum target: the output
            class per sample. With ``None``, class objectives use the predicted
            class. Default: None
        additional_forward_args (Any, optional): Passed to ``forward_func``
            after the inputs, not differentiated. Default: None
        objective (str, optional): The per-sample scalar: ``"output"``,
            ``"log_softmax"``, ``"softmax"`` or ``"cross_entropy"``.
            Default: ``"output"``
        mode (str, optional): ``"auto"``, ``"fwd_rev"``, ``"rev_rev"`` or
            ``"ggn"`` (see the module docstring). Default: ``"auto"``
        chunk_size (int, optional): Vectors processed per pass. None picks one
            from the memory budget (and halves it on out-of-memory).
            Default: None
        memory_budget (int, float or str, optional): Extra memory the call may
            use: bytes, a fraction of the free memory, or ``"2GiB"``; None uses
            the :func:`memory_budget` context or half the free memory.
            Default: None
        precision (str, optional): ``"float32"``, ``"tf32"`` or ``"bfloat16"``
            (float32 models only; see docs/design.md, "Precision").
            Default: None (the innermost ``hvp_precision`` block, else
            ``"float32"``)

    Returns:
        Tensor or tuple[Tensor, ...]: The products, in the structure and shape
        of ``vectors``.

    Examples::

        >>> import torch
        >>> from captum_higher_order.hessian import hvp
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Softplus(),
        ...                             torch.nn.Linear(8, 3)).eval()
        >>> x = torch.randn(2, 4)
        >>> v = torch.randn(2, 5, 4)            # 5 vectors per sample
        >>> hvp(model, x, v, target=0).shape
        torch.Size([2, 5, 4])
    """
    problem = make_problem(
        forward_func, inputs, target, additional_forward_args, objective, mode
    )
    fmt = problem.fmt
    vec_tuple = format_vectors(vectors, fmt)
    single = vec_tuple[0].dim() == fmt.inputs[0].dim()
    if single:
        vec_tuple = tuple(v.unsqueeze(1) for v in vec_tuple)
    check_finite(vec_tuple, "`vectors`")
    k = vec_tuple[0].shape[1]
    kfirst = tuple(v.movedim(1, 0) for v in vec_tuple)

    def make(start: int, stop: int) -> Tuple[Tensor, ...]:
        return tuple(v[start:stop] for v in kfirst)

    engine = Engine(problem, mode, memory_budget=memory_budget, precision=precision)
    flat = engine.apply(make, k, chunk_size, lambda prods: fmt.flatten(prods, lead=2))  # (k, B, F)
    if bool(torch.stack([v.any() for v in vec_tuple]).any()):
        warn_if_zero_curvature(flat, objective)
    out = fmt.unflatten(flat.movedim(0, 1))  # tuple of (B, k, ...)
    if single:
        out = tuple(o.squeeze(1) for o in out)
    return fmt.format_like_inputs(out)


def format_vectors(vectors: TensorOrTuple, fmt: FormattedInputs) -> Tuple[Tensor, ...]:
    vec = (vectors,) if isinstance(vectors, Tensor) else vectors
    if not isinstance(vec, tuple) or len(vec) != len(fmt.inputs):
        raise ValueError(
            f"`vectors` must have the structure of `inputs` ({len(fmt.inputs)} "
            "tensor(s))."
        )
    out = []
    for i, (v, x) in enumerate(zip(vec, fmt.inputs)):
        if not isinstance(v, Tensor):
            raise TypeError(f"vectors[{i}] must be a Tensor.")
        same = v.shape == x.shape
        stacked = v.dim() == x.dim() + 1 and v.shape[0] == x.shape[0] and (
            v.shape[2:] == x.shape[1:]
        )
        if not (same or stacked):
            raise ValueError(
                f"vectors[{i}] has shape {tuple(v.shape)}; use the input's shape "
                f"{tuple(x.shape)} for one vector per sample, or "
                f"{(x.shape[0], 'k', *x.shape[1:])} for k vectors per sample."
            )
        out.append(v.detach().to(device=x.device, dtype=x.dtype))
    if len({o.dim() - x.dim() for o, x in zip(out, fmt.inputs)}) != 1 or (
        out[0].dim() > fmt.inputs[0].dim()
        and len({o.shape[1] for o in out}) != 1
    ):
        raise ValueError("All tensors in `vectors` need the same number k of vectors.")
    return tuple(out)


def hessian(
    forward_func: Callable[..., Tensor],
    inputs: TensorOrTuple,
    target: TargetType = None,
    additional_forward_args: Any = None,
    objective: str = "output",
    feature_mask: Union[None, Tensor, Tuple[Tensor, ...]] = None,
    mode: str = "auto",
    chunk_size: Optional[int] = None,
    max_features: int = DEFAULT_MAX_DENSE_FEATURES,
    memory_budget: BudgetLike = None,
    precision: Optional[str] = None,
) -> Tensor:
    r"""Per-sample Hessians ``(B, F, F)``, or group Hessians ``P^T H P``.

    Features are the flattened elements of all input tensors, in order. With a
    Captum-style ``feature_mask`` the result is ``(B, G, G)`` with entry
    ``1_a^T H 1_b``: the mixed second derivative along the two group indicator
    directions. Built from ``F`` (or ``G``) batched HVPs with basis or
    indicator vectors, chunked; the result is symmetrised.

    Args:
        forward_func (Callable): The model or function.
        inputs (Tensor or tuple[Tensor, ...]): Inputs, batch in dim 0.
        target (int, tuple, Tensor or list, optional): Captum target.
            Default: None
        additional_forward_args (Any, optional): Extra forward arguments.
            Default: None
        objective (str, optional): See :func:`hvp`. Default: ``"output"``
        feature_mask (Tensor or tuple[Tensor, ...], optional): Integer group ids,
            broadcastable to each input (first dim 1 or B), ids shared across
            the tuple. Default: None
        mode (str, optional): See :func:`hvp`. Default: ``"auto"``
        chunk_size (int, optional): Basis vectors per pass. Default: None
        max_features (int, optional): Largest ``F`` (or ``G``) allowed; above it
            a ValueError asks for a ``feature_mask``.
            Default: :data:`DEFAULT_MAX_DENSE_FEATURES` (4096)
        memory_budget, precision: See :func:`hvp`.

    Returns:
        Tensor: ``(B, F, F)`` or ``(B, G, G)``.

    Examples::

        >>> import torch
        >>> from captum_higher_order.hessian import hessian
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.GELU(),
        ...                             torch.nn.Linear(8, 3)).eval()
        >>> hessian(model, torch.randn(2, 4), target=1).shape
        torch.Size([2, 4, 4])
    """
    problem = make_problem(
        forward_func, inputs, target, additional_forward_args, objective, mode
    )
    fmt = problem.fmt
    groups = format_feature_mask(feature_mask, fmt)
    size = fmt.num_features if groups is None else groups.num_groups
    check_dense_size(
        size, max_features, "The Hessian" if groups is None else "The group Hessian"
    )
    engine = Engine(problem, mode, memory_budget=memory_budget, precision=precision)
    result = directional_hessian(engine, fmt, groups, chunk_size)
    warn_if_zero_curvature(result, objective)
    return result


def directional_hessian(
    engine: Engine,
    fmt: FormattedInputs,
    groups: Optional[FeatureGroups],
    chunk_size: Optional[int],
) -> Tensor:
    batch, dtype, device = fmt.batch_size, fmt.dtype, fmt.device
    num_features = fmt.num_features

    if groups is None:
        size = num_features

        def make(start: int, stop: int) -> Tuple[Tensor, ...]:
            basis = torch.zeros(stop - start, batch, num_features, dtype=dtype, device=device)
            rows = torch.arange(stop - start, device=device)
            basis[rows, :, rows + start] = 1.0
            return fmt.unflatten(basis)

        def reduce(prods: Tuple[Tensor, ...]) -> Tensor:
            return fmt.flatten(prods, lead=2)

    else:
        size = groups.num_groups

        def make(start: int, stop: int) -> Tuple[Tensor, ...]:
            return fmt.unflatten(groups.indicators(start, stop, batch, dtype, device))

        def reduce(prods: Tuple[Tensor, ...]) -> Tensor:
            return groups.project(fmt.flatten(prods, lead=2))

    rows = engine.apply(make, size, chunk_size, reduce, desc="Hessian rows")  # (size, B, size)
    matrix = rows.movedim(0, 1)
    return 0.5 * (matrix + matrix.transpose(1, 2))


def value_and_grad(
    forward_func: Callable[..., Tensor],
    inputs: TensorOrTuple,
    target: TargetType = None,
    additional_forward_args: Any = None,
    objective: str = "output",
) -> Tuple[Tensor, TensorOrTuple]:
    """Per-sample objective values ``(B,)`` and their input gradients.

    First order only (one backward); here so methods share the objective and
    input handling with the HVPs. The gradient has the structure of ``inputs``.
    """
    problem = make_problem(
        forward_func, inputs, target, additional_forward_args, objective
    )
    xs = tuple(x.clone().requires_grad_(True) for x in problem.fmt.inputs)
    with torch.enable_grad():
        values = problem.per_sample(*xs)
        grads = torch.autograd.grad(values.sum(), xs, allow_unused=True)
    grads = tuple(
        torch.zeros_like(x) if g is None else g.detach() for g, x in zip(grads, xs)
    )
    return values.detach(), problem.fmt.format_like_inputs(grads)


# --------------------------------------------------------------------------- Lanczos
