"""The result of :func:`explain_dataset`: values, standard errors and rankings."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from captum_higher_order._inputs import TensorOrTuple
from captum_higher_order._ranking import top_interaction_sets
from captum_higher_order.dataset.stats import RunningStats, SetStats

__all__ = ["DatasetExplanation", "RankedFeature"]


class RankedFeature(NamedTuple):
    """One entry of :meth:`DatasetExplanation.rank`."""

    #: Feature indices: ``(i, j)`` for a pair, ``(i, j, k)`` for a triple, the
    #: index into the per-sample map for first-order maps (prefixed by the input
    #: position for tuple results).
    features: Tuple[int, ...]
    #: The aggregated value.
    value: float
    #: Its standard error across samples (NaN for ``"max_abs"``).
    stderr: float
    #: Feature names for ``features`` when ``feature_names`` were given.
    names: Optional[Tuple[str, ...]] = None
    #: For sparse rankings (``kind == "sets"``): the number of samples whose
    #: ``top_k`` ranking held this set; None for dense results.
    hits: Optional[int] = None


def _auto_kind(values: Tuple[Tensor, ...], sample_shapes: Tuple[Tuple[int, ...], ...]) -> str:
    if len(values) != 1:
        return "map"
    shape = tuple(values[0].shape)
    if len(sample_shapes) == 1 and shape == tuple(sample_shapes[0]):
        return "map"
    if len(shape) >= 2 and len(set(shape)) == 1:
        return "interaction"
    return "map"


def _summaries(stats: RunningStats) -> Tuple[List[Tensor], List[Tensor], List[Tensor]]:
    """(value, stderr, std) per result tensor, float64 on the CPU."""
    n = stats.count
    values, stderrs, stds = [], [], []
    if stats.reduce == "max_abs":
        for m in stats.maxes:
            m = m.detach().cpu()
            nan = torch.full_like(m, math.nan)
            values.append(m)
            stderrs.append(nan)
            stds.append(nan.clone())
        return values, stderrs, stds
    for s, m2 in zip(stats.sums, stats.m2s):
        s, m2 = s.detach().cpu(), m2.detach().cpu()
        mean = s / n
        std = (m2.clamp_min(0) / (n - 1)).sqrt() if n > 1 else torch.full_like(s, math.nan)
        se = std / math.sqrt(n)
        if stats.reduce == "rms":
            rms = mean.clamp_min(0).sqrt()
            # d sqrt(u) = du / (2 sqrt(u)); an all-zero element has no spread.
            se = torch.where(rms > 0, se / (2 * rms), torch.zeros_like(se))
            mean = rms
        values.append(mean)
        stderrs.append(se)
        stds.append(std)
    return values, stderrs, stds


def _set_summaries(stats: SetStats) -> Tuple[Tensor, Tensor, Tensor]:
    """(value, stderr, std) per set, a sample whose ranking lacks the set counting
    as ``q = 0``: the hit group (``hits``, mean, ``M2``) merged with a group of
    ``count - hits`` zeros by Chan et al.'s pairwise rule."""
    n = stats.count
    if stats.reduce == "max_abs":
        nan = torch.full_like(stats.maxes, math.nan)
        return stats.maxes.clone(), nan, nan.clone()
    hits = stats.hits.to(torch.float64)
    mean = stats.sums / n
    m2 = stats.m2s + hits * (stats.sums / hits - mean).square() + (n - hits) * mean.square()
    std = (m2.clamp_min(0) / (n - 1)).sqrt() if n > 1 else torch.full_like(mean, math.nan)
    se = std / math.sqrt(n)
    if stats.reduce == "rms":
        rms = mean.clamp_min(0).sqrt()
        se = torch.where(rms > 0, se / (2 * rms), torch.zeros_like(se))
        mean = rms
    return mean, se, std


