"""The engine's contract: what a method may build on.

A method formats its inputs (:mod:`captum_higher_order._inputs`), states its
problem with :func:`make_problem` (or :class:`Problem` for inputs it formatted
itself), and asks for second derivatives in one of three shapes:

* :class:`Engine` ``.apply(make_vectors, k, chunk_size, reduce)``: ``k``
  Hessian-vector products per sample, computed in chunks that fit the memory
  budget, each chunk's products reduced right away (a method keeps only what it
  needs, e.g. group sums);
* :class:`HessianOperator`: flat ``(B, F)`` products one or a few vectors at a
  time, for iterative solvers (it keeps the first-order state between calls and
  counts its passes);
* :func:`~captum_higher_order.hessian.mixed.mixed_rows`: rows of third and
  higher derivative tensors.

Everything that differentiates twice goes through :meth:`Engine.apply` or
:class:`HessianOperator`: mode dispatch and fallback, TorchScript detection,
chunking under the memory budget, out-of-memory halving, precision, the
attention-kernel switch and progress reporting live here once. See
docs/design.md ("The engine").
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, List, Optional, Tuple

import torch
from torch import Tensor, nn

from captum_higher_order._inputs import (
    FormattedInputs,
    TargetType,
    TensorOrTuple,
    ZeroHessianWarning,
    check_forward,
    check_model_state,
    check_objective,
    find_module,
    format_inputs,
    format_target,
    run_forward,
    select_objective,
)
from captum_higher_order._numeric import HALF_DTYPES
from captum_higher_order._progress import inner_progress
from captum_higher_order.hessian.attention import check_attention, math_attention
from captum_higher_order.hessian.budget import (
    BudgetLike,
    ChunkPlanner,
    resolve_budget,
    saved_bytes,
)
from captum_higher_order.hessian.modes import (
    RevRevOperator,
    forward_mode_blocker,
    hvp_fwd_rev,
    hvp_ggn,
)
from captum_higher_order.hessian.precision import (
    check_precision,
    precision_context,
    resolve_precision,
)

__all__ = [
    "MODES",
    "check_mode",
    "Problem",
    "make_problem",
    "Kernel",
    "Engine",
    "HessianOperator",
    "warn_if_zero_curvature",
    "check_finite",
    "is_oom",
]

MODES = ("auto", "fwd_rev", "rev_rev", "ggn")

#: Up to this many vectors, the CPU runs one chunk without estimating memory
#: (the estimate costs a forward pass; small k never strains RAM).
SMALL_K = 16

_warned_fallback: set = set()


def check_mode(mode: str) -> None:
    """Refuse an unknown engine mode with the list of valid ones."""
    if mode not in MODES:
        raise ValueError(f"Unknown mode {mode!r}; choose one of {', '.join(MODES)}.")


def is_oom(err: BaseException) -> bool:
    return isinstance(err, torch.OutOfMemoryError) or "out of memory" in str(err)


#: Phrases of the errors that forward-mode AD or torch.func transforms raise
#: for what they do not support (and reverse mode may): only these fall back.
_FORWARD_AD_PHRASES = (
    "forward ad", "forward-mode", "forward mode", "jvp", "vmap", "functorch",
    "torch.func", "setup_context", "batching rule", "batched", "dual", "tangent",
    "not implemented", "not supported", "jit", "script",
)


def is_forward_ad_error(err: BaseException) -> bool:
    """Whether ``err`` says forward-over-reverse is unsupported for the model (so
    reverse-over-reverse may work), rather than the model's forward failing."""
    if isinstance(err, NotImplementedError):
        return True
    text = str(err).lower()
    return any(phrase in text for phrase in _FORWARD_AD_PHRASES)


def check_half_finite(products: Tuple[Tensor, ...], dtype: torch.dtype) -> None:
    """In float16/bfloat16 a second-order pass can overflow where the output
    does not: raise instead of returning NaN (docs/design.md, "Dtype policy")."""
    if dtype in HALF_DTYPES and not all(bool(torch.isfinite(p).all()) for p in products):
        raise ValueError(
            f"A Hessian-vector product overflowed to NaN/Inf in {dtype} (largest finite "
            f"value {torch.finfo(dtype).max:.4g}). Run the model and inputs in float32 "
            "(model.float(), x.float()) for this input."
        )


def check_finite(tensors: Tuple[Tensor, ...], what: str) -> None:
    for t in tensors:
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{what} contains NaN or Inf.")


# --------------------------------------------------------------------------- problem


