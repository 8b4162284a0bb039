"""Timing helpers shared by the benchmark scripts.

Machines here are shared and noisy, so the scripts report ratios: the method and
its baseline are timed back to back in every round, and the median of the
per-round ratios is the result. CUDA work is synchronised around each timing.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable, List, Tuple

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