@dataclass
class DatasetExplanation:
    """The aggregated explanation of a dataset, returned by :func:`explain_dataset`.

    Attributes:
        value (Tensor or tuple[Tensor, ...]): The aggregate per element, float64 on
            the CPU, shaped like one sample's result: ``(F, F)`` for pairwise
            interactions, the input shape for first-order maps (a tuple for
            tuple inputs).
        stderr (Tensor or tuple[Tensor, ...]): Standard error of ``value`` across
            samples: ``std / sqrt(count)`` for ``"mean"`` and ``"mean_abs"``, the
            delta-method ``stderr(mean(a^2)) / (2 rms)`` for ``"rms"``, NaN for
            ``"max_abs"`` (a maximum has no standard error).
        std (Tensor or tuple[Tensor, ...]): Sample standard deviation across
            samples of the aggregated quantity (``a``, ``|a|`` or ``a^2``; NaN for
            ``"max_abs"``).
        count (int): Number of samples aggregated.
        batches (int): Number of batches consumed (positions in the iterable).
        reduce (str): The reduction.
        kind (str): ``"interaction"`` (symmetric ``(F, ..., F)`` results, ranked
            over feature sets), ``"map"`` (ranked over elements) or ``"sets"``
            (sparse per-sample rankings, e.g. ``CrossDerivatives`` with
            ``top_k``: ``value[r]`` belongs to the feature set ``sets[r]``).
        sets (Tensor or None): For ``kind == "sets"``: ``(M, order)`` long, every
            feature set that was in some sample's ranking, in lexicographic order.
        hits (Tensor or None): For ``kind == "sets"``: ``(M,)`` long, the number
            of samples whose ranking held each set.
    """

    value: TensorOrTuple
    stderr: TensorOrTuple
    std: TensorOrTuple
    count: int
    batches: int
    reduce: str
    kind: str
    sets: Optional[Tensor] = None
    hits: Optional[Tensor] = None

    @classmethod
    def from_stats(
        cls, stats: Union[RunningStats, SetStats], batches: int, is_tuple: bool,
        kind: Optional[str], sample_shapes: Tuple[Tuple[int, ...], ...],
    ) -> DatasetExplanation:
        """The explanation of finished running statistics."""
        if isinstance(stats, SetStats):
            value, se, std = _set_summaries(stats)
            return cls(value, se, std, stats.count, batches, stats.reduce, "sets",
                       stats.sets.clone(), stats.hits.clone())
        values, stderrs, stds = _summaries(stats)
        kind = kind or _auto_kind(tuple(values), sample_shapes)

        def pack(ts: List[Tensor]) -> TensorOrTuple:
            return tuple(ts) if is_tuple else ts[0]

        return cls(pack(values), pack(stderrs), pack(stds), stats.count, batches,
                   stats.reduce, kind)

    def rank(
        self,
        k: int = 10,
        *,
        include_diagonal: bool = False,
        feature_names: Optional[Sequence[str]] = None,
    ) -> List[RankedFeature]:
        """The ``k`` strongest entries, by absolute aggregated value.

        For ``kind == "interaction"`` the candidates are feature sets with strictly
        increasing indices ``i < j (< l ...)`` (each unordered pair once; the
        diagonal, pure second derivatives, only with ``include_diagonal=True``,
        then ``i <= j``). For maps every element is a candidate.

        For ``kind == "sets"`` (per-sample ``top_k`` rankings, e.g.
        ``CrossDerivatives(model)`` with ``attribute_kwargs={"order": 3,
        "top_k": 5}``) the candidates are the sets that were in some sample's
        ranking. A sample whose ranking does not hold a set counts as zero for
        it, so a set's value is ``sum over the samples that ranked it / count``
        (``"mean"``, ``"mean_abs"``; ``"rms"`` likewise with squares) or the
        largest score it had (``"max_abs"``). For absolute scores this is a
        lower bound of the dense aggregate (which would also add the scores
        below each sample's ``k``-th), exact for a set ranked in every sample
        (``hits == count``); raise ``top_k`` to tighten it.
        :attr:`RankedFeature.hits` says in how many samples each set was ranked.

        Args:
            k (int, optional): How many entries. Default: 10
            include_diagonal (bool, optional): Also rank repeated indices
                (``(i, i)``) of interaction results. Default: False
            feature_names (sequence of str, optional): Names of the flattened
                features, used to fill :attr:`RankedFeature.names`. Default: None

        Returns:
            list[RankedFeature]: ``(features, value, stderr, names)``, strongest first.
        """
        if k < 1:
            raise ValueError(f"k must be a positive integer, got {k}.")
        if self.kind == "sets":
            return self._rank_sets(k, feature_names)
        values = self.value if isinstance(self.value, tuple) else (self.value,)
        stderrs = self.stderr if isinstance(self.stderr, tuple) else (self.stderr,)
        entries: List[Tuple[float, Tuple[int, ...], float, float]] = []
        for pos, (val, se) in enumerate(zip(values, stderrs)):
            prefix = (pos,) if isinstance(self.value, tuple) else ()
            for index in self._top_indices(val, k, include_diagonal):
                entry_value = float(val[index])
                entries.append((abs(entry_value), prefix + index, entry_value, float(se[index])))
        entries.sort(key=lambda e: -e[0])
        out = []
        for _, index, entry_value, entry_se in entries[:k]:
            names = None
            if feature_names is not None:
                names = tuple(str(feature_names[i]) for i in index)
            out.append(RankedFeature(index, entry_value, entry_se, names))
        return out

    def _rank_sets(
        self, k: int, feature_names: Optional[Sequence[str]]
    ) -> List[RankedFeature]:
        assert isinstance(self.value, Tensor) and isinstance(self.stderr, Tensor)
        assert self.sets is not None and self.hits is not None
        # Strongest first; equal values: ranked in more samples first, then the
        # sets' lexicographic order (stable sorts).
        by_hits = torch.argsort(self.hits, descending=True, stable=True)
        by_value = torch.argsort(self.value[by_hits].abs(), descending=True, stable=True)
        out = []
        for r in by_hits[by_value][:k].tolist():
            features = tuple(int(i) for i in self.sets[r].tolist())
            names = None
            if feature_names is not None:
                names = tuple(str(feature_names[i]) for i in features)
            out.append(RankedFeature(features, float(self.value[r]), float(self.stderr[r]),
                                     names, int(self.hits[r])))
        return out

    def _top_indices(
        self, val: Tensor, k: int, include_diagonal: bool
    ) -> List[Tuple[int, ...]]:
        """Indices into ``val`` of its ``k`` largest candidates by magnitude."""
        if self.kind == "interaction" and val.dim() >= 2 and len(set(val.shape)) == 1:
            sets, _ = top_interaction_sets(val, k=k, include_diagonal=include_diagonal)
            return [tuple(s) for s in sets.tolist()]
        if val.dim() == 0:
            return [()]
        flat = val.abs().reshape(-1)
        top = torch.topk(flat, min(k, flat.numel())).indices
        coords = torch.unravel_index(top, tuple(val.shape))
        return [tuple(int(c[i]) for c in coords) for i in range(top.numel())]

    def as_dict(self) -> Dict[str, Any]:
        """Plain data (tensors, ints, strings) for ``torch.save``."""
        out: Dict[str, Any] = {
            "value": self.value, "stderr": self.stderr, "std": self.std,
            "count": self.count, "batches": self.batches, "reduce": self.reduce,
            "kind": self.kind,
        }
        if self.kind == "sets":
            out.update(sets=self.sets, hits=self.hits)
        return out
