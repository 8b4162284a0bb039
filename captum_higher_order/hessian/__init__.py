"""The batched Hessian-vector-product engine: the one place that differentiates twice.

For a batch of ``B`` samples, a per-sample scalar objective ``s_b(x_b)`` (see
:data:`captum_higher_order._inputs.OBJECTIVES`) and ``k`` vectors per sample, the
engine returns the ``k`` products ``H_b v`` per sample, where ``H_b`` is the
Hessian of ``s_b`` with respect to sample ``b``'s inputs. Samples are
independent (the model must be in eval mode for batch-norm), so the sum over
the batch is differentiated once.

Modes (:mod:`~captum_higher_order.hessian.modes`): ``"fwd_rev"``
(forward-over-reverse), ``"rev_rev"`` (reverse-over-reverse), ``"ggn"`` (the
generalised Gauss-Newton product, exact for piecewise-linear networks, Singla
et al. 2019) and ``"auto"`` (``fwd_rev``, falling back to ``rev_rev`` when an
operator lacks forward-mode AD, and ``rev_rev`` for TorchScript models).

Layout:

* :mod:`.engine`: the contract methods build on (``Problem``, ``make_problem``,
  ``Engine``, ``HessianOperator``, ``warn_if_zero_curvature``);
* :mod:`.products`: :func:`hvp`, :func:`hessian`, :func:`value_and_grad`;
* :mod:`.lanczos`: :func:`top_eigenpairs` and the batched ``lanczos`` solver;
* :mod:`.cg`: :func:`solve` and ``conjugate_gradients``;
* :mod:`.mixed`: :func:`mixed_derivative_rows` (third and higher order);
* :mod:`.budget`, :mod:`.precision`, :mod:`.modes`: memory, arithmetic and the
  three differentiation kernels.

The design is explained in docs/design.md ("The engine").
"""

from captum_higher_order.hessian.budget import memory_budget
from captum_higher_order.hessian.cg import SolveResult, solve
from captum_higher_order.hessian.engine import MODES, check_mode
from captum_higher_order.hessian.lanczos import EigenResult, top_eigenpairs
from captum_higher_order.hessian.mixed import mixed_derivative_rows
from captum_higher_order.hessian.precision import PRECISIONS, hvp_precision
from captum_higher_order.hessian.products import (
    DEFAULT_MAX_DENSE_FEATURES,
    hessian,
    hvp,
    value_and_grad,
)
from captum_higher_order.hessian.recorded import RecordedGradient as RecordedGradient

__all__ = [
    "MODES",
    "PRECISIONS",
    "check_mode",
    "DEFAULT_MAX_DENSE_FEATURES",
    "hvp",
    "hessian",
    "top_eigenpairs",
    "solve",
    "value_and_grad",
    "mixed_derivative_rows",
    "memory_budget",
    "hvp_precision",
    "SolveResult",
    "EigenResult",
]
