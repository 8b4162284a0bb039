"""What ``captum-ho global`` writes (ranking, figure, ``global.pt``, JSON), and the
``torchrun`` set-up it runs inside."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
from typing import Any, Dict, Iterator, List, Optional, Sequence

import torch
from torch import Tensor

from captum_higher_order.cli.common import CLIError

__all__ = ["distributed", "report"]


@contextlib.contextmanager
def distributed(device: torch.device) -> Iterator[bool]:
    """Initialise torch.distributed from torchrun's environment for the block
    (yields True if this call did, and then tears it down)."""
    import torch.distributed as dist

    started = False
    if (int(os.environ.get("WORLD_SIZE", "1")) > 1 and dist.is_available()
            and not dist.is_initialized()):
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30))
        started = True
    try:
        yield started
    finally:
        if started:
            dist.destroy_process_group()


def _rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def _checked_names(result: Any, given: Optional[Sequence[str]]) -> Optional[List[str]]:
    if given is None:
        return None
    value = result.value[0] if isinstance(result.value, tuple) else result.value
    size = value.shape[0] if result.kind == "interaction" else value.numel()
    if len(given) != size:
        raise CLIError(f"{len(given)} feature names for {size} features.")
    return list(given)


def _bars(ax: Any, result: Any, ranked: List[Any], title: str) -> None:
    labels = [" x ".join(e.names) if e.names else " x ".join(str(i) for i in e.features)
              for e in ranked]
    values = [e.value for e in ranked][::-1]
    errors = [0.0 if e.stderr != e.stderr else 1.96 * e.stderr for e in ranked][::-1]
    ax.barh(range(len(ranked)), values, xerr=errors, color="tab:blue", ecolor="black",
            capsize=2)
    ax.set_yticks(range(len(ranked)))
    ax.set_yticklabels(labels[::-1], fontsize=8)
    ax.set_xlabel(f"{result.reduce} over {result.count} samples (95% CI)")
    ax.set_title(title)


def _matrix(fig: Any, ax: Any, result: Any, names: Optional[List[str]]) -> None:
    mat = result.value.clone()
    mat.fill_diagonal_(0)
    lim = float(mat.abs().max()) or 1.0
    signed = result.reduce == "mean"
    im = ax.imshow(mat.numpy(), cmap="RdBu_r" if signed else "viridis",
                   vmin=-lim if signed else 0, vmax=lim)
    ax.set_title("aggregated interactions (diagonal hidden)")
    if names is not None and len(names) <= 40:
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=90, fontsize=7)
        ax.set_yticks(range(len(names)))
        ax.set_yticklabels(names, fontsize=7)
    fig.colorbar(im, ax=ax)


def _figure(result: Any, ranked: List[Any], names: Optional[List[str]], path: str,
            title: str) -> None:
    from matplotlib.figure import Figure

    value = result.value
    show_matrix = result.kind == "interaction" and isinstance(value, Tensor) and value.dim() == 2
    fig = Figure(figsize=(11 if show_matrix else 6, 4.5))
    axes = fig.subplots(1, 2 if show_matrix else 1, squeeze=False)
    _bars(axes[0][0], result, ranked, title)
    if show_matrix:
        _matrix(fig, axes[0][1], result, names)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def report(out: str, top: int, method: str, result: Any, names: Optional[Sequence[str]],
           settings: Dict[str, Any]) -> None:
    """Print the ranking and write the figure, ``global.pt`` and ``global_top.json``
    into ``out`` (rank 0 only under torchrun)."""
    checked = _checked_names(result, names)
    if _rank() != 0:
        return
    os.makedirs(out, exist_ok=True)
    ranked = result.rank(top, feature_names=checked)
    print(f"{method}: {result.reduce} over {result.count} samples ({result.batches} batches)")
    print(f"{'rank':>4}  {'features':<28} {'value':>12} {'stderr':>10}")
    for i, e in enumerate(ranked, 1):
        label = ", ".join(e.names) if e.names else ", ".join(str(j) for j in e.features)
        print(f"{i:>4}  {label:<28} {e.value:>12.5g} {e.stderr:>10.3g}")
    figure = os.path.join(out, "global_interactions.png")
    _figure(result, ranked, checked, figure, f"top {len(ranked)}: {method}")
    torch.save(dict(result.as_dict(), settings=settings, feature_names=checked),
               os.path.join(out, "global.pt"))
    with open(os.path.join(out, "global_top.json"), "w") as f:
        json.dump({"settings": settings, "count": result.count, "reduce": result.reduce,
                   "top": [{"features": list(e.features), "names": e.names, "value": e.value,
                            "stderr": e.stderr} for e in ranked]}, f, indent=2)
    print(f"wrote {figure}, global.pt and global_top.json to {out}")
