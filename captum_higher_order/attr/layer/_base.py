"""What the Layer* second-order classes share: Captum's layer-attribution
constructor and the ``multiply_by_inputs`` switch."""

from __future__ import annotations

from typing import Callable, List, Optional

from captum.attr import GradientAttribution, LayerAttribution
from torch import Tensor, nn

__all__ = ["LayerSecondOrderAttribution"]


class LayerSecondOrderAttribution(LayerAttribution, GradientAttribution):
    """Base of :class:`LayerIntegratedHessians`, :class:`LayerCrossDerivatives`
    and :class:`LayerSmoothHess`: a Captum ``LayerAttribution`` on ``layer``
    whose results are (or are not) multiplied by the layer's input differences."""

    def __init__(self, forward_func: Callable[..., Tensor], layer: nn.Module,
                 device_ids: Optional[List[int]] = None,
                 multiply_by_inputs: bool = True) -> None:
        LayerAttribution.__init__(self, forward_func, layer, device_ids)
        GradientAttribution.__init__(self, forward_func)
        self._multiply_by_inputs = bool(multiply_by_inputs)

    @property
    def multiplies_by_inputs(self) -> bool:
        return self._multiply_by_inputs
