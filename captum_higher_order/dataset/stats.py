"""Running float64 statistics of per-sample results, mergeable across batches,
checkpoints and ranks.

Per element, the running sum of ``q`` and the running sum of squared deviations
``M2`` of ``q`` (Welford 1962), merged batch by batch with the pairwise update of
Chan, Golub & LeVeque (1979), where ``q = a`` for ``"mean"``, ``|a|`` for
``"mean_abs"`` and ``a ** 2`` for ``"rms"``; or the running ``max |a|`` for
``"max_abs"``.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

__all__ = ["REDUCTIONS", "RunningStats", "transform"]

#: Streaming reductions over samples (see :func:`explain_dataset`).
REDUCTIONS = ("mean", "mean_abs", "rms", "max_abs")


def transform(values: Tensor, reduce: str) -> Tensor:
    """The per-sample quantity ``q`` whose mean (or max) is aggregated."""
    values = values.detach().to(torch.float64)
    if reduce == "mean":
        return values
    if reduce == "rms":
        return values.square()
    return values.abs()  # mean_abs, max_abs


class RunningStats:
    """Float64 running statistics of one or several per-sample result tensors.

    For ``mean``/``mean_abs``/``rms``: ``sums[i] = sum_b q_b`` and
    ``m2s[i] = sum_b (q_b - mean)^2``, merged per batch with Chan et al.'s
    pairwise update ``M2 = M2_a + M2_b + delta^2 n_a n_b / (n_a + n_b)``.
    For ``max_abs``: ``maxes[i] = max_b |a_b|``.
    """

    def __init__(self, reduce: str) -> None:
        self.reduce = reduce
        self.count = 0
        self.sums: List[Tensor] = []
        self.m2s: List[Tensor] = []
        self.maxes: List[Tensor] = []

    @property
    def spec(self) -> Optional[List[Tuple[int, ...]]]:
        tensors = self.maxes if self.reduce == "max_abs" else self.sums
        return [tuple(t.shape) for t in tensors] if tensors else None

    def update(self, results: Sequence[Tensor]) -> None:
        n_b = int(results[0].shape[0])
        if n_b == 0:
            return
        n_a = self.count
        first = n_a == 0  # (a rank may hold zero placeholders after a sync)
        if first:
            self.sums, self.m2s, self.maxes = [], [], []
        else:  # resumed statistics live on the CPU until the first batch arrives
            self.to(results[0].device)
        for i, values in enumerate(results):
            q = transform(values, self.reduce)
            if self.reduce == "max_abs":
                batch_max = q.amax(dim=0)
                if first:
                    self.maxes.append(batch_max)
                else:
                    self.maxes[i] = torch.maximum(self.maxes[i], batch_max)
                continue
            s_b = q.sum(dim=0)
            m2_b = (q - s_b / n_b).square().sum(dim=0)
            if first:
                self.sums.append(s_b)
                self.m2s.append(m2_b)
                continue
            delta = s_b / n_b - self.sums[i] / n_a
            self.m2s[i] = self.m2s[i] + m2_b + delta.square() * (n_a * n_b / (n_a + n_b))
            self.sums[i] = self.sums[i] + s_b
        self.count = n_a + n_b

    def merge(self, other: RunningStats) -> None:
        """Fold another set of statistics (e.g. a resumed checkpoint) into this."""
        if other.count == 0:
            return
        if self.count == 0:
            self.count, self.sums, self.m2s, self.maxes = (
                other.count, list(other.sums), list(other.m2s), list(other.maxes)
            )
            return
        n_a, n_b = self.count, other.count
        for i in range(len(other.maxes)):
            self.maxes[i] = torch.maximum(self.maxes[i], other.maxes[i].to(self.maxes[i]))
        for i in range(len(other.sums)):
            s_b = other.sums[i].to(self.sums[i])
            delta = s_b / n_b - self.sums[i] / n_a
            self.m2s[i] = (
                self.m2s[i] + other.m2s[i].to(self.m2s[i])
                + delta.square() * (n_a * n_b / (n_a + n_b))
            )
            self.sums[i] = self.sums[i] + s_b
        self.count = n_a + n_b

    def zeros_like_spec(self, spec: List[Tuple[int, ...]], device: torch.device) -> None:
        """Give a rank that saw no samples zero tensors of the agreed shapes."""
        def zeros() -> List[Tensor]:
            return [torch.zeros(s, dtype=torch.float64, device=device) for s in spec]

        if self.reduce == "max_abs":
            self.maxes = zeros()
        else:
            self.sums, self.m2s = zeros(), zeros()

    def copy(self) -> RunningStats:
        """A shallow copy (the tensors are shared; every update rebinds them)."""
        out = RunningStats(self.reduce)
        out.count = self.count
        out.sums, out.m2s, out.maxes = list(self.sums), list(self.m2s), list(self.maxes)
        return out

    def state_dict(self) -> Dict[str, Any]:
        cpu = [t.detach().cpu() for t in self.sums]
        return {
            "count": self.count,
            "sums": cpu,
            "m2s": [t.detach().cpu() for t in self.m2s],
            "maxes": [t.detach().cpu() for t in self.maxes],
        }

    @classmethod
    def from_state(cls, reduce: str, state: Dict[str, Any]) -> RunningStats:
        stats = cls(reduce)
        stats.count = int(state["count"])
        stats.sums = list(state["sums"])
        stats.m2s = list(state["m2s"])
        stats.maxes = list(state["maxes"])
        return stats

    def to(self, device: Optional[torch.device]) -> RunningStats:
        if device is not None:
            self.sums = [t.to(device) for t in self.sums]
            self.m2s = [t.to(device) for t in self.m2s]
            self.maxes = [t.to(device) for t in self.maxes]
        return self
