r"""Layer Cross Derivatives: local token-pair interactions on an embedding layer."""

from __future__ import annotations

from typing import Any, Callable, Optional, Tuple, Union

import torch
from torch import Tensor, nn

from captum_higher_order._captum import log_usage
from captum_higher_order._inputs import TargetType
from captum_higher_order.attr.cross_derivatives import CrossDerivatives
from captum_higher_order.attr.layer._base import LayerSecondOrderAttribution
from captum_higher_order.attr.layer._patch import (
    BaselineLike,
    LayerPatch,
    format_model_inputs,
    layer_activations,
    layer_baseline_activations,
    position_mask,
)
from captum_higher_order.hessian import DEFAULT_MAX_DENSE_FEATURES

__all__ = ["LayerCrossDerivatives", "relative_problem"]


def relative_problem(
    forward_func: Callable[..., Tensor], layer: nn.Module, inputs: Any,
    additional_forward_args: Any, baselines: BaselineLike,
    layer_baselines: Union[None, float, Tensor], multiply_by_inputs: bool,
) -> Tuple[LayerPatch, Tensor, Tuple[Any, ...], Tensor]:
    """The patched model, the point to differentiate at, its extra args and
    the position mask. With ``multiply_by_inputs`` the point is ``u = 1`` of
    ``base + u * (act - base)``, so derivatives carry ``act - base`` factors;
    otherwise it is the layer output itself (baselines unused)."""
    model = format_model_inputs(inputs, additional_forward_args)
    act = layer_activations(forward_func, layer, model.forward_args)
    mask = position_mask(act, None)
    if not multiply_by_inputs:
        return LayerPatch(forward_func, layer), act, model.forward_args, mask
    base = layer_baseline_activations(forward_func, layer, model, act, baselines,
                                      layer_baselines)
    patch = LayerPatch(forward_func, layer, relative=True)
    return patch, torch.ones_like(act), (base, act - base) + model.forward_args, mask


class LayerCrossDerivatives(LayerSecondOrderAttribution):
    r"""Cross derivatives (Lerman et al., "Explaining Local, Global, and
    Higher-Order Interactions in Deep Learning", ICCV 2021) of the model with
    respect to a layer's output, grouped by position: ``(B, T, T)``.

    The model runs on its own inputs (token ids); the output ``a`` of
    ``layer`` is replaced as in Captum's ``LayerIntegratedGradients``. With
    ``multiply_by_inputs=True`` (default) entry ``(i, j)`` is
    ``Delta_i^T H Delta_j`` with ``Delta_t = a_t - a'_t`` the difference of
    token ``t``'s activations from the baseline's and ``H`` the Hessian in
    ``a``: the second-order Taylor term between token ``i`` and ``j`` (the
    ``x * grad`` of interactions). With ``False`` it is ``1_i^T H 1_j``.

    Cost: one batched pass of ``T`` (or ``G``) Hessian-vector products per
    sample; no ``(T D) x (T D)`` matrix is formed.

    Args:
        forward_func (Callable): The model, ``forward_func(*inputs, *args)``.
        layer (nn.Module): Layer whose output ``(B, T, ...)`` is explained.
        device_ids (list[int], optional): Captum's ``LayerAttribution``
            argument. Default: None
        multiply_by_inputs (bool, optional): See above. Default: True

    Examples::

        >>> import torch
        >>> from captum_higher_order import LayerCrossDerivatives
        >>> _ = torch.manual_seed(0)
        >>> class Bag(torch.nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.emb = torch.nn.Embedding(10, 4)
        ...         self.out = torch.nn.Linear(4, 2)
        ...     def forward(self, ids):
        ...         return self.out(torch.tanh(self.emb(ids)).prod(1))
        >>> model = Bag().double().eval()
        >>> cd = LayerCrossDerivatives(model, model.emb)
        >>> cd.attribute(torch.tensor([[1, 2, 3]]), target=0).shape
        torch.Size([1, 3, 3])
    """

    @log_usage()
    def attribute(  # type: ignore[override]
        self,
        inputs: Any,
        target: TargetType = None,
        additional_forward_args: Any = None,
        objective: str = "output",
        baselines: BaselineLike = None,
        layer_baselines: Union[None, float, Tensor] = None,
        layer_mask: Optional[Tensor] = None,
        absolute: bool = False,
        mode: str = "auto",
        chunk_size: Optional[int] = None,
        max_features: int = DEFAULT_MAX_DENSE_FEATURES,
    ) -> Tensor:
        r"""Pairwise interactions between positions of the layer output.

        Args:
            inputs (Tensor or tuple[Tensor, ...]): What the model takes
                (token ids ``(B, T)``).
            target (int, tuple, Tensor or list, optional): Captum target.
                Default: None
            additional_forward_args (Any, optional): Extra model arguments
                (attention masks). Default: None
            objective (str, optional): ``"output"``, ``"log_softmax"``,
                ``"softmax"`` or ``"cross_entropy"``. Default: ``"output"``
            baselines (scalar, Tensor or tuple, optional): Input-space
                baselines (e.g. pad ids) mapped through the layer, as in
                ``LayerIntegratedGradients``; used with ``multiply_by_inputs``.
                Default: None (token id 0)
            layer_baselines (scalar or Tensor, optional): Baseline activations
                instead of ``baselines``. Default: None
            layer_mask (Tensor, optional): Group ids per position ``(T,)``,
                ``(1, T)`` or ``(B, T)``. Default: None
            absolute (bool, optional): Return magnitudes. Default: False
            mode (str, optional): Engine mode. Default: ``"auto"``
            chunk_size (int, optional): Directions per pass. Default: None
            max_features (int, optional): Largest ``T`` (or ``G``).
                Default: 4096

        Returns:
            Tensor: ``(B, T, T)`` (or ``(B, G, G)``), symmetric; the diagonal
            holds the pure second derivative of each position.
        """
        patch, point, args, mask = relative_problem(
            self.forward_func, self.layer, inputs, additional_forward_args, baselines,
            layer_baselines, self._multiply_by_inputs,
        )
        if layer_mask is not None:
            mask = position_mask(point, layer_mask)
        with patch.hooked():
            out = CrossDerivatives(patch).attribute(
                point, target, args, objective, feature_mask=mask, absolute=absolute,
                mode=mode, chunk_size=chunk_size, max_features=max_features,
            )
        assert isinstance(out, Tensor)
        return out