@dataclass
class Problem:
    """A model, formatted inputs, targets and the objective to differentiate.

    ``module`` is the user's model when ``forward_func`` is a closure around
    it (TaylorCAM's layer replacement, path points): the engine inspects it for
    TorchScript."""

    forward_func: Callable[..., Tensor]
    fmt: FormattedInputs
    target: Optional[Tensor]
    objective: str
    module: Optional[nn.Module] = field(default=None)

    def per_sample(self, *xs: Tensor) -> Tensor:
        output = run_forward(self.forward_func, xs, self.fmt.additional_forward_args)
        return select_objective(output, self.target, self.objective)

    def total(self, *xs: Tensor) -> Tensor:
        return self.per_sample(*xs).sum()

    def logits(self, *xs: Tensor) -> Tensor:
        return run_forward(self.forward_func, xs, self.fmt.additional_forward_args)

    def loss_of_logits(self, z: Tensor) -> Tensor:
        return select_objective(z, self.target, self.objective).sum()


def make_problem(
    forward_func: Callable[..., Tensor],
    inputs: TensorOrTuple,
    target: TargetType,
    additional_forward_args: Any,
    objective: str,
    mode: str = "auto",
    module: Optional[nn.Module] = None,
    check_output: bool = True,
) -> Problem:
    """Validate and format everything a second-order call needs.

    ``check_output`` runs the model once (no grad) to check its output
    against the inputs' batch (:func:`~captum_higher_order._inputs.check_forward`);
    a closure whose inputs are not the model's own (a layer's activation) passes
    False and checks the model's output itself."""
    check_objective(objective)
    check_mode(mode)
    if not callable(forward_func):
        raise TypeError("`forward_func` must be callable (a model or a function).")
    check_model_state(forward_func)
    fmt = format_inputs(inputs, additional_forward_args)
    target_t = format_target(target, fmt.batch_size)
    if check_output:
        output = check_forward(forward_func, fmt)
        if target_t is not None:
            select_objective(output, target_t, objective)  # target range, objective
    return Problem(forward_func, fmt, target_t, objective, module)


# --------------------------------------------------------------------------- engine

Kernel = Callable[[Problem, Any], Tuple[Tensor, ...]]


def _resolve_mode(problem: Problem, mode: str) -> str:
    """``auto`` on TorchScript becomes ``rev_rev``; an explicit forward-mode
    choice there is refused (it would be silently wrong)."""
    blocker = forward_mode_blocker(problem.forward_func,
                                   problem.module or find_module(problem.forward_func))
    if blocker is None:
        return mode
    if mode == "auto":
        return "rev_rev"
    if mode in ("fwd_rev", "ggn"):
        raise ValueError(
            f"mode={mode!r} uses forward-mode AD, which TorchScript drops after the first "
            f"call ({blocker}), so the Hessian would be silently wrong. Use mode='rev_rev' "
            "(or 'auto', which picks it), or pass the eager nn.Module instead."
        )
    return mode


