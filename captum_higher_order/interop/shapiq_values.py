"""Interaction matrices as shapiq ``InteractionValues``.

shapiq (Muschalik, Fumagalli et al., "shapiq: Shapley Interactions for Machine
Learning", NeurIPS 2024 Datasets and Benchmarks) stores an explanation as a map
from feature sets to numbers: ``()`` the baseline value, ``(i,)`` main effects,
``(i, j)`` pairwise interactions. Its plots (network, force, upset, waterfall,
si-graph) take that object, so converting our ``(F, F)`` results lets a user
draw them with the same tools as a shapiq explanation.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from captum_higher_order.interop._optional import require

__all__ = ["to_shapiq"]

#: The two ways of reading an entry of a symmetric matrix as a pair value.
PAIR_CONVENTIONS = ("entry", "sum")


def _scores_of(result: Any) -> Tensor:
    scores = getattr(result, "scores", result)  # GlobalInteractions carries .scores
    if not isinstance(scores, Tensor):
        raise TypeError(
            "to_shapiq takes an interaction Tensor (F, F) or (B, F, F), or a "
            f"GlobalInteractions result; got {type(result).__name__}."
        )
    if scores.dim() not in (2, 3) or scores.shape[-1] != scores.shape[-2]:
        raise ValueError(
            "to_shapiq needs a pairwise interaction matrix of shape (F, F) or a batch "
            f"(B, F, F); got shape {tuple(scores.shape)}. For order-3 results pass the "
            "pairwise (order=2) result instead."
        )
    scores = scores.detach().to("cpu", torch.float64)
    if not bool(torch.isfinite(scores).all()):
        raise ValueError("The interaction matrix holds NaN or inf values; fix the result first.")
    return scores if scores.dim() == 3 else scores.unsqueeze(0)


def _per_sample(value: Any, batch: int, size: int, name: str) -> Tensor:
    """``value`` as a ``(batch, size)`` float64 tensor (``size`` 1 for scalars)."""
    t = torch.as_tensor(value.detach() if isinstance(value, Tensor) else value)
    t = t.to("cpu", torch.float64)
    if size == 1:
        t = t.reshape(-1)
        if t.numel() == 1:
            return t.expand(batch).reshape(batch, 1)
        if t.numel() == batch:
            return t.reshape(batch, 1)
        raise ValueError(f"`{name}` must be a number or hold one value per sample ({batch}).")
    if t.dim() >= 2 and t.shape[0] == batch and t[0].numel() == size:
        return t.reshape(batch, size)  # (B, F) or input-shaped (B, ...)
    if t.numel() == size:
        return t.reshape(1, size).expand(batch, size)  # one vector for every sample
    raise ValueError(
        f"`{name}` must hold {size} values per sample (shape ({size},) or ({batch}, "
        f"{size}), or input-shaped with batch {batch}); got shape {tuple(t.shape)}."
    )


def to_shapiq(
    result: Any,
    feature_names: Optional[Sequence[str]] = None,
    main_effects: Union[None, str, Tensor, Sequence[float]] = None,
    pairs: str = "entry",
    baseline_value: Union[float, Tensor] = 0.0,
    index: str = "k-SII",
) -> Union[Any, List[Any]]:
    r"""Convert a pairwise interaction result into shapiq ``InteractionValues``.

    Args:
        result (Tensor or GlobalInteractions): ``(F, F)`` for one sample or a
            global result, ``(B, F, F)`` for a batch: the output of
            ``CrossDerivatives.attribute``, ``IntegratedHessians`` /
            ``ExpectedHessians.attribute``, ``SmoothHess.attribute`` (with or
            without a ``feature_mask``: then ``F`` is the number of groups), or
            ``CrossDerivatives.global_interactions``.
        feature_names (sequence of str, optional): ``F`` names, checked and
            stored as the ``feature_names`` attribute of the result so that
            ``shapiq.plot.network_plot(iv, feature_names=iv.feature_names)``
            labels the nodes. Default: None
        main_effects (str, Tensor or sequence, optional): First-order values
            ``(i,)``. None: zeros (a Hessian has no main effect).
            ``"diagonal"``: the matrix diagonal (Integrated/Expected Hessians
            put the first-order term there). Or attributions, ``F`` per sample
            (e.g. Integrated Gradients or SmoothGrad, input-shaped or flat).
            Default: None
        pairs (str, optional): ``"entry"``: the value of ``{i, j}`` is
            ``(M_ij + M_ji) / 2`` (the matrix entry; a mixed partial for
            cross derivatives). ``"sum"``: ``M_ij + M_ji``, so that with
            ``main_effects="diagonal"`` all values add up to the sum of the
            matrix: ``f(x) - f(x')`` for Integrated Hessians (completeness),
            the efficiency shapiq's force and waterfall plots assume.
            Default: ``"entry"``
        baseline_value (float or Tensor, optional): The value of the empty set
            ``()``, e.g. ``f(x')`` for Integrated Hessians; a number, or one per
            sample. Default: 0.0
        index (str, optional): The index label shapiq stores; it must be one of
            shapiq's (its plots need one). It names the slot, it does not make
            the values a Shapley estimate. Default: ``"k-SII"``

    Returns:
        shapiq.InteractionValues, or a list of them for a ``(B, F, F)`` input:
        ``min_order=0``, ``max_order=2``, ``n_players=F``.

    Examples::

        >>> # Integrated Hessians (Janizek et al. 2021) drawn with shapiq
        >>> import torch
        >>> from captum_higher_order import IntegratedHessians
        >>> from captum_higher_order.interop import to_shapiq
        >>> f = lambda x: 2 * x[:, 0] * x[:, 1] + x[:, 2]
        >>> x = torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64)
        >>> ih = IntegratedHessians(f).attribute(x)          # zero baseline, f(x') = 0
        >>> iv = to_shapiq(ih[0], feature_names=["a", "b", "c"],
        ...                main_effects="diagonal", pairs="sum")
        >>> # 2 x0 x1 = 4 at x: IH gives the pair half, the main effects 1 each
        >>> round(iv[(0, 1)], 6), round(iv[(0,)], 6), round(iv[(2,)], 6)
        (2.0, 1.0, 3.0)
        >>> round(float(iv.values.sum()), 6)                 # f(x) - f(x') = 7
        7.0
    """
    if pairs not in PAIR_CONVENTIONS:
        raise ValueError(f"`pairs` must be 'entry' or 'sum', got {pairs!r}.")
    shapiq = require("shapiq", "shapiq", "to_shapiq")
    scores = _scores_of(result)
    batch, size = scores.shape[0], scores.shape[1]
    if feature_names is not None and len(feature_names) != size:
        raise ValueError(
            f"`feature_names` has {len(feature_names)} names for {size} features (or groups)."
        )
    if main_effects is None:
        mains = torch.zeros(batch, size, dtype=torch.float64)
    elif isinstance(main_effects, str):
        if main_effects != "diagonal":
            raise ValueError(
                f"`main_effects` must be None, 'diagonal' or attributions; got {main_effects!r}."
            )
        mains = torch.diagonal(scores, dim1=1, dim2=2)
    else:
        mains = _per_sample(main_effects, batch, size, "main_effects")
    base = _per_sample(baseline_value, batch, 1, "baseline_value")[:, 0]
    scale = 1.0 if pairs == "sum" else 0.5
    pair_values = (scores + scores.transpose(1, 2)) * scale
    rows, cols = torch.triu_indices(size, size, offset=1)
    out = []
    for b in range(batch):
        values: Dict[Tuple[int, ...], float] = {(): float(base[b])}
        values.update({(i,): float(mains[b, i]) for i in range(size)})
        pair_b = pair_values[b, rows, cols].tolist()
        values.update({(i, j): v for i, j, v in zip(rows.tolist(), cols.tolist(), pair_b)})
        iv = shapiq.InteractionValues(
            values, index=index, max_order=2, n_players=size, min_order=0,
            baseline_value=float(base[b]), estimated=False,
        )
        iv.feature_names = None if feature_names is None else list(feature_names)
        out.append(iv)
    return out[0] if scores.shape[0] == 1 and _single(result) else out


def _single(result: Any) -> bool:
    scores = getattr(result, "scores", result)
    return isinstance(scores, Tensor) and scores.dim() == 2
