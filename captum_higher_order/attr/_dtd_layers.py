"""Old home of the DTD layer chain and rules; they live in
:mod:`captum_higher_order.attr.dtd` now (rules in :mod:`.dtd.rules`, operations
in :mod:`.dtd.ops`, model reading in :mod:`.dtd.parse`). Kept so old imports work."""

from captum_higher_order.attr.dtd.fold import FoldedNet, fold_batchnorm
from captum_higher_order.attr.dtd.ops import DEFAULT_EPSILON, ActOp, WeightOp, stabilize
from captum_higher_order.attr.dtd.parse import (
    SUPPORTED_MODULES,
    UnsupportedModuleError,
    parse_model,
)
from captum_higher_order.attr.dtd.rules import RULES, roots

__all__ = [
    "RULES", "SUPPORTED_MODULES", "UnsupportedModuleError", "fold_batchnorm", "FoldedNet",
    "DEFAULT_EPSILON", "ActOp", "WeightOp", "stabilize", "parse_model", "roots",
]
