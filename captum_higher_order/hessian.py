"""The batched Hessian-vector-product engine: the one place that differentiates twice.

For a batch of ``B`` samples, a per-sample scalar objective ``s_b(x_b)`` (see
:data:`captum_higher_order._inputs.OBJECTIVES`) and ``k`` vectors per sample, the
engine returns the ``k`` products ``H_b v`` per sample, where ``H_b`` is the
Hessian of ``s_b`` with respect to sample ``b``'s inputs. Samples are
independent (the model must be in eval mode for batch-norm), so the sum over
the batch is differentiated once.

Modes:

* ``"fwd_rev"``: forward-over-reverse, ``jvp(grad(s))`` from ``torch.func``,
  vectorised over the ``k`` vectors with ``vmap``. The primal pass is shared, so
  one more HVP costs about one more tangent pass.
* ``"rev_rev"``: reverse-over-reverse, ``autograd.grad(..., create_graph=True)``
  then one batched second ``autograd.grad`` (``is_grads_batched=True``). Works
  for operators without forward-mode AD.
* ``"ggn"``: the generalised Gauss-Newton product ``J^T (d^2 l / dz^2) J v``
  (one JVP, one VJP) where ``z`` are the model's outputs and ``l`` the objective.
  It is exact when the model is piecewise linear in its input (ReLU, max-pool,
  linear layers): Singla et al. (2019) show ``H = J^T (diag(p) - p p^T) J`` for
  cross-entropy on such networks.
* ``"auto"``: ``fwd_rev``, falling back to ``rev_rev`` (with one warning) when an
  operator lacks forward-mode AD or functorch support.

Built on it: :func:`hessian` (full per-sample or group Hessians),
:func:`top_eigenpairs` (batched Lanczos) and :func:`solve` (batched conjugate
gradients for ``(lam I - H) d = g``).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Callable, List, NamedTuple, Optional, Tuple, Union, cast

import torch
from torch import Tensor

from captum_higher_order._inputs import (
    FeatureGroups,
    FormattedInputs,
    TargetType,
    TensorOrTuple,
    ZeroHessianWarning,
    check_dense_size,
    check_model_state,
    check_objective,
    format_feature_mask,
    format_inputs,
    format_target,
    run_forward,
    select_objective,
)

__all__ = [
    "MODES",
    "check_mode",
    "DEFAULT_MAX_DENSE_FEATURES",
    "hvp",
    "hessian",
    "top_eigenpairs",
    "solve",
    "value_and_grad",
    "mixed_derivative_rows",
    "SolveResult",
    "EigenResult",
]

MODES = ("auto", "fwd_rev", "rev_rev", "ggn")

#: Largest ``F`` (features or groups) for which dense ``F x F`` per-sample
#: results are built; above it the engine asks for a ``feature_mask``.
DEFAULT_MAX_DENSE_FEATURES = 4096

#: Memory budget for the vectors processed at once when ``chunk_size`` is None:
#: half the free CUDA memory, or this many bytes on the CPU.
DEFAULT_CPU_MEMORY_BUDGET = 4 * 2**30

_AUTO_CHUNK_THRESHOLD = 16
_warned_fallback: set = set()


# --------------------------------------------------------------------------- problem


@dataclass
class _Problem:
    """A model, formatted inputs, targets and the objective to differentiate."""

    forward_func: Callable[..., Tensor]
    fmt: FormattedInputs
    target: Optional[Tensor]
    objective: str

    def per_sample(self, *xs: Tensor) -> Tensor:
        output = run_forward(self.forward_func, xs, self.fmt.additional_forward_args)
        return select_objective(output, self.target, self.objective)

    def total(self, *xs: Tensor) -> Tensor:
        return self.per_sample(*xs).sum()

    def logits(self, *xs: Tensor) -> Tensor:
        return run_forward(self.forward_func, xs, self.fmt.additional_forward_args)

    def loss_of_logits(self, z: Tensor) -> Tensor:
        return select_objective(z, self.target, self.objective).sum()


def check_mode(mode: str) -> None:
    """Refuse an unknown engine mode with the list of valid ones."""
    if mode not in MODES:
        raise ValueError(f"Unknown mode {mode!r}; choose one of {', '.join(MODES)}.")


def _make_problem(
    forward_func: Callable[..., Tensor],
    inputs: TensorOrTuple,
    target: TargetType,
    additional_forward_args: Any,
    objective: str,
    mode: str = "auto",
) -> _Problem:
    check_objective(objective)
    check_mode(mode)
    if not callable(forward_func):
        raise TypeError("`forward_func` must be callable (a model or a function).")
    check_model_state(forward_func)
    fmt = format_inputs(inputs, additional_forward_args)
    return _Problem(forward_func, fmt, format_target(target, fmt.batch_size), objective)


# --------------------------------------------------------------------------- modes
# Each takes vectors as a tuple of (k, B, *sample_shape) tensors, k leading so it
# can be vmapped, and returns the same structure.


def _hvp_fwd_rev(problem: _Problem, vectors: Tuple[Tensor, ...]) -> Tuple[Tensor, ...]:
    xs = problem.fmt.inputs
    grad_fn = torch.func.grad(problem.total, argnums=tuple(range(len(xs))))

    def one(*v: Tensor) -> Tuple[Tensor, ...]:
        return torch.func.jvp(grad_fn, xs, v)[1]

    return tuple(torch.func.vmap(one)(*vectors))


def _zeros_like_vectors(vectors: Tuple[Tensor, ...]) -> Tuple[Tensor, ...]:
    return tuple(torch.zeros_like(v) for v in vectors)


class _RevRevOperator:
    """Reverse-over-reverse HVPs; the first-order graph is built once and reused
    by every call, which is what iterative solvers want."""

    def __init__(self, problem: _Problem) -> None:
        self.xs = tuple(x.clone().requires_grad_(True) for x in problem.fmt.inputs)
        with torch.enable_grad():
            total = problem.total(*self.xs)
            grads = torch.autograd.grad(
                total, self.xs, create_graph=True, allow_unused=True
            )
        self.grads = tuple(
            torch.zeros_like(x) if g is None else g for g, x in zip(grads, self.xs)
        )
        self.linear = not any(g.requires_grad for g in self.grads)

    def __call__(self, vectors: Tuple[Tensor, ...]) -> Tuple[Tensor, ...]:
        if self.linear:  # gradient does not depend on x: the Hessian is zero
            return _zeros_like_vectors(vectors)
        live = [i for i, g in enumerate(self.grads) if g.requires_grad]
        outs = [self.grads[i] for i in live]
        grad_outputs = [vectors[i] for i in live]
        result: Tuple[Optional[Tensor], ...]
        try:
            result = torch.autograd.grad(
                outs,
                self.xs,
                grad_outputs=grad_outputs,
                retain_graph=True,
                allow_unused=True,
                is_grads_batched=True,
            )
        except RuntimeError:
            # An operator without a batching rule for its double backward:
            # one backward per vector instead.
            per_vector = [
                torch.autograd.grad(
                    outs,
                    self.xs,
                    grad_outputs=[v[j] for v in grad_outputs],
                    retain_graph=True,
                    allow_unused=True,
                )
                for j in range(vectors[0].shape[0])
            ]
            result = tuple(
                None if per_vector[0][i] is None else torch.stack([p[i] for p in per_vector])
                for i in range(len(self.xs))
            )
        return tuple(
            torch.zeros_like(v) if r is None else r.detach()
            for r, v in zip(result, vectors)
        )


def _hvp_ggn(problem: _Problem, vectors: Tuple[Tensor, ...]) -> Tuple[Tensor, ...]:
    xs = problem.fmt.inputs
    # has_aux=False: vjp returns (output, vjp_fn), never the 3-tuple with aux.
    z, vjp_fn = cast(
        Tuple[Tensor, Callable[..., Tuple[Tensor, ...]]],
        torch.func.vjp(problem.logits, *xs),
    )
    z = z.detach()
    loss_grad = torch.func.grad(problem.loss_of_logits)

    def jacobian_vector(*v: Tensor) -> Tensor:
        return torch.func.jvp(problem.logits, xs, v)[1]

    def loss_curvature(u: Tensor) -> Tensor:
        return torch.func.jvp(loss_grad, (z,), (u,))[1]

    jv = torch.func.vmap(jacobian_vector)(*vectors)
    hjv = torch.func.vmap(loss_curvature)(jv)
    return tuple(torch.func.vmap(vjp_fn)(hjv))


def _is_oom(err: BaseException) -> bool:
    return isinstance(err, torch.OutOfMemoryError) or "out of memory" in str(err)


def _warn_fallback(problem: _Problem, err: BaseException) -> None:
    # Keyed by the cause, not the callable: methods build a fresh closure per
    # call, and one operator without forward AD should be reported once.
    key = (type(err).__name__, str(err).splitlines()[0][:200] if str(err) else "")
    if key in _warned_fallback:
        return
    _warned_fallback.add(key)
    warnings.warn(
        "Forward-over-reverse HVPs failed for this model "
        f"({type(err).__name__}: {str(err).splitlines()[0][:200]}); using "
        "reverse-over-reverse instead (mode='rev_rev'). Pass mode='rev_rev' to "
        "silence this warning.",
        stacklevel=4,
    )


Kernel = Callable[[_Problem, Any], Tuple[Tensor, ...]]


class _Engine:
    """Runs HVPs for one problem, chunking the vectors, falling back from
    forward-over-reverse to reverse-over-reverse, and halving chunks on OOM.

    The kernels default to Hessian-vector products; :func:`mixed_derivative_rows`
    passes its own (nested directions) and reuses the chunking and fallback."""

    def __init__(
        self,
        problem: _Problem,
        mode: str,
        fwd_rev: Optional[Kernel] = None,
        rev_rev: Optional[Kernel] = None,
    ) -> None:
        self.problem = problem
        self.mode = mode
        self._fwd_rev = fwd_rev or _hvp_fwd_rev
        self._rev_rev_kernel = rev_rev
        self._rev_rev: Optional[_RevRevOperator] = None

    def _rev(self, vectors: Any) -> Tuple[Tensor, ...]:
        if self._rev_rev_kernel is not None:
            return self._rev_rev_kernel(self.problem, vectors)
        if self._rev_rev is None:
            self._rev_rev = _RevRevOperator(self.problem)
        return self._rev_rev(vectors)

    def _once(self, vectors: Tuple[Tensor, ...]) -> Tuple[Tensor, ...]:
        # torch.func transforms ignore an outer no_grad for their own
        # derivatives; the outer no_grad only stops autograd from recording a
        # graph through the model's parameters.
        with torch.no_grad():
            return self._dispatch(vectors)

    def _dispatch(self, vectors: Tuple[Tensor, ...]) -> Tuple[Tensor, ...]:
        if self.mode == "fwd_rev":
            return self._fwd_rev(self.problem, vectors)
        if self.mode == "rev_rev":
            return self._rev(vectors)
        if self.mode == "ggn":
            return _hvp_ggn(self.problem, vectors)
        try:  # auto
            return self._fwd_rev(self.problem, vectors)
        except (ValueError, TypeError):
            raise  # our validation errors and the user's own: never masked
        except Exception as err:
            if _is_oom(err):
                raise
            # Only fall back if reverse-over-reverse works; otherwise the
            # original error is the informative one.
            try:
                result = self._rev(vectors)
            except Exception:
                raise err from None
            _warn_fallback(self.problem, err)
            self.mode = "rev_rev"
            return result

    def apply(
        self,
        make_vectors: Callable[[int, int], Any],
        k: int,
        chunk_size: Optional[int],
        reduce: Callable[[Tuple[Tensor, ...]], Tensor],
        cost_per_vector: int = 1,
    ) -> Tensor:
        """HVPs for vectors ``make_vectors(start, stop)`` over ``0..k-1`` in chunks;
        each chunk's products go through ``reduce`` and are concatenated on dim 0.
        ``cost_per_vector`` scales the memory estimate of one vector (nested
        derivatives carry more tangents)."""
        chunk = k if chunk_size is None else max(1, int(chunk_size))
        if chunk_size is None and k > _AUTO_CHUNK_THRESHOLD:
            chunk = max(1, _auto_chunk(self.problem, k) // cost_per_vector)
        results: List[Tensor] = []
        start = 0
        while start < k:
            stop = min(k, start + chunk)
            try:
                products = self._once(make_vectors(start, stop))
            except Exception as err:
                if not _is_oom(err) or stop - start == 1:
                    if _is_oom(err):
                        raise MemoryError(
                            "Out of memory with one Hessian-vector product at a "
                            "time; reduce the batch size or group features with "
                            "`feature_mask`."
                        ) from err
                    raise
                chunk = max(1, (stop - start) // 2)
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                continue
            results.append(reduce(products))
            start = stop
        return torch.cat(results, dim=0)


def _auto_chunk(problem: _Problem, k: int) -> int:
    """Vectors per pass under the memory budget: each vector costs about three
    times the activations one forward pass saves for backward (tangent forward,
    tangent backward and their saved values). Measured with saved-tensor hooks."""
    saved = [0]

    def pack(t: Tensor) -> Tensor:
        saved[0] += t.numel() * t.element_size()
        return t

    xs = tuple(x.clone().requires_grad_(True) for x in problem.fmt.inputs)
    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        problem.total(*xs)
    per_vector = 3 * saved[0] + sum(
        4 * x.numel() * x.element_size() for x in problem.fmt.inputs
    )
    device = problem.fmt.device
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        budget = free // 2
    else:
        budget = DEFAULT_CPU_MEMORY_BUDGET
    return int(max(1, min(k, budget // max(per_vector, 1))))


def _check_finite(tensors: Tuple[Tensor, ...], what: str) -> None:
    for t in tensors:
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{what} contains NaN or Inf.")


def _warn_if_zero(result: Tensor, objective: str) -> None:
    if result.numel() and not bool(result.any()):
        warnings.warn(
            f"The Hessian of objective={objective!r} is identically zero here. "
            "Piecewise-linear networks (ReLU, max-pool) have zero curvature almost "
            "everywhere: use a curved objective ('cross_entropy', 'log_softmax', "
            "'softmax'), Gaussian smoothing (SmoothHess), or a SoftPlus surrogate "
            "of the activations.",
            ZeroHessianWarning,
            stacklevel=3,
        )


# --------------------------------------------------------------------------- public API


def hvp(
    forward_func: Callable[..., Tensor],
    inputs: TensorOrTuple,
    vectors: TensorOrTuple,
    target: TargetType = None,
    additional_forward_args: Any = None,
    objective: str = "output",
    mode: str = "auto",
    chunk_size: Optional[int] = None,
) -> TensorOrTuple:
    r"""Batched Hessian-vector products ``H_b v`` for every sample ``b``.

    Args:
        forward_func (Callable): The model or function, called as
            ``forward_func(*inputs, *additional_forward_args)``; returns ``(B,)``
            or ``(B, C)``.
        inputs (Tensor or tuple[Tensor, ...]): Inputs with the batch in dim 0.
        vectors (Tensor or tuple[Tensor, ...]): Same structure as ``inputs``.
            Either one vector per sample, shaped like the inputs ``(B, ...)``, or
            ``k`` vectors per sample, shaped ``(B, k, ...)`` (one more dim than
            the inputs).
        target (int, tuple, Tensor or list, optional): Captum target: the output
            class per sample. With ``None``, class objectives use the predicted
            class. Default: None
        additional_forward_args (Any, optional): Passed to ``forward_func``
            after the inputs, not differentiated. Default: None
        objective (str, optional): The per-sample scalar: ``"output"``,
            ``"log_softmax"``, ``"softmax"`` or ``"cross_entropy"``.
            Default: ``"output"``
        mode (str, optional): ``"auto"``, ``"fwd_rev"``, ``"rev_rev"`` or
            ``"ggn"`` (see the module docstring). Default: ``"auto"``
        chunk_size (int, optional): Vectors processed per pass. None picks one
            from a memory budget (and halves it on CUDA out-of-memory).
            Default: None

    Returns:
        Tensor or tuple[Tensor, ...]: The products, in the structure and shape
        of ``vectors``.

    Examples::

        >>> import torch
        >>> from captum_higher_order.hessian import hvp
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Softplus(),
        ...                             torch.nn.Linear(8, 3)).eval()
        >>> x = torch.randn(2, 4)
        >>> v = torch.randn(2, 5, 4)            # 5 vectors per sample
        >>> hvp(model, x, v, target=0).shape
        torch.Size([2, 5, 4])
    """
    problem = _make_problem(
        forward_func, inputs, target, additional_forward_args, objective, mode
    )
    fmt = problem.fmt
    vec_tuple = _format_vectors(vectors, fmt)
    single = vec_tuple[0].dim() == fmt.inputs[0].dim()
    if single:
        vec_tuple = tuple(v.unsqueeze(1) for v in vec_tuple)
    _check_finite(vec_tuple, "`vectors`")
    k = vec_tuple[0].shape[1]
    kfirst = tuple(v.movedim(1, 0) for v in vec_tuple)

    def make(start: int, stop: int) -> Tuple[Tensor, ...]:
        return tuple(v[start:stop] for v in kfirst)

    flat = _Engine(problem, mode).apply(
        make, k, chunk_size, lambda prods: fmt.flatten(prods, lead=2)
    )  # (k, B, F)
    if bool(torch.stack([v.any() for v in vec_tuple]).any()):
        _warn_if_zero(flat, objective)
    out = fmt.unflatten(flat.movedim(0, 1))  # tuple of (B, k, ...)
    if single:
        out = tuple(o.squeeze(1) for o in out)
    return fmt.format_like_inputs(out)


def _format_vectors(vectors: TensorOrTuple, fmt: FormattedInputs) -> Tuple[Tensor, ...]:
    vec = (vectors,) if isinstance(vectors, Tensor) else vectors
    if not isinstance(vec, tuple) or len(vec) != len(fmt.inputs):
        raise ValueError(
            f"`vectors` must have the structure of `inputs` ({len(fmt.inputs)} "
            "tensor(s))."
        )
    out = []
    for i, (v, x) in enumerate(zip(vec, fmt.inputs)):
        if not isinstance(v, Tensor):
            raise TypeError(f"vectors[{i}] must be a Tensor.")
        same = v.shape == x.shape
        stacked = v.dim() == x.dim() + 1 and v.shape[0] == x.shape[0] and (
            v.shape[2:] == x.shape[1:]
        )
        if not (same or stacked):
            raise ValueError(
                f"vectors[{i}] has shape {tuple(v.shape)}; use the input's shape "
                f"{tuple(x.shape)} for one vector per sample, or "
                f"{(x.shape[0], 'k', *x.shape[1:])} for k vectors per sample."
            )
        out.append(v.detach().to(device=x.device, dtype=x.dtype))
    if len({o.dim() - x.dim() for o, x in zip(out, fmt.inputs)}) != 1 or (
        out[0].dim() > fmt.inputs[0].dim()
        and len({o.shape[1] for o in out}) != 1
    ):
        raise ValueError("All tensors in `vectors` need the same number k of vectors.")
    return tuple(out)


def hessian(
    forward_func: Callable[..., Tensor],
    inputs: TensorOrTuple,
    target: TargetType = None,
    additional_forward_args: Any = None,
    objective: str = "output",
    feature_mask: Union[None, Tensor, Tuple[Tensor, ...]] = None,
    mode: str = "auto",
    chunk_size: Optional[int] = None,
    max_features: int = DEFAULT_MAX_DENSE_FEATURES,
) -> Tensor:
    r"""Per-sample Hessians ``(B, F, F)``, or group Hessians ``P^T H P``.

    Features are the flattened elements of all input tensors, in order. With a
    Captum-style ``feature_mask`` the result is ``(B, G, G)`` with entry
    ``1_a^T H 1_b``: the mixed second derivative along the two group indicator
    directions. Built from ``F`` (or ``G``) batched HVPs with basis or
    indicator vectors, chunked; the result is symmetrised.

    Args:
        forward_func (Callable): The model or function.
        inputs (Tensor or tuple[Tensor, ...]): Inputs, batch in dim 0.
        target (int, tuple, Tensor or list, optional): Captum target.
            Default: None
        additional_forward_args (Any, optional): Extra forward arguments.
            Default: None
        objective (str, optional): See :func:`hvp`. Default: ``"output"``
        feature_mask (Tensor or tuple[Tensor, ...], optional): Integer group ids,
            broadcastable to each input (first dim 1 or B), ids shared across
            the tuple. Default: None
        mode (str, optional): See :func:`hvp`. Default: ``"auto"``
        chunk_size (int, optional): Basis vectors per pass. Default: None
        max_features (int, optional): Largest ``F`` (or ``G``) allowed; above it
            a ValueError asks for a ``feature_mask``.
            Default: :data:`DEFAULT_MAX_DENSE_FEATURES` (4096)

    Returns:
        Tensor: ``(B, F, F)`` or ``(B, G, G)``.

    Examples::

        >>> import torch
        >>> from captum_higher_order.hessian import hessian
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.GELU(),
        ...                             torch.nn.Linear(8, 3)).eval()
        >>> hessian(model, torch.randn(2, 4), target=1).shape
        torch.Size([2, 4, 4])
    """
    problem = _make_problem(
        forward_func, inputs, target, additional_forward_args, objective, mode
    )
    fmt = problem.fmt
    groups = format_feature_mask(feature_mask, fmt)
    size = fmt.num_features if groups is None else groups.num_groups
    check_dense_size(
        size, max_features, "The Hessian" if groups is None else "The group Hessian"
    )
    result = _directional_hessian(
        _Engine(problem, mode), fmt, groups, chunk_size
    )
    _warn_if_zero(result, objective)
    return result


def _directional_hessian(
    engine: _Engine,
    fmt: FormattedInputs,
    groups: Optional[FeatureGroups],
    chunk_size: Optional[int],
) -> Tensor:
    batch, dtype, device = fmt.batch_size, fmt.dtype, fmt.device
    num_features = fmt.num_features

    if groups is None:
        size = num_features

        def make(start: int, stop: int) -> Tuple[Tensor, ...]:
            basis = torch.zeros(stop - start, batch, num_features, dtype=dtype, device=device)
            rows = torch.arange(stop - start, device=device)
            basis[rows, :, rows + start] = 1.0
            return fmt.unflatten(basis)

        def reduce(prods: Tuple[Tensor, ...]) -> Tensor:
            return fmt.flatten(prods, lead=2)

    else:
        size = groups.num_groups

        def make(start: int, stop: int) -> Tuple[Tensor, ...]:
            return fmt.unflatten(groups.indicators(start, stop, batch, dtype, device))

        def reduce(prods: Tuple[Tensor, ...]) -> Tensor:
            return groups.project(fmt.flatten(prods, lead=2))

    rows = engine.apply(make, size, chunk_size, reduce)  # (size, B, size)
    matrix = rows.movedim(0, 1)
    return 0.5 * (matrix + matrix.transpose(1, 2))


def value_and_grad(
    forward_func: Callable[..., Tensor],
    inputs: TensorOrTuple,
    target: TargetType = None,
    additional_forward_args: Any = None,
    objective: str = "output",
) -> Tuple[Tensor, TensorOrTuple]:
    """Per-sample objective values ``(B,)`` and their input gradients.

    First order only (one backward); here so methods share the objective and
    input handling with the HVPs. The gradient has the structure of ``inputs``.
    """
    problem = _make_problem(
        forward_func, inputs, target, additional_forward_args, objective
    )
    xs = tuple(x.clone().requires_grad_(True) for x in problem.fmt.inputs)
    with torch.enable_grad():
        values = problem.per_sample(*xs)
        grads = torch.autograd.grad(values.sum(), xs, allow_unused=True)
    grads = tuple(
        torch.zeros_like(x) if g is None else g.detach() for g, x in zip(grads, xs)
    )
    return values.detach(), problem.fmt.format_like_inputs(grads)


# --------------------------------------------------------------------------- Lanczos


class EigenResult(NamedTuple):
    """``eigenvalues`` ``(B, k)`` in descending order (by value, or by magnitude
    for ``which="LM"``); ``eigenvectors`` unit-norm, structured like the inputs
    with ``k`` in dim 1; ``residuals`` ``(B, k)`` are ``||H v - lambda v||``."""

    eigenvalues: Tensor
    eigenvectors: TensorOrTuple
    residuals: Tensor


def _flat_operator(
    engine: _Engine, fmt: FormattedInputs
) -> Callable[[Tensor], Tensor]:
    """``(B, F) -> (B, F)``: one HVP per sample on flat vectors."""

    def matvec(v: Tensor) -> Tensor:
        vec = fmt.unflatten(v.unsqueeze(0))
        return engine.apply(
            lambda s, e: vec, 1, 1, lambda p: fmt.flatten(p, lead=2)
        )[0]

    return matvec


def top_eigenpairs(
    forward_func: Callable[..., Tensor],
    inputs: TensorOrTuple,
    k: int = 1,
    target: TargetType = None,
    additional_forward_args: Any = None,
    objective: str = "output",
    which: str = "LA",
    mode: str = "auto",
    tol: float = 1e-6,
    max_iter: Optional[int] = None,
    seed: int = 0,
) -> EigenResult:
    r"""Top-``k`` Hessian eigenpairs per sample by batched Lanczos.

    Lanczos with full re-orthogonalisation; every step is one batched HVP for
    all samples. When a sample's Krylov space becomes invariant (common: loss
    Hessians of ReLU classifiers have rank below the number of classes) it
    restarts from a fresh random direction, so eigenvalues outside that space
    are still found. Stops when every wanted Ritz pair has residual
    ``<= tol * max |theta|`` or after ``max_iter`` steps (then warns).

    Args:
        forward_func (Callable): The model or function.
        inputs (Tensor or tuple[Tensor, ...]): Inputs, batch in dim 0.
        k (int, optional): Eigenpairs per sample. Default: 1
        target, additional_forward_args, objective, mode: As in :func:`hvp`.
        which (str, optional): ``"LA"`` largest algebraic (``lambda_max`` first)
            or ``"LM"`` largest magnitude. Default: ``"LA"``
        tol (float, optional): Relative residual tolerance. Default: 1e-6
        max_iter (int, optional): Lanczos steps. Default: ``min(F, max(60, 6k))``
        seed (int, optional): Seed of the starting vectors. Default: 0

    Returns:
        EigenResult: ``(eigenvalues, eigenvectors, residuals)``.

    Examples::

        >>> import torch
        >>> from captum_higher_order.hessian import top_eigenpairs
        >>> model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(),
        ...                             torch.nn.Linear(16, 4)).eval()
        >>> res = top_eigenpairs(model, torch.randn(3, 6), k=2,
        ...                      objective="cross_entropy")
        >>> res.eigenvalues.shape
        torch.Size([3, 2])
    """
    if which not in ("LA", "LM"):
        raise ValueError("`which` must be 'LA' (largest value) or 'LM' (largest magnitude).")
    problem = _make_problem(
        forward_func, inputs, target, additional_forward_args, objective, mode
    )
    fmt = problem.fmt
    num_features = fmt.num_features
    if not 1 <= k <= num_features:
        raise ValueError(f"k must be between 1 and the number of features ({num_features}).")
    steps = max_iter if max_iter is not None else min(num_features, max(60, 6 * k))
    steps = max(k, min(steps, num_features))
    matvec = _flat_operator(_Engine(problem, mode), fmt)
    values, vectors, residuals = _lanczos(
        matvec, fmt.batch_size, num_features, k, which, tol, steps, fmt, seed
    )
    if bool((residuals > tol * values.abs().amax(dim=1, keepdim=True).clamp_min(1e-30) * 10).any()):
        warnings.warn(
            f"Lanczos did not reach tol={tol} in {steps} steps "
            f"(largest residual {float(residuals.max()):.2e}); raise max_iter.",
            stacklevel=2,
        )
    _warn_if_zero(values, objective)
    vec_struct = fmt.format_like_inputs(fmt.unflatten(vectors))
    return EigenResult(values, vec_struct, residuals)


def _select(theta: Tensor, k: int, which: str) -> Tensor:
    key = theta if which == "LA" else theta.abs()
    return key.argsort(dim=1, descending=True)[:, :k]


def _lanczos(
    matvec: Callable[[Tensor], Tensor],
    batch: int,
    n: int,
    k: int,
    which: str,
    tol: float,
    steps: int,
    fmt: FormattedInputs,
    seed: int,
) -> Tuple[Tensor, Tensor, Tensor]:
    dtype, device = fmt.dtype, fmt.device
    gen = torch.Generator(device="cpu").manual_seed(seed)

    def random_unit() -> Tensor:
        r = torch.randn(batch, n, generator=gen, dtype=dtype).to(device)
        return r / r.norm(dim=1, keepdim=True)

    basis = torch.zeros(batch, steps + 1, n, dtype=dtype, device=device)
    alpha = torch.zeros(batch, steps, dtype=dtype, device=device)
    beta = torch.zeros(batch, steps, dtype=dtype, device=device)
    basis[:, 0] = random_unit()
    eps = torch.finfo(dtype).eps
    used = steps
    for j in range(steps):
        q = basis[:, j]
        w = matvec(q)
        alpha[:, j] = (w * q).sum(dim=1)
        # Full re-orthogonalisation, twice (Kahan's "twice is enough").
        for _ in range(2):
            coeff = torch.einsum("bjn,bn->bj", basis[:, : j + 1], w)
            w = w - torch.einsum("bj,bjn->bn", coeff, basis[:, : j + 1])
        norm = w.norm(dim=1)
        # "Invariant" relative to the operator's size seen so far (|alpha|,
        # |beta| estimate ||H||), so tiny Hessians are not mistaken for zero.
        size = torch.maximum(alpha[:, : j + 1].abs().amax(dim=1), beta[:, : j + 1].amax(dim=1))
        scale = size.clamp_min(torch.finfo(dtype).tiny) * 1e3 * eps * math.sqrt(n)
        invariant = norm <= scale
        if bool(invariant.any()) and j + 1 < n:
            fresh = random_unit()
            for _ in range(2):
                coeff = torch.einsum("bjn,bn->bj", basis[:, : j + 1], fresh)
                fresh = fresh - torch.einsum("bj,bjn->bn", coeff, basis[:, : j + 1])
            fresh = fresh / fresh.norm(dim=1, keepdim=True)
            w = torch.where(invariant.unsqueeze(1), fresh, w / norm.clamp_min(1e-300).unsqueeze(1))
            norm = torch.where(invariant, torch.zeros_like(norm), norm)
        else:
            w = w / norm.clamp_min(1e-300).unsqueeze(1)
        beta[:, j] = norm
        basis[:, j + 1] = w
        m = j + 1
        if m >= k and (m == steps or m % 5 == 0 or m == n):
            theta, s = _tridiagonal_eigh(alpha[:, :m], beta[:, : m - 1])
            idx = _select(theta, k, which)
            last = s[:, -1, :].gather(1, idx)
            res = (beta[:, m - 1].unsqueeze(1) * last).abs()
            top = theta.gather(1, idx).abs().amax(dim=1, keepdim=True).clamp_min(1e-30)
            if bool((res <= tol * top).all()) or m == n:
                used = m
                break
    m = used
    theta, s = _tridiagonal_eigh(alpha[:, :m], beta[:, : m - 1])
    idx = _select(theta, k, which)
    values = theta.gather(1, idx)
    ritz = s.gather(2, idx.unsqueeze(1).expand(-1, m, -1))  # (B, m, k)
    vectors = torch.einsum("bmn,bmk->bkn", basis[:, :m], ritz)
    vectors = vectors / vectors.norm(dim=2, keepdim=True)
    residuals = (matvec_many(matvec, vectors) - values.unsqueeze(2) * vectors).norm(dim=2)
    return values, vectors, residuals


def matvec_many(matvec: Callable[[Tensor], Tensor], vectors: Tensor) -> Tensor:
    return torch.stack([matvec(vectors[:, i]) for i in range(vectors.shape[1])], dim=1)


def _tridiagonal_eigh(alpha: Tensor, beta: Tensor) -> Tuple[Tensor, Tensor]:
    t = torch.diag_embed(alpha)
    if beta.shape[1]:
        t = t + torch.diag_embed(beta, offset=1) + torch.diag_embed(beta, offset=-1)
    return torch.linalg.eigh(t)


# --------------------------------------------------------------------------- CG


class SolveResult(NamedTuple):
    """``solution`` structured like the inputs; ``residual`` ``(B,)`` is
    ``||b - (lam I - H) d|| / ||b||``; ``iterations`` ``(B,)``; ``converged``
    ``(B,)`` bool; ``hvps`` the number of batched HVP passes used."""

    solution: TensorOrTuple
    residual: Tensor
    iterations: Tensor
    converged: Tensor
    hvps: int


def solve(
    forward_func: Callable[..., Tensor],
    inputs: TensorOrTuple,
    rhs: TensorOrTuple,
    shift: Union[float, Tensor],
    target: TargetType = None,
    additional_forward_args: Any = None,
    objective: str = "output",
    mode: str = "auto",
    tol: float = 1e-6,
    max_iter: Optional[int] = None,
) -> SolveResult:
    r"""Solve ``(shift I - H_b) d_b = rhs_b`` per sample by conjugate gradients.

    ``shift I - H`` must be positive definite (``shift > lambda_max(H)``, see
    :func:`top_eigenpairs`); a direction of non-positive curvature raises a
    ValueError that says so. Every CG step is one batched HVP for all samples
    still running; converged samples are frozen.

    Args:
        forward_func (Callable): The model or function.
        inputs (Tensor or tuple[Tensor, ...]): Inputs, batch in dim 0.
        rhs (Tensor or tuple[Tensor, ...]): Right-hand sides, shaped like inputs.
        shift (float or Tensor): ``lam``, a float or a ``(B,)`` tensor.
        target, additional_forward_args, objective, mode: As in :func:`hvp`.
        tol (float, optional): Stop when ``||r|| <= tol * ||rhs||``.
            Default: 1e-6
        max_iter (int, optional): Iteration cap. Default: ``min(F, 500)``

    Returns:
        SolveResult: solution, relative residual, iterations, converged flags
        and the number of HVP passes.

    Examples::

        >>> import torch
        >>> from captum_higher_order.hessian import solve
        >>> model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(),
        ...                             torch.nn.Linear(8, 3)).eval()
        >>> x = torch.randn(2, 5)
        >>> res = solve(model, x, torch.randn(2, 5), shift=10.0,
        ...             objective="cross_entropy")
        >>> bool(res.converged.all())
        True
    """
    problem = _make_problem(
        forward_func, inputs, target, additional_forward_args, objective, mode
    )
    fmt = problem.fmt
    rhs_tuple = _format_vectors(rhs, fmt)
    if rhs_tuple[0].dim() != fmt.inputs[0].dim():
        raise ValueError("`rhs` must be shaped like the inputs (one vector per sample).")
    b = fmt.flatten(rhs_tuple)
    _check_finite((b,), "`rhs`")
    batch, n = b.shape
    # Python floats go straight to b's dtype (via float32 they would lose digits).
    lam = (shift.detach() if isinstance(shift, Tensor) else torch.tensor(shift, dtype=b.dtype))
    lam = lam.to(dtype=b.dtype, device=b.device).reshape(-1)
    if lam.numel() == 1:
        lam = lam.expand(batch)
    if lam.numel() != batch:
        raise ValueError(f"`shift` must be a float or a ({batch},) tensor.")
    cap = max_iter if max_iter is not None else min(n, 500)
    matvec = _flat_operator(_Engine(problem, mode), fmt)

    def apply_a(v: Tensor) -> Tensor:
        return lam.unsqueeze(1) * v - matvec(v)

    b_norm = b.norm(dim=1).clamp_min(1e-300)
    d = torch.zeros_like(b)
    r = b.clone()
    p = r.clone()
    rr = (r * r).sum(dim=1)
    iterations = torch.zeros(batch, dtype=torch.long)
    active = (rr.sqrt() > tol * b_norm)
    hvps = 0
    for _ in range(cap):
        if not bool(active.any()):
            break
        ap = apply_a(p)
        hvps += 1
        curvature = (p * ap).sum(dim=1)
        bad = active & (curvature <= 0)
        if bool(bad.any()):
            raise ValueError(
                "shift*I - H is not positive definite for sample(s) "
                f"{bad.nonzero().flatten().tolist()}: raise `shift` above the largest "
                "Hessian eigenvalue (see top_eigenpairs)."
            )
        step = torch.where(active, rr / curvature.clamp_min(1e-300), torch.zeros_like(rr))
        d = d + step.unsqueeze(1) * p
        r = r - step.unsqueeze(1) * ap
        rr_new = (r * r).sum(dim=1)
        iterations += active.cpu().long()
        coef = torch.where(active, rr_new / rr.clamp_min(1e-300), torch.zeros_like(rr))
        p = torch.where(active.unsqueeze(1), r + coef.unsqueeze(1) * p, p)
        rr = torch.where(active, rr_new, rr)
        active = active & (rr.sqrt() > tol * b_norm)
    # Report the true residual, not the recursive one.
    true_res = (b - apply_a(d)).norm(dim=1) / b_norm
    hvps += 1
    converged = true_res <= tol * 10
    if not bool(converged.all()):
        warnings.warn(
            f"Conjugate gradients stopped after {int(iterations.max())} iterations "
            f"(max_iter={cap}) with relative "
            f"residual {float(true_res.max()):.2e} > tol={tol}; raise max_iter or "
            "shift.",
            stacklevel=2,
        )
    solution = fmt.format_like_inputs(fmt.unflatten(d))
    return SolveResult(solution, true_res, iterations, converged.cpu(), hvps)


# --------------------------------------------------------------------------- k-th order
# Mixed partial derivatives of order k >= 3 (CrossDerivatives, Lerman et al. 2021).
# Separate from the HVP engine above: the engine applies one second derivative
# to many vectors; here the j directions are nested, one level of
# differentiation each, and a last reverse pass returns a whole row.


def _along(fn: Callable[..., Tensor], direction: Tuple[Tensor, ...]) -> Callable[..., Tensor]:
    """``x -> D fn(x)[direction]``: one forward-mode directional derivative.

    ``fn`` maps the inputs to per-sample values ``(B,)``; since sample ``b``'s
    value depends only on ``x_b``, the tangent is the per-sample derivative."""

    def derivative(*xs: Tensor) -> Tensor:
        return torch.func.jvp(fn, xs, direction)[1]

    return derivative


def _rows_fwd_rev(
    problem: _Problem, levels: Tuple[Tuple[Tensor, ...], ...]
) -> Tuple[Tensor, ...]:
    """Nested ``jvp`` (one per direction) under one ``grad``, vmapped over the
    leading ``m`` dim of every direction tensor (each ``(m, B, *shape)``)."""
    xs = problem.fmt.inputs
    n_in, depth = len(xs), len(levels)
    argnums = tuple(range(n_in))

    def rows_for(*flat: Tensor) -> Tuple[Tensor, ...]:
        fn: Callable[..., Tensor] = problem.per_sample
        for level in range(depth):
            fn = _along(fn, tuple(flat[level * n_in : (level + 1) * n_in]))
        inner = fn
        return torch.func.grad(lambda *x: inner(*x).sum(), argnums=argnums)(*xs)

    flat_dirs = tuple(t for level in levels for t in level)
    return tuple(torch.func.vmap(rows_for)(*flat_dirs))


def _rows_rev_rev(
    problem: _Problem, levels: Tuple[Tuple[Tensor, ...], ...]
) -> Tuple[Tensor, ...]:
    """Reverse-mode only (for operators without forward AD): the first-order
    graph is built once; each direction adds one ``create_graph`` backward."""
    xs = tuple(x.clone().requires_grad_(True) for x in problem.fmt.inputs)
    m = levels[0][0].shape[0]
    with torch.enable_grad():
        total = problem.total(*xs)
        first = _grads_or_zeros(total, xs)
        out: List[Tuple[Tensor, ...]] = []
        for i in range(m):
            g = first
            for level in levels:
                inner = sum((gi * vi[i]).sum() for gi, vi in zip(g, level))
                g = _grads_or_zeros(inner, xs)
            out.append(tuple(t.detach() for t in g))
    return tuple(torch.stack([o[k] for o in out]) for k in range(len(xs)))


def _grads_or_zeros(scalar: Any, xs: Tuple[Tensor, ...]) -> Tuple[Tensor, ...]:
    if not isinstance(scalar, Tensor) or not scalar.requires_grad:
        return tuple(torch.zeros_like(x) for x in xs)
    grads = torch.autograd.grad(scalar, xs, create_graph=True, allow_unused=True)
    return tuple(torch.zeros_like(x) if g is None else g for g, x in zip(grads, xs))


def _mixed_rows(
    problem: _Problem,
    make_directions: Callable[[int, int], Tensor],
    m: int,
    depth: int,
    mode: str = "auto",
    chunk_size: Optional[int] = None,
) -> Tensor:
    """Rows ``grad_x D^depth s_b[u_1..u_depth]`` for ``m`` direction sets.

    ``make_directions(start, stop)`` returns flat directions
    ``(stop - start, depth, B, F)``; the result is ``(m, B, F)``. Runs on
    :class:`_Engine` with nested-direction kernels, so chunking over ``m``
    (halving on OOM) and the reverse-over-reverse fallback are the engine's."""
    fmt = problem.fmt

    def make(start: int, stop: int) -> Tuple[Tuple[Tensor, ...], ...]:
        dirs = make_directions(start, stop)  # (c, depth, B, F)
        return tuple(fmt.unflatten(dirs[:, j]) for j in range(depth))

    engine = _Engine(problem, mode, fwd_rev=_rows_fwd_rev, rev_rev=_rows_rev_rev)
    # Nesting doubles the tangent work per level.
    return engine.apply(
        make, m, chunk_size, lambda rows: fmt.flatten(rows, lead=2),
        cost_per_vector=2 ** (depth - 1),
    )


