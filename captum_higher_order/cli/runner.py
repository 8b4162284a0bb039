"""Run the chosen methods on one batch: each failure is recorded with a one-line
reason while the others go on; times are per method, and work shared between two
methods is said to be shared rather than timed as 0 s."""

from __future__ import annotations

import os
import time
import traceback
import warnings
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

from torch import Tensor

from captum_higher_order._progress import progress_bar, showing_progress
from captum_higher_order.cli.common import TRACEBACK_ENV, format_seconds, one_line
from captum_higher_order.cli.registry import METHODS, MethodSpec
from captum_higher_order.cli.runners import Context

__all__ = ["Outcome", "run_methods"]


@dataclass
class Outcome:
    """Results (name -> CPU tensor), seconds, sharing and failures of one run."""

    results: Dict[str, Tensor] = field(default_factory=dict)
    seconds: Dict[str, float] = field(default_factory=dict)
    shared_with: Dict[str, str] = field(default_factory=dict)
    failures: Dict[str, str] = field(default_factory=dict)

    def timing_line(self) -> str:
        """``SmoothHess 3.1s, SmoothGrad shared with SmoothHess, ...``."""
        parts: List[str] = []
        for name, seconds in self.seconds.items():
            label = METHODS[name].label
            if name in self.shared_with:
                parts.append(f"{label} shared with {METHODS[self.shared_with[name]].label}")
            else:
                parts.append(f"{label} {format_seconds(seconds)}")
        return ", ".join(parts)


def _run_one(spec: MethodSpec, ctx: Context, outcome: Outcome) -> None:
    ctx.current = spec.name
    start = time.perf_counter()
    owner_before: Optional[str] = ctx.owners.get(spec.shares) if spec.shares else None
    try:
        with warnings.catch_warnings():
            # the zero-Hessian and fallback warnings are expected for ReLU nets here
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", FutureWarning)
            outcome.results[spec.name] = spec.run(ctx).detach().cpu()
    except Exception as err:  # reported per method; the other methods still run
        outcome.failures[spec.name] = one_line(err)
        if os.environ.get(TRACEBACK_ENV):
            traceback.print_exc()
        return
    outcome.seconds[spec.name] = time.perf_counter() - start
    if owner_before is not None and owner_before != spec.name:
        outcome.shared_with[spec.name] = owner_before


def run_methods(specs: Sequence[MethodSpec], ctx: Context,
                show_progress: bool = False) -> Outcome:
    """Run each method on ``ctx``; a bar counts methods and, inside each, the
    methods' own bars count chunks of HVPs / noise passes (when ``show_progress``)."""
    outcome = Outcome()
    with progress_bar(len(specs), "captum-ho", "method", enabled=show_progress) as bar:
        for spec in specs:
            bar.set_postfix_str(spec.label)
            with showing_progress(show_progress):
                _run_one(spec, ctx, outcome)
            bar.update(1)
    return outcome
