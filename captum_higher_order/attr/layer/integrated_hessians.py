r"""Layer Integrated Hessians: token-pair interactions on an embedding layer."""

from __future__ import annotations

from typing import Any, Optional, Union

from torch import Tensor

from captum_higher_order._captum import log_usage
from captum_higher_order._inputs import TargetType
from captum_higher_order.attr.integrated_hessians import IntegratedHessians
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

__all__ = ["LayerIntegratedHessians"]


class LayerIntegratedHessians(LayerSecondOrderAttribution):
    r"""Integrated Hessians (Janizek, Sturmfels & Lee, JMLR 2021) on the output
    of a layer, grouped by position: token-pair interactions of a transformer.

    As Captum's ``LayerIntegratedGradients``: the model runs on its own inputs
    (token ids, with attention masks in ``additional_forward_args``) and the
    output ``a`` of ``layer`` (typically the embedding) is replaced by points
    ``a' + t (a - a')`` of the path from the baseline activations ``a'``.
    :class:`~captum_higher_order.attr.integrated_hessians.IntegratedHessians`
    then runs on ``a`` with every position ``t`` of ``a`` (dim 1, e.g. the
    ``D`` embedding dims of token ``t``) as one group, so entry ``(i, j)`` of
    the ``(B, T, T)`` result sums ``Gamma`` over the embedding dims of tokens
    ``i`` and ``j``. Hence

    * row ``i`` sums to ``LayerIntegratedGradients`` of token ``i`` (summed
      over its embedding dims), for the same baselines;
    * all entries sum to ``f(x) - f(x')`` with ``f(x')`` the model with the
      layer output at the baseline (completeness).

    Cost: ``n_steps`` path points, each one gradient plus ``T`` (or ``G``)
    Hessian-vector products per sample; no ``(T D) x (T D)`` matrix is formed.
    Trained transformers can have sharp paths from a pad-token baseline: check
    ``return_convergence_delta`` and raise ``n_steps`` (the zoo's text model
    needs 32 points where 16 leave a gap of the size of ``f(x) - f(x')``).

    Args:
        forward_func (Callable): The model, called as
            ``forward_func(*inputs, *additional_forward_args)``.
        layer (nn.Module): The layer whose output is explained; it must run
            once per forward and return one floating-point tensor
            ``(B, T, ...)``.
        device_ids (list[int], optional): Captum's ``DataParallel`` device ids
            (kept for the ``LayerAttribution`` signature). Default: None
        multiply_by_inputs (bool, optional): As in ``IntegratedHessians``.
            Default: True

    Examples::

        >>> import torch
        >>> from captum_higher_order import LayerIntegratedHessians
        >>> _ = torch.manual_seed(0)
        >>> class Bag(torch.nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.emb = torch.nn.Embedding(10, 4)
        ...         self.out = torch.nn.Linear(4, 2)
        ...     def forward(self, ids):
        ...         return self.out(torch.tanh(self.emb(ids)).prod(1))
        >>> model = Bag().double().eval()
        >>> ids = torch.tensor([[1, 2, 3]])
        >>> lih = LayerIntegratedHessians(model, model.emb)
        >>> gamma, delta = lih.attribute(ids, baselines=0, target=1,
        ...                              return_convergence_delta=True)
        >>> gamma.shape, bool(delta.abs().max() < 1e-8)
        (torch.Size([1, 3, 3]), True)
    """

    def has_convergence_delta(self) -> bool:
        return True

    @log_usage()
    def attribute(  # type: ignore[override]
        self,
        inputs: Any,
        baselines: BaselineLike = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        objective: str = "output",
        n_steps: Optional[int] = 16,
        method: str = "gausslegendre",
        layer_mask: Optional[Tensor] = None,
        layer_baselines: Union[None, float, Tensor] = None,
        internal_batch_size: Optional[int] = None,
        return_convergence_delta: bool = False,
        mode: str = "auto",
        max_features: int = DEFAULT_MAX_DENSE_FEATURES,
        tol: float = 1e-3,
    ) -> Union[Tensor, Any]:
        r"""Interactions between the positions of the layer output.

        Args:
            inputs (Tensor or tuple[Tensor, ...]): What the model takes (e.g.
                token ids ``(B, T)``), batch in dim 0.
            baselines (scalar, Tensor or tuple, optional): Captum's
                ``LayerIntegratedGradients`` baselines, in the input space
                (e.g. pad-token ids), run through the model to get the layer's
                baseline activations. None means zeros (token id 0).
                Default: None
            target (int, tuple, Tensor or list, optional): Captum target.
                Default: None
            additional_forward_args (Any, optional): Passed to the model after
                the inputs (attention masks), not differentiated. Default: None
            objective (str, optional): ``"output"``, ``"log_softmax"``,
                ``"softmax"`` or ``"cross_entropy"``. Default: ``"output"``
            n_steps (int or None, optional): Path points; None chooses them
                adaptively until the completeness gap is below ``tol`` (see
                ``IntegratedHessians``). Default: 16
            method (str, optional): Captum quadrature rule. Default:
                ``"gausslegendre"``
            layer_mask (Tensor, optional): Integer group ids per position,
                ``(T,)``, ``(1, T)`` or ``(B, T)``, e.g. the word of each
                sub-token; the result is then ``(B, G, G)`` ordered by id.
                Default: None (one group per position)
            layer_baselines (scalar or Tensor, optional): Baseline activations
                of the layer (broadcastable to its output) instead of
                ``baselines``. Default: None
            internal_batch_size (int, optional): Most HVPs per pass.
                Default: None
            return_convergence_delta (bool, optional): Also return
                ``sum(Gamma) - (f(x) - f(x'))``. Default: False
            mode (str, optional): Engine mode. Default: ``"auto"``
            max_features (int, optional): Largest ``T`` (or ``G``).
                Default: 4096
            tol (float, optional): Target gap for ``n_steps=None``, as in
                ``IntegratedHessians``. Default: 1e-3

        Returns:
            Tensor or (Tensor, Tensor): ``(B, T, T)`` (or ``(B, G, G)``)
            interactions, and the ``(B,)`` completeness gap when asked.
        """
        model = format_model_inputs(inputs, additional_forward_args)
        act = layer_activations(self.forward_func, self.layer, model.forward_args)
        base = layer_baseline_activations(
            self.forward_func, self.layer, model, act, baselines, layer_baselines
        )
        patch = LayerPatch(self.forward_func, self.layer)
        method_ = IntegratedHessians(patch, multiply_by_inputs=self._multiply_by_inputs)
        with patch.hooked():
            return method_.attribute(
                act, baselines=base, target=target,
                additional_forward_args=model.forward_args, objective=objective,
                n_steps=n_steps, method=method, feature_mask=position_mask(act, layer_mask),
                internal_batch_size=internal_batch_size,
                return_convergence_delta=return_convergence_delta, mode=mode,
                max_features=max_features, tol=tol,
            )
