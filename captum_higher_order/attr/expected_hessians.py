"""Expected Hessians (Janizek et al. 2021, Sec. 3.2): Integrated Hessians
averaged over baselines drawn from a reference set."""

from __future__ import annotations

import numbers
from typing import Any, Optional, Tuple, Union

import torch
from torch import Tensor

from captum_higher_order._captum import log_usage
from captum_higher_order._inputs import (
    FeatureGroups,
    FormattedInputs,
    TargetType,
    TensorOrTuple,
    check_objective,
    expand_samples,
    expand_target,
    format_feature_mask,
    format_inputs,
    format_target,
    resolve_target,
)
from captum_higher_order.attr.integrated_hessians import IntegratedHessians, MaskType
from captum_higher_order.hessian import DEFAULT_MAX_DENSE_FEATURES

__all__ = ["ExpectedHessians"]


class ExpectedHessians(IntegratedHessians):
    r"""Expected Hessians (Janizek et al. 2021, Sec. 3.2): Integrated Hessians
    averaged over baselines drawn from a reference set ``D``,

    ``Gamma(x) = E_{x' ~ D}[ Gamma(x; x') ]``, so the entries sum to
    ``f(x) - E_{x' ~ D} f(x')``.

    The paper samples ``(x', a, b)`` jointly by Monte Carlo; here each drawn
    reference keeps the deterministic path rule of :class:`IntegratedHessians`
    (``n_steps`` points over ``t = a b``), so only the choice of references is
    random (none is, when every reference is used).

    Args:
        forward_func (Callable): The model or function.
        multiply_by_inputs (bool, optional): As in :class:`IntegratedHessians`.
            Default: True

    Examples::

        >>> import torch
        >>> from captum_higher_order.attr.integrated_hessians import ExpectedHessians
        >>> _ = torch.manual_seed(0)
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(),
        ...                             torch.nn.Linear(8, 1)).double().eval()
        >>> x = torch.randn(3, 4, dtype=torch.float64)
        >>> references = torch.randn(20, 4, dtype=torch.float64)
        >>> eh, delta = ExpectedHessians(model).attribute(
        ...     x, references, n_references=5, seed=0, return_convergence_delta=True)
        >>> eh.shape, bool(delta.abs().max() < 1e-8)
        (torch.Size([3, 4, 4]), True)
    """

    @log_usage()
    def attribute(  # type: ignore[override]
        self,
        inputs: TensorOrTuple,
        baselines: TensorOrTuple,
        target: TargetType = None,
        additional_forward_args: Any = None,
        objective: str = "output",
        n_steps: Optional[int] = 16,
        method: str = "gausslegendre",
        feature_mask: MaskType = None,
        n_references: Optional[int] = None,
        seed: int = 0,
        generator: Optional[torch.Generator] = None,
        internal_batch_size: Optional[int] = None,
        return_convergence_delta: bool = False,
        mode: str = "auto",
        max_features: int = DEFAULT_MAX_DENSE_FEATURES,
        tol: float = 1e-3,
    ) -> Union[Tensor, Tuple[Tensor, Tensor]]:
        r"""Integrated Hessians averaged over reference baselines.

        Args:
            inputs (Tensor or tuple[Tensor, ...]): Inputs, batch in dim 0.
            baselines (Tensor or tuple[Tensor, ...]): The reference set: ``R``
                rows per input tensor, shaped ``(R, *sample_shape)``.
            target, additional_forward_args, objective, n_steps, method,
            feature_mask, internal_batch_size, mode, max_features, tol: As in
                :meth:`IntegratedHessians.attribute` (with ``n_steps=None`` the
                rule is chosen over every (sample, reference) pair, and
                :attr:`last_info` reports it per pair).
            n_references (int, optional): References drawn (with replacement)
                once per call and shared by every sample; None uses all ``R``
                (deterministic). Default: None
            seed (int, optional): Seed of the draw when no ``generator`` is
                given. Default: 0
            generator (torch.Generator, optional): Random source of the draw
                (on the CPU). Default: None
            return_convergence_delta (bool, optional): Also return
                ``sum(Gamma) - (f(x) - mean_r f(x'_r))`` over the drawn
                references. Default: False

        Returns:
            Tensor or (Tensor, Tensor): ``(B, F, F)`` or ``(B, G, G)``, and the
            ``(B,)`` gap when asked.
        """
        check_objective(objective)
        fmt0 = format_inputs(inputs, additional_forward_args)
        refs = _format_references(baselines, fmt0)
        num_refs = refs[0].shape[0]
        if n_references is None:
            picks = torch.arange(num_refs).repeat(fmt0.batch_size)
            per_sample = num_refs
        else:
            if isinstance(n_references, bool) or not isinstance(
                n_references, numbers.Integral
            ) or n_references < 1:
                raise ValueError(
                    f"`n_references` must be a positive int or None, got {n_references!r}."
                )
            gen = generator if generator is not None else torch.Generator().manual_seed(seed)
            per_sample = int(n_references)
            # One draw shared by the whole batch: a sample's result does not
            # depend on the rest of the batch, and samples are compared against
            # the same references.
            picks = torch.randint(num_refs, (per_sample,), generator=gen).repeat(
                fmt0.batch_size
            )
        # Every sample repeated once per drawn reference (rows b*M .. b*M+M-1).
        target_t = resolve_target(
            self.forward_func, fmt0, format_target(target, fmt0.batch_size), objective
        )
        fmt = expand_samples(fmt0, per_sample)
        drawn = tuple(r[picks.to(r.device)] for r in refs)
        if feature_mask is not None:
            groups0 = format_feature_mask(feature_mask, fmt0)
            assert groups0 is not None
            feature_mask = _expand_mask(feature_mask, fmt0, per_sample, groups0)
        expanded_inputs = fmt.inputs if fmt.is_tuple else fmt.inputs[0]
        expanded_args = fmt.additional_forward_args
        out = IntegratedHessians.attribute.__wrapped__(  # type: ignore[attr-defined]
            self, expanded_inputs, drawn if fmt.is_tuple else drawn[0],
            expand_target(target_t, per_sample), expanded_args, objective, n_steps,
            method, feature_mask, internal_batch_size, return_convergence_delta, mode,
            max_features, tol,
        )
        if return_convergence_delta:
            gamma, delta = out
            return (
                gamma.view(fmt0.batch_size, per_sample, *gamma.shape[1:]).mean(1),
                delta.view(fmt0.batch_size, per_sample).mean(1),
            )
        return out.view(fmt0.batch_size, per_sample, *out.shape[1:]).mean(1)


