"""The printed summaries of ``captum-ho``: one notation everywhere.

Features of a tabular input are their indices (``3``); image pixels are
``(channel, row, col)``; groups of a pixel grid and cells of a layer's grid are
``(row,col)`` in that grid; a pair is ``A-B`` followed by its signed score.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from captum_higher_order import visualization as viz
from captum_higher_order.cli.registry import METHODS

__all__ = ["pair_text", "cell_names", "feature_names", "map_line", "pair_line",
           "print_sample_results"]


def pair_text(ranked: List[Tuple[Tuple[int, ...], float]], names: Sequence[str]) -> str:
    """``[((0, 1), 2.0)]`` -> ``"0-1 (+2)"``."""
    return ", ".join(f"{'-'.join(names[i] for i in key)} ({value:+.3g})" for key, value in ranked)


def cell_names(grid: Tuple[int, ...]) -> List[str]:
    """``(row,col)`` names of the cells of a 2-d grid, row-major (indices otherwise)."""
    if len(grid) != 2:
        return [str(i) for i in range(int(torch.tensor(grid).prod()))]
    return [f"({r},{c})" for r in range(grid[0]) for c in range(grid[1])]


def feature_names(features: int, grid: Optional[Tuple[int, int]]) -> List[str]:
    """Names of what a pairwise result is indexed by: grid cells or plain features."""
    return cell_names(grid) if grid is not None else [str(i) for i in range(features)]


def map_line(label: str, res: Tensor) -> str:
    """The strongest entry of one sample's map, as an index or ``(channel, row, col)``."""
    flat = res.flatten()
    j = int(flat.abs().argmax())
    where = tuple(int(v) for v in torch.unravel_index(torch.tensor(j), res.shape))
    if len(where) == 3:
        return (f"  {label}: strongest feature {where} (channel, row, col): "
                f"{float(flat[j]):+.3g}")
    position = where if len(where) > 1 else j
    return f"  {label}: strongest feature {position}: {float(flat[j]):+.3g}"


def pair_line(label: str, res: Tensor, names: Sequence[str], what: str) -> str:
    """The three strongest pairs of one sample's ``(G, G)`` result."""
    if res.shape[-1] < 2:
        return f"  {label}: only one {'cell' if what else 'feature'}, no pairs"
    top = viz.top_interactions(res, k=3)
    return f"  {label} top {what}pairs: {pair_text(top, names)}"


def print_sample_results(i: int, results: Dict[str, Tensor], pair_names: Sequence[str],
                         pair_what: str, cells: Sequence[str], cell_what: str) -> None:
    """One line per method for sample ``i`` (maps, pairs, layer cells)."""
    for name, res in results.items():
        spec = METHODS[name]
        if spec.kind == "pairs":
            print(pair_line(spec.label, res[i], pair_names, pair_what))
        elif spec.kind == "cells":
            names = cells if len(cells) == res.shape[1] else [str(j) for j in range(res.shape[1])]
            print(pair_line(spec.label, res[i], names, cell_what))
        else:
            print(map_line(spec.label, res[i]))
