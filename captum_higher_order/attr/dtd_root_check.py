"""DTDRootCheck: Deep Taylor Decomposition relevance with a root-point report.

The implementation lives in the package :mod:`captum_higher_order.attr.dtd`;
this module keeps the import path ``captum_higher_order.attr.dtd_root_check``.
"""

from captum_higher_order.attr.dtd import (
    SUPPORTED_MODULES,
    DTDReport,
    DTDRootCheck,
    DTDThresholds,
    UnsupportedModuleError,
    fold_batchnorm,
    spearman,
)

__all__ = [
    "DTDRootCheck",
    "DTDReport",
    "DTDThresholds",
    "UnsupportedModuleError",
    "fold_batchnorm",
    "spearman",
    "SUPPORTED_MODULES",
]