class Engine:
    """Runs HVPs for one problem: chunks the vectors under the memory budget,
    falls back from forward-over-reverse to reverse-over-reverse, and halves
    chunks on out-of-memory.

    The kernels default to Hessian-vector products;
    :func:`~captum_higher_order.hessian.mixed.mixed_rows` passes its own (nested
    directions) and reuses the chunking and fallback.

    Args:
        problem (Problem): What to differentiate.
        mode (str): One of :data:`MODES`.
        fwd_rev, rev_rev (Kernel, optional): Replacement kernels.
        memory_budget (int, float or str, optional): See
            :func:`~captum_higher_order.hessian.budget.resolve_budget`.
        precision (str, optional): See :mod:`~captum_higher_order.hessian.precision`;
            ``None`` takes the innermost ``hvp_precision`` block, else float32.
    """

    def __init__(
        self,
        problem: Problem,
        mode: str,
        fwd_rev: Optional[Kernel] = None,
        rev_rev: Optional[Kernel] = None,
        memory_budget: BudgetLike = None,
        precision: Optional[str] = None,
    ) -> None:
        check_mode(mode)
        precision = resolve_precision(precision, problem.fmt.dtype)
        check_precision(precision, problem.fmt.dtype)
        self.problem = problem
        self.mode = _resolve_mode(problem, mode)
        check_attention(problem.module or find_module(problem.forward_func),
                        problem.fmt.device, problem.fmt.dtype)
        self.memory_budget = memory_budget
        self.precision = precision
        self._fwd_rev = fwd_rev or hvp_fwd_rev
        self._rev_rev_kernel = rev_rev
        self._rev_rev: Optional[RevRevOperator] = None

    # ------------------------------------------------------------------ one pass

    @contextlib.contextmanager
    def second_order_context(self) -> Iterator[None]:
        """Where every second-order pass runs: no graph through the parameters,
        the requested precision, and PyTorch's math attention kernel (the fused
        flash / memory-efficient kernels have no double backward and no
        forward-mode AD)."""
        # torch.func transforms ignore an outer no_grad for their own
        # derivatives; it only stops autograd recording through parameters.
        # Attention: see hessian/attention.py.
        with torch.no_grad(), math_attention(), precision_context(
            self.precision, self.problem.fmt.device
        ):
            yield

    def products(self, vectors: Any) -> Tuple[Tensor, ...]:
        """One pass: the products for ``vectors`` (a tuple of ``(k, B, ...)``)."""
        with self.second_order_context():
            out = self._dispatch(vectors)
        if self.precision == "bfloat16":
            out = tuple(o.to(self.problem.fmt.dtype) for o in out)
        check_half_finite(out, self.problem.fmt.dtype)
        return out

    def gradient(self) -> Tuple[Tensor, ...]:
        """The first-order input gradient of the objective, one per input.

        In ``rev_rev`` mode it comes from the first-order graph the HVPs reuse
        (built here, inside the second-order context, if not yet), so a solver
        that needs ``g`` and HVPs pays for one gradient, not two."""
        with self.second_order_context():
            if self.mode == "rev_rev" and self._rev_rev_kernel is None:
                if self._rev_rev is None:
                    self._rev_rev = RevRevOperator(self.problem)
                return tuple(g.detach() for g in self._rev_rev.grads)
            xs = tuple(x.clone().requires_grad_(True) for x in self.problem.fmt.inputs)
            with torch.enable_grad():
                grads = torch.autograd.grad(self.problem.total(*xs), xs, allow_unused=True)
        return tuple(torch.zeros_like(x) if g is None else g for g, x in zip(grads, xs))

    def _rev(self, vectors: Any) -> Tuple[Tensor, ...]:
        if self._rev_rev_kernel is not None:
            return self._rev_rev_kernel(self.problem, vectors)
        if self._rev_rev is None:
            self._rev_rev = RevRevOperator(self.problem)
        return self._rev_rev(vectors)

    def _dispatch(self, vectors: Any) -> Tuple[Tensor, ...]:
        if self.mode == "fwd_rev":
            return self._fwd_rev(self.problem, vectors)
        if self.mode == "rev_rev":
            return self._rev(vectors)
        if self.mode == "ggn":
            return hvp_ggn(self.problem, vectors)
        try:  # auto
            return self._fwd_rev(self.problem, vectors)
        except (ValueError, TypeError):
            raise  # our validation errors and the user's own: never masked
        except Exception as err:
            if is_oom(err) or not is_forward_ad_error(err):
                raise  # e.g. the user's forward raised: do not run it again
            # Only fall back if reverse-over-reverse works; otherwise the
            # original error is the informative one.
            try:
                result = self._rev(vectors)
            except Exception:
                raise err from None
            _warn_fallback(err)
            self.mode = "rev_rev"
            return result

    # ------------------------------------------------------------------ chunks

    def apply(
        self,
        make_vectors: Callable[[int, int], Any],
        k: int,
        chunk_size: Optional[int],
        reduce: Callable[[Tuple[Tensor, ...]], Tensor],
        cost_per_vector: int = 1,
        desc: str = "HVPs",
    ) -> Tensor:
        """Products for vectors ``make_vectors(start, stop)`` over ``0..k-1`` in
        chunks; each chunk's products go through ``reduce`` and are concatenated
        on dim 0. ``cost_per_vector`` scales the memory estimate of one vector
        (nested derivatives carry more tangents)."""
        planner = self._planner(k, chunk_size, cost_per_vector)
        results: List[Tensor] = []
        start = 0
        with inner_progress(k, desc, "vec") as bar:
            while start < k:
                size = planner.next_size(k - start)
                stop = start + size
                try:
                    with planner.measuring(size):
                        products = self.products(make_vectors(start, stop))
                        results.append(reduce(products))
                        del products
                except Exception as err:
                    if not is_oom(err):
                        raise
                    if size == 1:
                        raise MemoryError(
                            "Out of memory with one Hessian-vector product at a time; "
                            "reduce the batch size, group features with `feature_mask`, "
                            "or lower `memory_budget`."
                        ) from err
                    planner.shrink(size)
                    if torch.cuda.is_available():
                        torch.cuda.empty_cache()
                    continue
                bar.update(stop - start)
                start = stop
        return torch.cat(results, dim=0)

    def _planner(self, k: int, chunk_size: Optional[int], cost_per_vector: int) -> _Plan:
        if chunk_size is not None:
            return _Plan.fixed(k, check_chunk_size(chunk_size))
        fmt = self.problem.fmt
        device = fmt.device
        on_cuda = device.type == "cuda"
        if not on_cuda and k <= SMALL_K and self.memory_budget is None:
            return _Plan.fixed(k, k)
        budget = resolve_budget(self.memory_budget, device)
        estimate = 0
        if not on_cuda:
            # Each vector costs about three times the activations one forward
            # saves for backward (tangent forward, tangent backward and their
            # saved values), plus a few copies of the inputs.
            estimate = 3 * saved_bytes(self.problem.total, fmt.inputs) + sum(
                4 * x.numel() * x.element_size() for x in fmt.inputs
            )
        return _Plan(ChunkPlanner(k, budget, estimate * cost_per_vector, device))


