r"""Layer SmoothHess: smoothed token-pair interactions on an embedding layer."""

from __future__ import annotations

from typing import Any, Optional, Union

from torch import Tensor

from captum_higher_order._captum import log_usage
from captum_higher_order._inputs import TargetType
from captum_higher_order.attr.layer._base import LayerSecondOrderAttribution
from captum_higher_order.attr.layer._patch import BaselineLike, position_mask
from captum_higher_order.attr.layer.cross_derivatives import relative_problem
from captum_higher_order.attr.smooth_hess import SmoothHess
from captum_higher_order.hessian import DEFAULT_MAX_DENSE_FEATURES

__all__ = ["LayerSmoothHess"]


class LayerSmoothHess(LayerSecondOrderAttribution):
    r"""SmoothHess (Torop, Masoomi et al., NeurIPS 2023) with respect to a
    layer's output, grouped by position: ``(B, T, T)``.

    The model runs on its own inputs and the output of ``layer`` is replaced
    (Captum's ``LayerIntegratedGradients`` pattern). With
    ``multiply_by_inputs=True`` (default) the function smoothed is
    ``u -> f(a' + u * (a - a'))`` at ``u = 1``: entry ``(i, j)`` is
    ``Delta_i^T H_sigma Delta_j`` with the Gaussian noise scaled per feature
    by ``|a - a'|`` (``sigma`` is relative to the distance from the baseline,
    so the same ``sigma`` suits any embedding scale). With ``False`` the noise
    is added to the activations themselves and the entry is
    ``1_i^T H_sigma 1_j``.

    Cost: ``n_samples`` gradient calls per sample (no Hessian-vector
    products); the grouped estimate never forms a ``(T D) x (T D)`` matrix.

    Args:
        forward_func (Callable): The model, ``forward_func(*inputs, *args)``.
        layer (nn.Module): Layer whose output ``(B, T, ...)`` is explained.
        device_ids (list[int], optional): Captum's ``LayerAttribution``
            argument. Default: None
        multiply_by_inputs (bool, optional): See above. Default: True

    Examples::

        >>> import torch
        >>> from captum_higher_order import LayerSmoothHess
        >>> _ = torch.manual_seed(0)
        >>> class Bag(torch.nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.emb = torch.nn.Embedding(10, 4)
        ...         self.out = torch.nn.Linear(4, 2)
        ...     def forward(self, ids):
        ...         return self.out(torch.relu(self.emb(ids)).prod(1))
        >>> model = Bag().eval()
        >>> sh = LayerSmoothHess(model, model.emb)
        >>> sh.attribute(torch.tensor([[1, 2, 3]]), target=0, sigma=0.3,
        ...              n_samples=64, generator=0).shape
        torch.Size([1, 3, 3])
    """

    @log_usage()
    def attribute(  # type: ignore[override]
        self,
        inputs: Any,
        target: TargetType = None,
        additional_forward_args: Any = None,
        objective: str = "output",
        sigma: float = 0.1,
        n_samples: int = 256,
        baselines: BaselineLike = None,
        layer_baselines: Union[None, float, Tensor] = None,
        layer_mask: Optional[Tensor] = None,
        batch_size: Optional[int] = None,
        return_gradient: bool = False,
        generator: Any = None,
        max_features: int = DEFAULT_MAX_DENSE_FEATURES,
    ) -> Any:
        r"""Smoothed pairwise interactions between positions of the layer output.

        Args:
            inputs (Tensor or tuple[Tensor, ...]): What the model takes.
            target (int, tuple, Tensor or list, optional): Captum target.
                Default: None
            additional_forward_args (Any, optional): Extra model arguments.
                Default: None
            objective (str, optional): Objective smoothed. Default: ``"output"``
            sigma (float, optional): Noise standard deviation (relative to
                ``|a - a'|`` with ``multiply_by_inputs``). Default: 0.1
            n_samples (int, optional): Gradient calls per sample. Default: 256
            baselines (scalar, Tensor or tuple, optional): Input-space
                baselines mapped through the layer. Default: None
            layer_baselines (scalar or Tensor, optional): Baseline activations
                instead. Default: None
            layer_mask (Tensor, optional): Group ids per position.
                Default: None
            batch_size (int, optional): Noisy points per pass. Default: None
            return_gradient (bool, optional): Also return SmoothGrad in the
                same variables (``(a - a') *`` SmoothGrad with
                ``multiply_by_inputs``), shaped like the layer output.
                Default: False
            generator (int or torch.Generator, optional): Noise seed.
                Default: None
            max_features (int, optional): Largest ``T`` (or ``G``).
                Default: 4096

        Returns:
            Tensor or (Tensor, Tensor): ``(B, T, T)`` (or ``(B, G, G)``), and
            the gradient when asked.
        """
        patch, point, args, mask = relative_problem(
            self.forward_func, self.layer, inputs, additional_forward_args, baselines,
            layer_baselines, self._multiply_by_inputs,
        )
        if layer_mask is not None:
            mask = position_mask(point, layer_mask)
        with patch.hooked():
            return SmoothHess(patch).attribute(
                point, target, args, objective, sigma=sigma, n_samples=n_samples,
                feature_mask=mask, batch_size=batch_size, return_gradient=return_gradient,
                generator=generator, max_features=max_features,
            )
