"""Deep Taylor Decomposition with a root-point check (:class:`DTDRootCheck`).

Layout (one job per module):

* :mod:`.rules` -- the DTD rules as classes (modified weights, root direction,
  input domain);
* :mod:`.ops` -- the operations (weight layer, ReLU/pooling/flatten, residual
  addition) and the tape that runs them;
* :mod:`.parse` -- reading a model into a tape (BatchNorm folding, canonizers
  for torchvision ResNet blocks); :mod:`.verify` -- checking the forward is
  that tape; :mod:`.fold` -- :func:`fold_batchnorm`;
* :mod:`.relevance` -- the relevance pass; :mod:`.check` -- the root check;
  :mod:`.report` -- :class:`DTDReport`, :class:`DTDThresholds`;
* :mod:`.root_check` -- the Captum ``Attribution`` :class:`DTDRootCheck`.
"""

from captum_higher_order.attr.dtd.fold import FoldedNet, fold_batchnorm
from captum_higher_order.attr.dtd.parse import SUPPORTED_MODULES, UnsupportedModuleError
from captum_higher_order.attr.dtd.report import DTDReport, DTDThresholds, spearman
from captum_higher_order.attr.dtd.root_check import DTDRootCheck
from captum_higher_order.attr.dtd.rules import (
    LRP0,
    RULES,
    Gamma,
    Rule,
    WSquare,
    ZBox,
    ZPlus,
)

__all__ = [
    "DTDRootCheck", "DTDReport", "DTDThresholds", "UnsupportedModuleError",
    "fold_batchnorm", "FoldedNet", "spearman", "SUPPORTED_MODULES", "RULES", "Rule",
    "LRP0", "ZPlus", "WSquare", "ZBox", "Gamma",
]
