"""Hand our results to other explanation libraries.

- :func:`to_shapiq`: an interaction matrix (``CrossDerivatives``,
  ``IntegratedHessians``, ``ExpectedHessians``, ``SmoothHess``) as a shapiq
  ``InteractionValues``, so that shapiq's network, force, upset and waterfall
  plots draw it.
- :func:`quantus_explain`: a Quantus ``explain_func`` for the input-shaped
  methods (``SecondOrderSaliency``, ``GroupSparseSaliency``, SmoothGrad from
  ``SmoothHess``, ``DTDRootCheck``), so that Quantus metrics score them.

shapiq and Quantus are optional: ``pip install 'captum-higher-order[interop]'``.
They are imported when a function needs them, never by ``import
captum_higher_order``.
"""

from captum_higher_order.interop.quantus_adapter import QUANTUS_METHODS, quantus_explain
from captum_higher_order.interop.shapiq_values import to_shapiq

__all__ = ["to_shapiq", "quantus_explain", "QUANTUS_METHODS"]