def _format_references(baselines: Any, fmt: FormattedInputs) -> Tuple[Tensor, ...]:
    refs = (baselines,) if isinstance(baselines, Tensor) else baselines
    if not isinstance(refs, tuple) or len(refs) != len(fmt.inputs):
        raise TypeError(
            "ExpectedHessians needs `baselines` as a reference set: a Tensor "
            f"(R, ...) or a tuple of {len(fmt.inputs)} such tensors, one per input."
        )
    out = []
    for i, (r, x) in enumerate(zip(refs, fmt.inputs)):
        if not isinstance(r, Tensor):
            raise TypeError(f"baselines[{i}] must be a Tensor of reference rows.")
        if r.shape[1:] != x.shape[1:] or r.shape[0] < 1:
            raise ValueError(
                f"baselines[{i}] has shape {tuple(r.shape)}; a reference set needs "
                f"shape (R, {', '.join(str(s) for s in x.shape[1:])}) with R >= 1."
            )
        if r.shape[0] != refs[0].shape[0]:
            raise ValueError("Every tensor of the reference set needs the same R rows.")
        out.append(r.detach().to(device=x.device, dtype=x.dtype))
    return tuple(out)


def _expand_mask(
    feature_mask: Any, fmt: FormattedInputs, n: int, groups: FeatureGroups
) -> Any:
    """Repeat per-sample mask rows like :func:`expand_samples` repeats samples."""
    if groups.index.shape[0] == 1:
        return feature_mask
    masks = (feature_mask,) if isinstance(feature_mask, Tensor) else feature_mask
    expanded = tuple(
        torch.broadcast_to(m, x.shape).repeat_interleave(n, dim=0)
        for m, x in zip(masks, fmt.inputs)
    )
    return expanded if isinstance(feature_mask, tuple) else expanded[0]