def mixed_derivative_rows(
    forward_func: Callable[..., Tensor],
    inputs: TensorOrTuple,
    directions: Tensor,
    target: TargetType = None,
    additional_forward_args: Any = None,
    objective: str = "output",
    mode: str = "auto",
    chunk_size: Optional[int] = None,
) -> Tensor:
    r"""Rows of the ``(j+1)``-th derivative tensor, contracted with ``j`` directions.

    For a per-sample objective ``s_b`` and each of ``m`` direction sets
    ``(u_1, ..., u_j)`` this returns, for every sample, the vector

    .. math::
        r_b = \nabla_x \, \frac{\partial^j}{\partial t_1 \cdots \partial t_j}
              s_b\Big(x_b + \sum_i t_i u_i\Big)\Big|_{t=0},

    i.e. ``r_b[l] = D^{j+1} s_b(x_b)[u_1, ..., u_j, e_l]``. With basis
    directions ``u_i = e_{a_i}`` entry ``l`` is the mixed partial
    ``d^{j+1} s_b / dx_{a_1} ... dx_{a_j} dx_l``; with ``j = 1`` it is a
    Hessian-vector product. Order ``k = j + 1`` interactions of Lerman et al.
    (2021, "Explaining Local, Global, and Higher-Order Interactions in Deep
    Learning", ICCV) are entries of these rows.

    Computed as ``j`` nested forward-mode ``torch.func.jvp`` under one
    ``torch.func.grad`` (so one pass yields all ``F`` last indices), vmapped
    over the ``m`` direction sets and batched over samples. ``mode="rev_rev"``
    (and the ``"auto"`` fallback) uses nested ``autograd.grad`` instead.

    Args:
        forward_func (Callable): The model or function.
        inputs (Tensor or tuple[Tensor, ...]): Inputs, batch in dim 0.
        directions (Tensor): Flat directions over the ``F`` flattened features
            of all inputs: ``(m, j, F)`` shared by every sample, or
            ``(m, j, B, F)`` per sample; ``j >= 1``.
        target, additional_forward_args, objective: As in :func:`hvp`.
        mode (str, optional): ``"auto"``, ``"fwd_rev"`` or ``"rev_rev"``.
            Default: ``"auto"``
        chunk_size (int, optional): Direction sets per pass. None picks one
            from a memory budget. Default: None

    Returns:
        Tensor: ``(m, B, F)``.

    Examples::

        >>> import torch
        >>> from captum_higher_order.hessian import mixed_derivative_rows
        >>> f = lambda x: x[:, 0] * x[:, 1] * x[:, 2]
        >>> e = torch.eye(3, dtype=torch.float64)
        >>> dirs = torch.stack([e[0], e[1]]).unsqueeze(0)   # one set (e_0, e_1)
        >>> mixed_derivative_rows(f, torch.ones(1, 3, dtype=torch.float64), dirs)
        tensor([[[0., 0., 1.]]], dtype=torch.float64)
    """
    if mode not in ("auto", "fwd_rev", "rev_rev"):
        raise ValueError(
            f"mode={mode!r} is not available for mixed derivatives; choose 'auto', "
            "'fwd_rev' or 'rev_rev'."
        )
    problem = _make_problem(
        forward_func, inputs, target, additional_forward_args, objective, mode
    )
    fmt = problem.fmt
    if not isinstance(directions, Tensor):
        raise TypeError("`directions` must be a Tensor of shape (m, j, F) or (m, j, B, F).")
    batch, num_features = fmt.batch_size, fmt.num_features
    if directions.dim() == 3:
        directions = directions.unsqueeze(2).expand(-1, -1, batch, -1)
    if (
        directions.dim() != 4
        or directions.shape[1] < 1
        or directions.shape[2] != batch
        or directions.shape[3] != num_features
    ):
        raise ValueError(
            f"`directions` must be (m, j, F) or (m, j, B, F) with j >= 1, B={batch} "
            f"and F={num_features} (the flattened features of all inputs), got "
            f"{tuple(directions.shape)}."
        )
    directions = directions.detach().to(dtype=fmt.dtype, device=fmt.device)
    _check_finite((directions,), "`directions`")
    return _mixed_rows(
        problem,
        lambda s, e: directions[s:e],
        directions.shape[0],
        directions.shape[1],
        mode,
        chunk_size,
    )
