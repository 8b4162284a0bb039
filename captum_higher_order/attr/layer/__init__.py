"""Layer variants of the interaction methods (Captum ``LayerAttribution``).

The model runs on its own inputs (token ids) and the output of one layer
(typically the embedding) is replaced by what the method differentiates;
results are grouped by position, ``(B, T, T)``.
"""

from captum_higher_order.attr.layer.cross_derivatives import LayerCrossDerivatives
from captum_higher_order.attr.layer.integrated_hessians import LayerIntegratedHessians
from captum_higher_order.attr.layer.smooth_hess import LayerSmoothHess

__all__ = ["LayerIntegratedHessians", "LayerCrossDerivatives", "LayerSmoothHess"]
