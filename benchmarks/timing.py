"""Timing helpers shared by the benchmark scripts.

Machines here are shared and noisy, so the scripts report ratios: the method and
its baseline are timed back to back in every round, and the median of the
per-round ratios is the result. CUDA work is synchronised around each timing.

On the CPU every timing runs under the same glibc allocator settings: importing
this module fixes the thresholds that glibc otherwise grows as a process runs,
so a baseline timed first and a method timed after a ``peak_memory`` call (which
changes them to measure) are compared on equal terms.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable, List, Tuple

import torch


def sync(device: str) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn: Callable[[], object], device: str = "cpu") -> float:
    """Wall seconds of one call."""
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def median_time(fn: Callable[[], object], repeats: int, device: str = "cpu") -> float:
    """Median wall seconds over ``repeats`` calls after one warm-up call."""
    fn()
    return statistics.median(timed(fn, device) for _ in range(repeats))


def paired(
    fn: Callable[[], object], base: Callable[[], object], repeats: int, device: str = "cpu"
) -> Tuple[float, float, float]:
    """``fn`` and ``base`` timed back to back each round (after a warm-up of
    both): median seconds of each and the median per-round ratio fn / base."""
    fn(), base()
    t_fn: List[float] = []
    t_base: List[float] = []
    for _ in range(repeats):
        t_fn.append(timed(fn, device))
        t_base.append(timed(base, device))
    ratio = statistics.median(a / b for a, b in zip(t_fn, t_base))
    return statistics.median(t_fn), statistics.median(t_base), ratio


def median_ratio(
    fn: Callable[[], object], base: Callable[[], object], repeats: int, device: str = "cpu"
) -> float:
    """Median per-round ratio time(fn) / time(base); see :func:`paired`."""
    return paired(fn, base, repeats, device)[2]


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def peak_memory(fn: Callable[[], object], device: str = "cpu") -> Tuple[object, float]:
    """``fn()``'s result and the peak extra memory it used, in MiB.

    CUDA: ``max_memory_allocated`` after a reset, minus what was allocated
    before. CPU (Linux, glibc): the resident high-water mark (``VmHWM``, reset
    to the current RSS through ``/proc/self/clear_refs``) minus the RSS before.
    So that freed memory goes back to the system and a repeat's peak is not
    hidden in the allocator's free lists, large blocks are mmap-ed
    (``mallopt(M_MMAP_THRESHOLD)``, which also stops glibc raising the
    threshold) and the heap is trimmed before measuring. (A forked child would
    start clean, but forking a process whose OpenMP pool has run can hang.)
    NaN where that is not available."""
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        out = fn()
        torch.cuda.synchronize()
        return out, (torch.cuda.max_memory_allocated() - base) / 2**20
    if not _return_freed_memory():
        return fn(), float("nan")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # VmHWM := VmRSS
    before = _status_kib("VmRSS")
    try:
        out = fn()
        return out, (_status_kib("VmHWM") - before) / 1024
    finally:
        _fast_allocator_again()


# mallopt parameters (glibc's malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def _libc() -> Any:
    """glibc through ctypes, or None where it is not there."""
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def _return_freed_memory() -> bool:
    """mmap every block over 64 KiB and trim the heap; False off glibc/Linux."""
    libc = _libc()
    try:
        if libc is None or not libc.mallopt(_M_MMAP_THRESHOLD, 64 * 1024):
            return False
        libc.malloc_trim(0)
        _status_kib("VmRSS")
        return True
    except (OSError, AttributeError, KeyError):
        return False


def _fast_allocator_again() -> None:
    """Undo the measuring set-up for the timings that follow: with every block over
    64 KiB mmap-ed, each tensor allocation page-faults and later timings slow down
    (2x on resnet18 solver calls). glibc's dynamic thresholds cannot be switched
    back on, so set them to the values they grow to: blocks under 32 MiB from the
    heap, trimmed above 64 MiB."""
    libc = _libc()
    try:
        if libc is not None:
            libc.mallopt(_M_MMAP_THRESHOLD, 32 * 2**20)
            libc.mallopt(_M_TRIM_THRESHOLD, 64 * 2**20)
    except AttributeError:
        pass


_fast_allocator_again()
