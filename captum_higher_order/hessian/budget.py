"""One memory budget, and chunk sizes derived from it.

Every batched computation of the library (HVP chunks, SmoothHess's noise
passes, TaylorCAM's cell tangents) asks :func:`resolve_budget` how many bytes it
may use beyond what is already allocated, and :class:`ChunkPlanner` how many
vectors fit. The budget is, in order of precedence: the ``memory_budget``
argument of the call; the innermost :func:`memory_budget` context; a fraction
(:data:`DEFAULT_BUDGET_FRACTION`) of the device's free memory (CUDA) or of the
available RAM (CPU); the environment variable ``CAPTUM_HO_MEMORY_BUDGET``
changes that default for a whole process. See "Memory" in docs/design.md.

On CUDA the planner *measures*: the first chunk is small, its peak
(``torch.cuda.max_memory_allocated``) gives the cost per vector, and later
chunks are sized from the measurement. On the CPU, where no allocator
statistics exist, the cost per vector is estimated from the bytes one forward
pass saves for backward (saved-tensor hooks), which the measurements on CUDA
showed to be a tight upper bound for the tangent passes.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import re
from typing import Callable, Iterator, Optional, Sequence, Union

import torch
from torch import Tensor

__all__ = [
    "BudgetLike",
    "DEFAULT_BUDGET_FRACTION",
    "memory_budget",
    "resolve_budget",
    "available_memory",
    "saved_bytes",
    "ChunkPlanner",
]

BudgetLike = Union[None, int, float, str]

#: Share of the free memory a call may use by default, per device type: half
#: of a GPU's free memory, a quarter of the available RAM (which the rest of the
#: user's session shares).
DEFAULT_BUDGET_FRACTION = {"cuda": 0.5, "cpu": 0.25}

#: Used when the available RAM cannot be read (non-Linux without psutil).
FALLBACK_CPU_BYTES = 8 * 2**30

_BUDGET: contextvars.ContextVar[BudgetLike] = contextvars.ContextVar(
    "captum_higher_order_memory_budget", default=None
)

_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def available_memory(device: torch.device) -> int:
    """Free bytes on ``device``: CUDA's free memory, or the RAM the OS reports
    as available (``MemAvailable``) on the CPU."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return FALLBACK_CPU_BYTES


def _parse(value: BudgetLike, device: torch.device) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError("`memory_budget` must be bytes (int), a fraction (float) or '2GiB'.")
    if isinstance(value, int):
        if value <= 0:
            raise ValueError(f"`memory_budget` must be a positive number of bytes, got {value}.")
        return value
    if isinstance(value, float):
        if not 0 < value <= 1:
            raise ValueError(
                f"A float `memory_budget` is a fraction of the free memory in (0, 1], got "
                f"{value}; pass bytes as an int or a string like '2GiB'."
            )
        return int(value * available_memory(device))
    if isinstance(value, str):
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", value)
        unit = match.group(2).lower() if match else None
        if match is None or unit not in _UNITS:
            raise ValueError(
                f"Cannot read memory_budget={value!r}; write e.g. '512MiB', '2GiB' or '1.5GB'."
            )
        return max(1, int(float(match.group(1)) * _UNITS[unit]))
    raise TypeError(
        f"`memory_budget` must be None, bytes (int), a fraction (float) or a string like "
        f"'2GiB', got {type(value).__name__}."
    )


def resolve_budget(memory_budget: BudgetLike, device: torch.device) -> int:
    """Bytes a call on ``device`` may use: the argument, else the context's,
    else ``CAPTUM_HO_MEMORY_BUDGET`` (same forms), else
    :data:`DEFAULT_BUDGET_FRACTION` of the free memory."""
    for value in (memory_budget, _BUDGET.get(), os.environ.get("CAPTUM_HO_MEMORY_BUDGET")):
        parsed = _parse(value, device)
        if parsed is not None:
            return parsed
    fraction = DEFAULT_BUDGET_FRACTION.get(device.type, DEFAULT_BUDGET_FRACTION["cpu"])
    return int(fraction * available_memory(device))


@contextlib.contextmanager
def memory_budget(budget: BudgetLike) -> Iterator[None]:
    """Cap the extra memory of every library call inside the block.

    Args:
        budget (int, float or str): Bytes (``2**30``), a fraction of the free
            memory (``0.25``) or a string (``"512MiB"``, ``"2GB"``).

    Examples::

        >>> import torch
        >>> from captum_higher_order.hessian import hessian, memory_budget
        >>> model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(),
        ...                             torch.nn.Linear(8, 1)).eval()
        >>> with memory_budget("64MiB"):
        ...     h = hessian(model, torch.randn(2, 6))
        >>> h.shape
        torch.Size([2, 6, 6])
    """
    _parse(budget, torch.device("cpu"))  # refuse a malformed budget here, not later
    token = _BUDGET.set(budget)
    try:
        yield
    finally:
        _BUDGET.reset(token)


def saved_bytes(fn: Callable[..., Tensor], inputs: Sequence[Tensor]) -> int:
    """Bytes that one differentiable call ``fn(*inputs)`` saves for backward:
    the activations a tangent or adjoint pass has to keep."""
    total = [0]

    def pack(t: Tensor) -> Tensor:
        total[0] += t.numel() * t.element_size()
        return t

    xs = tuple(x.detach().requires_grad_(True) for x in inputs)
    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(*xs)
    return total[0]


class ChunkPlanner:
    """How many of ``k`` vectors to process per pass under ``budget`` bytes.

    ``estimate`` is the predicted cost of one vector. On CUDA the first chunk
    is capped at ``probe`` vectors and every chunk's measured peak refines the
    cost per vector (the fixed part, e.g. the primal pass, is separated once two
    chunk sizes have been seen); on the CPU the estimate is used throughout.
    """

    def __init__(self, k: int, budget: int, estimate: int, device: torch.device,
                 probe: int = 2) -> None:
        self.k, self.budget, self.device = k, max(1, budget), device
        self.per_vector = max(1, estimate)
        self.fixed = 0
        self.measure = device.type == "cuda" and torch.cuda.is_available()
        self._seen: dict = {}
        self._first = self.measure
        self.probe = probe

    def next_size(self, remaining: int) -> int:
        room = max(self.budget - self.fixed, self.per_vector)
        size = max(1, min(remaining, room // self.per_vector))
        if self._first:
            size = min(size, self.probe)
        return size

    @contextlib.contextmanager
    def measuring(self, size: int) -> Iterator[None]:
        """Wrap one chunk's computation: records its peak extra memory (CUDA)."""
        if not self.measure:
            yield
            return
        torch.cuda.synchronize(self.device)
        base = torch.cuda.memory_allocated(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        yield
        peak = torch.cuda.max_memory_allocated(self.device) - base
        self._record(size, peak)

    def _record(self, size: int, peak: int) -> None:
        self._first = False
        self._seen[size] = max(peak, self._seen.get(size, 0))
        sizes = sorted(self._seen)
        if len(sizes) >= 2:
            lo, hi = sizes[0], sizes[-1]
            per = (self._seen[hi] - self._seen[lo]) / (hi - lo)
            if per > 0:
                self.per_vector = max(1, int(per))
                self.fixed = max(0, int(self._seen[lo] - per * lo))
                return
        # One size seen: attribute everything to the vectors (conservative).
        self.per_vector = max(1, -(-peak // max(size, 1)))
