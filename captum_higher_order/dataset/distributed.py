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

__all__ = ["Dist", "_RemoteFailure", "combine", "gather_objects", "reduction_device"]


@dataclass
class Dist:
    """Who this process is under torch.distributed (a world of 1 when it is not
    initialised), and the device on which the statistics are reduced."""

    rank: int = 0
    world: int = 1
    group: Any = None
    device: torch.device = torch.device("cpu")
    initialized: bool = False

    @classmethod
    def current(cls, group: Any, compute_device: Optional[torch.device] = None) -> Dist:
        """This process's place in ``group`` (the default group when None).

        Args:
            compute_device: Where the run puts each batch (``explain_dataset``'s
                ``device``), if given: a group that has both a CPU and an NCCL
                backend reduces there."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return cls()
        device = reduction_device(_backend_config(group), compute_device)
        if device.type == "cuda":
            device = _current_cuda_device(compute_device)
        return cls(dist.get_rank(group), dist.get_world_size(group), group, device, True)

    @property
    def enabled(self) -> bool:
        # Also for a world of one: then the collectives run as they would on many
        # ranks (a one-GPU NCCL group checks the NCCL path).
        return self.initialized


def _backend_config(group: Any) -> str:
    """The group's backends, e.g. ``"cuda:nccl"`` or ``"cpu:gloo,cuda:nccl"``."""
    import torch.distributed as dist

    get_config = getattr(dist, "get_backend_config", None)
    if get_config is not None:
        return str(get_config(group))
    return str(dist.get_backend(group))  # pragma: no cover - torch without configs


def reduction_device(backend_config: str, compute_device: Optional[torch.device]) -> torch.device:
    """Where to all-reduce: ``cuda`` when NCCL handles CUDA tensors and either
    the group has no CPU backend (NCCL alone reduces CUDA tensors only) or the
    run computes on CUDA; ``cpu`` otherwise (gloo reduces CPU tensors; its CUDA
    support is partial, so CUDA results are copied to the CPU for it)."""
    config = backend_config.lower().replace(" ", "")
    if ":" in config:  # "device:backend,device:backend"
        by_device = dict(part.split(":", 1) for part in config.split(",") if ":" in part)
    else:  # a bare backend name
        by_device = {"cuda" if "nccl" in config else "cpu": config}
    nccl = "nccl" in by_device.get("cuda", "")
    on_cuda = compute_device is not None and torch.device(compute_device).type == "cuda"
    if nccl and ("cpu" not in by_device or on_cuda):
        return torch.device("cuda")
    return torch.device("cpu")


def _current_cuda_device(compute_device: Optional[torch.device]) -> torch.device:
    """This rank's GPU for NCCL: the current CUDA device, which NCCL and
    ``all_gather_object`` use; a ``device`` that names another GPU is refused
    (the ranks would otherwise meet on mismatched devices and hang)."""
    current = torch.device("cuda", torch.cuda.current_device())
    if compute_device is not None:
        asked = torch.device(compute_device)
        if asked.type == "cuda" and asked.index is not None and asked.index != current.index:
            raise ValueError(
                f"explain_dataset(device={str(asked)!r}) under an NCCL process group, but "
                f"the current CUDA device is {current}; call "
                f"torch.cuda.set_device({asked.index}) before init_process_group (with "
                "torchrun: torch.cuda.set_device(int(os.environ['LOCAL_RANK']))), or pass "
                f"device='cuda' or {str(current)!r}."
            )
    return current


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
