"""Running float64 statistics of per-sample results, mergeable across batches,
checkpoints and ranks.

Dense results (:class:`RunningStats`): per element, the running sum of ``q`` and
the running sum of squared deviations ``M2`` of ``q`` (Welford 1962), merged
batch by batch with the pairwise update of Chan, Golub & LeVeque (1979), where
``q = a`` for ``"mean"``, ``|a|`` for ``"mean_abs"`` and ``a ** 2`` for
``"rms"``; or the running ``max |a|`` for ``"max_abs"``.

Sparse rankings (:class:`SetStats`), the per-sample ``top_k`` sets and scores of
``CrossDerivatives(...).attribute(..., top_k=k)``: per feature set that appeared
in some sample's ranking, the number of samples whose ranking holds it
(``hits``) and the same sum, ``M2`` or maximum of ``q`` over those samples. A
sample whose ranking does not hold a set counts as ``q = 0`` for it (see
:meth:`DatasetExplanation.rank` for what that means).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

__all__ = ["REDUCTIONS", "RunningStats", "SetStats", "as_ranking", "stats_from_state", "transform"]

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
            "layout": "dense",
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


# --------------------------------------------------------------------------- sparse rankings


def as_ranking(result: Any) -> Optional[Tuple[Tensor, Tensor]]:
    """``(indices (B, k, order), scores (B, k))`` when ``result`` is a sparse
    ranking (an ``InteractionRanking`` or any tuple with those two fields)."""
    indices, scores = getattr(result, "indices", None), getattr(result, "scores", None)
    if not (isinstance(result, tuple) and isinstance(indices, Tensor)
            and isinstance(scores, Tensor)):
        return None
    return indices, scores


def _merge_tables(
    sets: Tensor, hits: Tensor, sums: Tensor, m2s: Tensor, maxes: Tensor
) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Merge rows that name the same set (``sets`` ``(R, order)``): hits and sums
    add, ``M2 = sum_g [M2_g + n_g (mean_g - mean)^2]`` (Chan et al.'s rule for any
    number of groups), maxima take the max. Rows come out in lexicographic order."""
    unique, inverse = torch.unique(sets, dim=0, return_inverse=True)
    size = unique.shape[0]
    total_hits = torch.zeros(size, dtype=hits.dtype).scatter_add_(0, inverse, hits)
    total_sums = torch.zeros(size, dtype=torch.float64).scatter_add_(0, inverse, sums)
    mean = total_sums / total_hits
    spread = m2s + hits * (sums / hits - mean[inverse]).square()
    total_m2s = torch.zeros(size, dtype=torch.float64).scatter_add_(0, inverse, spread)
    total_maxes = torch.zeros(size, dtype=torch.float64).scatter_reduce_(
        0, inverse, maxes, reduce="amax", include_self=False
    )
    return unique, total_hits, total_sums, total_m2s, total_maxes


class SetStats:
    """Float64 running statistics of sparse per-sample rankings, on the CPU.

    ``count`` is the number of samples; row ``r`` of ``sets`` ``(M, order)`` is a
    feature set that was in ``hits[r]`` samples' rankings, with the sum
    (``sums``), sum of squared deviations (``m2s``) and maximum (``maxes``) of
    ``q`` over those samples. Memory grows with the number of distinct sets seen
    (at most ``count * top_k`` rows), not with ``count`` itself.
    """

    def __init__(self, reduce: str, order: int) -> None:
        self.reduce = reduce
        self.order = order
        self.count = 0
        self.sets = torch.zeros(0, order, dtype=torch.long)
        self.hits = torch.zeros(0, dtype=torch.long)
        self.sums = torch.zeros(0, dtype=torch.float64)
        self.m2s = torch.zeros(0, dtype=torch.float64)
        self.maxes = torch.zeros(0, dtype=torch.float64)

    @property
    def spec(self) -> Dict[str, int]:
        return {"order": self.order}

    def update(self, indices: Tensor, scores: Tensor) -> None:
        """Add one batch: ``indices (B, k, order)``, ``scores (B, k)``."""
        q = transform(scores, self.reduce).cpu().reshape(-1)
        rows = indices.detach().cpu().long().reshape(-1, self.order)
        ones = torch.ones(rows.shape[0], dtype=torch.long)
        self._absorb(rows, ones, q, torch.zeros_like(q), q, int(indices.shape[0]))

    def merge(self, other: SetStats) -> None:
        """Fold another set of statistics (a checkpoint, another rank) into this."""
        self._absorb(other.sets, other.hits, other.sums, other.m2s, other.maxes, other.count)

    def _absorb(self, sets: Tensor, hits: Tensor, sums: Tensor, m2s: Tensor,
                maxes: Tensor, count: int) -> None:
        self.count += count
        if sets.shape[0] == 0:
            return
        table = _merge_tables(
            torch.cat([self.sets, sets]), torch.cat([self.hits, hits]),
            torch.cat([self.sums, sums]), torch.cat([self.m2s, m2s]),
            torch.cat([self.maxes, maxes]),
        )
        self.sets, self.hits, self.sums, self.m2s, self.maxes = table

    def copy(self) -> SetStats:
        out = SetStats(self.reduce, self.order)
        out.merge(self)
        return out

    def to(self, device: Optional[torch.device]) -> SetStats:
        return self  # small tables stay on the CPU

    def state_dict(self) -> Dict[str, Any]:
        return {
            "layout": "sets", "order": self.order, "count": self.count, "sets": self.sets,
            "hits": self.hits, "sums": self.sums, "m2s": self.m2s, "maxes": self.maxes,
        }

    @classmethod
    def from_state(cls, reduce: str, state: Dict[str, Any]) -> SetStats:
        stats = cls(reduce, int(state["order"]))
        stats.count = int(state["count"])
        stats.sets, stats.hits = state["sets"], state["hits"]
        stats.sums, stats.m2s, stats.maxes = state["sums"], state["m2s"], state["maxes"]
        return stats


def stats_from_state(reduce: str, state: Dict[str, Any]) -> Union[RunningStats, SetStats]:
    """The statistics a checkpoint holds (dense unless it says ``layout="sets"``)."""
    if state.get("layout") == "sets":
        return SetStats.from_state(reduce, state)
    return RunningStats.from_state(reduce, state)
