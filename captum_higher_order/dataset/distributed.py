"""Combining the ranks' running statistics under ``torch.distributed``.

Dense statistics: counts, sums and maxima add (or max) up with ``all_reduce``;
the sums of squared deviations combine as ``M2 = sum_r [M2_r + n_r (mean_r -
mean)^2]`` (within plus between ranks), the same pairwise rule that merges
batches. Sparse rankings' tables (small, on the CPU) are gathered and merged in
rank order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple, Union

import torch

from captum_higher_order.dataset.stats import RunningStats, SetStats

__all__ = ["Dist", "_RemoteFailure", "combine", "gather_objects"]


@dataclass
class Dist:
    """Who this process is under torch.distributed (world of 1 when not)."""

    rank: int = 0
    world: int = 1
    group: Any = None
    device: torch.device = torch.device("cpu")

    @classmethod
    def current(cls, group: Any) -> Dist:
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return cls()
        backend = str(dist.get_backend(group)).lower()
        device = torch.device("cpu")
        if "nccl" in backend:
            device = torch.device("cuda", torch.cuda.current_device())
        return cls(dist.get_rank(group), dist.get_world_size(group), group, device)

    @property
    def enabled(self) -> bool:
        return self.world > 1


# Named with an underscore since its name shows in the error messages users see
# ("_RemoteFailure: explain_dataset failed on rank r: ...").
class _RemoteFailure(RuntimeError):
    """Another rank failed; raised on every healthy rank at the next sync."""


def combine(
    ctx: Dist, local: Union[RunningStats, SetStats], spec: Union[List[Any], Dict[str, int]]
) -> Union[RunningStats, SetStats]:
    """Every rank's statistics combined; ``spec`` is what the ranks agreed on:
    the result shapes (dense) or ``{"order": k}`` (sparse rankings)."""
    if isinstance(spec, dict):
        return _combine_sets(ctx, local, int(spec["order"]))
    assert isinstance(local, RunningStats)
    return _combine_dense(ctx, local, [tuple(s) for s in spec])


def _combine_sets(ctx: Dist, local: Union[RunningStats, SetStats], order: int) -> SetStats:
    """Gather the ranks' tables and merge them in rank order (a rank that saw no
    samples sends only its count)."""
    state: Optional[Dict[str, Any]] = local.state_dict() if isinstance(local, SetStats) else None
    out = SetStats(local.reduce, order)
    for rank_state in gather_objects(ctx, state):
        if rank_state is not None:
            out.merge(SetStats.from_state(local.reduce, rank_state))
    return out


def _combine_dense(
    ctx: Dist, local: RunningStats, spec: List[Tuple[int, ...]]
) -> RunningStats:
    """All-reduce the ranks' statistics: counts, sums and maxima add / max up;
    ``M2 = sum_r [M2_r + n_r (mean_r - mean)^2]`` (within plus between ranks)."""
    import torch.distributed as dist

    if local.spec is None:
        local.zeros_like_spec(spec, ctx.device)
    # Copies on the communication device (CPU for gloo, the rank's GPU for
    # nccl); the local accumulators stay where the results are computed.
    local = local.copy().to(ctx.device)
    out = RunningStats(local.reduce)
    count = torch.tensor([float(local.count)], dtype=torch.float64, device=ctx.device)
    if local.reduce == "max_abs":
        dist.all_reduce(count, group=ctx.group)
        flat = torch.cat([m.reshape(-1) for m in local.maxes])
        dist.all_reduce(flat, op=dist.ReduceOp.MAX, group=ctx.group)
        out.maxes = [p.reshape(s) for p, s in zip(flat.split([math.prod(s) for s in spec]), spec)]
        out.count = int(count.item())
        return out
    sizes = [math.prod(s) for s in spec]
    flat = torch.cat([count] + [s.reshape(-1) for s in local.sums])
    dist.all_reduce(flat, group=ctx.group)
    total = int(flat[0].item())
    sums = [p.reshape(s) for p, s in zip(flat[1:].split(sizes), spec)]
    parts = []
    for s_r, m2_r, s_g in zip(local.sums, local.m2s, sums):
        if local.count == 0 or total == 0:
            parts.append(m2_r.reshape(-1))
            continue
        between = (s_r / local.count - s_g / total).square() * local.count
        parts.append((m2_r + between).reshape(-1))
    m2 = torch.cat(parts)
    dist.all_reduce(m2, group=ctx.group)
    out.count, out.sums = total, sums
    out.m2s = [p.reshape(s) for p, s in zip(m2.split(sizes), spec)]
    return out


def gather_objects(ctx: Dist, obj: Any) -> List[Any]:
    """Every rank's ``obj``, in group-rank order."""
    import torch.distributed as dist

    gathered: List[Any] = [None] * ctx.world
    dist.all_gather_object(gathered, obj, group=ctx.group)
    return gathered
