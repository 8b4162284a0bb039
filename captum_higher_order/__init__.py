"""captum-higher-order: higher-order attribution for PyTorch, as a Captum plugin.

Every method is a Captum ``Attribution``: call ``attribute(inputs, target=...,
additional_forward_args=...)`` as with ``IntegratedGradients``, wrap it in
``NoiseTunnel``, score it with ``captum.metrics``.

==========================  ===================================================
``SecondOrderSaliency``     curvature-aware saliency (Singla et al. 2019)
``GroupSparseSaliency``     sparse / group-sparse saliency (Singla et al. 2019)
``SmoothHess``              Gaussian-smoothed Hessians (Torop, Masoomi et al. 2023)
``CrossDerivatives``        pairwise and k-way interactions (Lerman et al. 2021)
``TaylorCAM``               region-pair Grad-CAM (Lerman et al. 2021)
``DTDRootCheck``            DTD relevance + root-point report (Sixt & Landgraf 2022)
``IntegratedHessians``      interactions with completeness (Janizek et al. 2021)
==========================  ===================================================

The Hessian-vector-product engine is :mod:`captum_higher_order.hessian`; the
plotting functions are in :mod:`captum_higher_order.visualization`.
"""

from captum_higher_order._inputs import ZeroHessianWarning
from captum_higher_order.attr.cross_derivatives import CrossDerivatives
from captum_higher_order.attr.dtd_root_check import (
    DTDReport,
    DTDRootCheck,
    DTDThresholds,
)
from captum_higher_order.attr.group_sparse_saliency import GroupSparseSaliency
from captum_higher_order.attr.integrated_hessians import (
    ExpectedHessians,
    IntegratedHessians,
)
from captum_higher_order.attr.layer import (
    LayerCrossDerivatives,
    LayerIntegratedHessians,
    LayerSmoothHess,
)
from captum_higher_order.attr.randomization import cascading_randomization
from captum_higher_order.attr.second_order_saliency import SecondOrderSaliency
from captum_higher_order.attr.smooth_hess import SmoothHess
from captum_higher_order.attr.taylor_cam import TaylorCAM, pair_centers, top_region_pairs
from captum_higher_order.dataset import DatasetExplanation, explain_dataset
from captum_higher_order.hessian.budget import memory_budget
from captum_higher_order.hessian.precision import hvp_precision
from captum_higher_order.surrogate import softplus_surrogate
from captum_higher_order.version import __version__
from captum_higher_order.visualization import (
    plot_token_interactions,
    visualize_image_interactions,
    visualize_interaction_graph,
    visualize_interaction_matrix,
    visualize_side_by_side,
    visualize_top_interactions,
)

__all__ = [
    "__version__",
    "SecondOrderSaliency",
    "GroupSparseSaliency",
    "SmoothHess",
    "CrossDerivatives",
    "TaylorCAM",
    "DTDRootCheck",
    "DTDReport",
    "DTDThresholds",
    "IntegratedHessians",
    "ExpectedHessians",
    "explain_dataset",
    "DatasetExplanation",
    "softplus_surrogate",
    "cascading_randomization",
    "top_region_pairs",
    "pair_centers",
    "ZeroHessianWarning",
    "visualize_interaction_matrix",
    "visualize_top_interactions",
    "memory_budget",
    "hvp_precision",
    "plot_token_interactions",
    "visualize_image_interactions",
    "visualize_interaction_graph",
    "visualize_side_by_side",
    "LayerIntegratedHessians",
    "LayerCrossDerivatives",
    "LayerSmoothHess",
]

