"""The figures ``captum-ho demo`` and ``explain`` write: a side-by-side figure of
maps and layer-cell pairs, an interactions figure of pairwise results, and bar
charts for tabular inputs."""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

from torch import Tensor

from captum_higher_order.cli.registry import METHODS

__all__ = ["split_output", "image_figures", "tabular_figures"]


def split_output(out: Optional[str], default_dir: str, stem: str) -> Tuple[str, str]:
    """``--out`` as a folder or a ``.png`` path -> (main figure, interactions figure)."""
    out = out or default_dir
    if out.lower().endswith((".png", ".pdf", ".svg", ".jpg")):
        base, ext = os.path.splitext(out)
        folder = os.path.dirname(out)
        main, inter = out, f"{base}_interactions{ext}"
    else:
        folder = out
        main = os.path.join(out, f"{stem}.png")
        inter = os.path.join(out, f"{stem}_interactions.png")
    if folder:
        os.makedirs(folder, exist_ok=True)
    return main, inter


def _save(fig: Any, path: str) -> None:
    fig.savefig(path, dpi=110, bbox_inches="tight")


def _of_kind(results: Dict[str, Tensor], kind: str) -> Dict[str, Tensor]:
    return {n: r for n, r in results.items() if METHODS[n].kind == kind}


def _pairs_figure(images: Tensor, pairs: Dict[str, Tensor], pair_names: Sequence[str],
                  region_mask: Optional[Tensor], path: str, k: int, sample: int,
                  sample_label: str) -> None:
    from matplotlib.figure import Figure

    from captum_higher_order import visualization as viz

    fig = Figure(figsize=(13, 3.6 * len(pairs)))
    axes = fig.subplots(len(pairs), 3, squeeze=False)
    for row, (name, res) in enumerate(pairs.items()):
        label = METHODS[name].label
        viz.visualize_interaction_matrix(
            res[sample], pair_names, plt_fig_axis=(fig, axes[row, 0]), use_pyplot=False,
            title=f"{label}: {sample_label}", max_labels=20,
        )
        viz.visualize_top_interactions(
            res[sample], k=8, feature_names=pair_names, plt_fig_axis=(fig, axes[row, 1]),
            use_pyplot=False, title=f"{label}: strongest pairs",
        )
        if region_mask is not None:
            viz.visualize_image_interactions(
                images[sample], res[sample], k=k, region_mask=region_mask,
                plt_fig_axis=(fig, axes[row, 2]), use_pyplot=False,
                title=f"{label}: top {k} pairs",
            )
        else:
            axes[row, 2].axis("off")
    fig.tight_layout()
    _save(fig, path)


def image_figures(images: Tensor, results: Dict[str, Tensor], row_labels: List[str],
                  grid: Optional[Tuple[int, ...]], pair_names: Sequence[str],
                  region_mask: Optional[Tensor], paths: Tuple[str, str], k: int = 4,
                  sample: int = 0) -> List[str]:
    """Write the side-by-side figure and the interactions figure; return the paths."""
    from captum_higher_order import visualization as viz

    written = []
    maps = {METHODS[n].label: r for n, r in _of_kind(results, "map").items()}
    cells = {METHODS[n].label: r for n, r in _of_kind(results, "cells").items()}
    if maps or cells:
        fig, _ = viz.visualize_side_by_side_grid(
            images, maps, cells, row_labels=row_labels,
            grid_shape=None if grid is None else (int(grid[0]), int(grid[1])), k=k,
            use_pyplot=False,
        )
        _save(fig, paths[0])
        written.append(paths[0])
    pairs = _of_kind(results, "pairs")
    if pairs:
        sample_label = row_labels[sample] if sample < len(row_labels) else f"sample {sample}"
        _pairs_figure(images, pairs, pair_names, region_mask, paths[1], k, sample, sample_label)
        written.append(paths[1])
    return written


def tabular_figures(results: Dict[str, Tensor], names: Sequence[str], features: int,
                    paths: Tuple[str, str]) -> List[str]:
    """Bars of sample 0's maps (one panel per method) and of its strongest pairs."""
    from matplotlib.figure import Figure

    from captum_higher_order import visualization as viz

    written = []
    maps = _of_kind(results, "map")
    if maps:
        fig = Figure(figsize=(6, 2.6 * len(maps)))
        axes = fig.subplots(len(maps), 1, squeeze=False)
        for row, (name, res) in enumerate(maps.items()):
            values = res[0].flatten().tolist()
            ax = axes[row, 0]
            ax.bar(range(len(values)), values,
                   color=[viz.POSITIVE_COLOR if v >= 0 else viz.NEGATIVE_COLOR for v in values])
            if features <= 40:
                ax.set_xticks(range(len(values)))
            ax.set_title(f"{METHODS[name].label}, sample 0")
        fig.tight_layout()
        _save(fig, paths[0])
        written.append(paths[0])
    pairs = _of_kind(results, "pairs")
    if pairs:
        fig = Figure(figsize=(6, 3.5 * len(pairs)))
        axes = fig.subplots(len(pairs), 1, squeeze=False)
        for row, (name, res) in enumerate(pairs.items()):
            viz.visualize_top_interactions(
                res[0], k=10, feature_names=names, plt_fig_axis=(fig, axes[row, 0]),
                use_pyplot=False, title=METHODS[name].label,
            )
        fig.tight_layout()
        _save(fig, paths[1])
        written.append(paths[1])
    return written