def check_chunk_size(chunk_size: Any) -> int:
    """A positive int, or a ValueError saying so (0 used to be clamped silently)."""
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(
            f"`chunk_size` must be a positive int (vectors per pass) or None (chosen from "
            f"the memory budget), got {chunk_size!r}."
        )
    return chunk_size


class _Plan:
    """A :class:`ChunkPlanner`, or fixed chunks; both halve on out-of-memory."""

    def __init__(self, planner: Optional[ChunkPlanner], size: int = 0) -> None:
        self.planner, self.size = planner, size
        self.cap: Optional[int] = None

    @classmethod
    def fixed(cls, k: int, size: int) -> _Plan:
        return cls(None, max(1, min(k, size)))

    def next_size(self, remaining: int) -> int:
        size = self.size if self.planner is None else self.planner.next_size(remaining)
        if self.cap is not None:
            size = min(size, self.cap)
        return max(1, min(size, remaining))

    def measuring(self, size: int) -> Any:
        return contextlib.nullcontext() if self.planner is None else self.planner.measuring(size)

    def shrink(self, size: int) -> None:
        self.cap = max(1, size // 2)


def _warn_fallback(err: BaseException) -> None:
    # Keyed by the cause, not the callable: methods build a fresh closure per
    # call, and one operator without forward AD should be reported once.
    first = str(err).splitlines()[0][:200] if str(err) else ""
    key = (type(err).__name__, first)
    if key in _warned_fallback:
        return
    _warned_fallback.add(key)
    warnings.warn(
        f"Forward-over-reverse HVPs failed for this model ({type(err).__name__}: {first}); "
        "using reverse-over-reverse instead (mode='rev_rev'). Pass mode='rev_rev' to "
        "silence this warning.",
        stacklevel=5,
    )


# --------------------------------------------------------------------------- operator


class HessianOperator:
    """``H_b`` as a linear operator on flat per-sample vectors, for solvers.

    ``matvec`` maps ``(B, F) -> (B, F)``, ``matmat`` maps ``(B, m, F) ->
    (B, m, F)`` (``m`` vectors per sample in one pass). ``passes`` counts the
    batched passes and ``hvps`` the products per sample, the cost units the
    methods report."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.fmt = engine.problem.fmt
        self.passes = 0
        self.hvps = 0

    @property
    def shape(self) -> Tuple[int, int, int]:
        """``(B, F, F)``."""
        return (self.fmt.batch_size, self.fmt.num_features, self.fmt.num_features)

    @property
    def dtype(self) -> torch.dtype:
        return self.fmt.dtype

    @property
    def device(self) -> torch.device:
        return self.fmt.device

    def matmat(self, vectors: Tensor) -> Tensor:
        m = vectors.shape[1]
        kfirst = self.fmt.unflatten(vectors.movedim(1, 0))
        products = self.engine.products(kfirst)
        self.passes += 1
        self.hvps += m
        return self.fmt.flatten(products, lead=2).movedim(0, 1)

    def matvec(self, vector: Tensor) -> Tensor:
        return self.matmat(vector.unsqueeze(1))[:, 0]

    __call__ = matvec


def warn_if_zero_curvature(result: Tensor, objective: str) -> None:
    """Warn when an exact Hessian came back identically zero."""
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
