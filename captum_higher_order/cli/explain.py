"""``captum-ho explain``: a user's model on an image or a tensor file.

The steps, one function each: read the model and the input, run the forward
once to fix the target and the objective, group pixels for pairwise methods,
keep the methods that apply, run them (a failing one is reported, the others
go on), print the summary, and write the figures and a ``.pt`` with the
results and how they were made.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from captum_higher_order.cli import applicable
from captum_higher_order.cli.common import CLIError, device_from_flag, smoke, versions
from captum_higher_order.cli.figures import image_figures, split_output, tabular_figures
from captum_higher_order.cli.inputs import grid_mask, layer_grid, load_input
from captum_higher_order.cli.loading import check_output, find_layer, load_model
from captum_higher_order.cli.method_args import per_method
from captum_higher_order.cli.registry import METHODS, MethodSpec, resolve_methods
from captum_higher_order.cli.runner import Outcome, run_methods
from captum_higher_order.cli.runners import Context
from captum_higher_order.cli.summary import feature_names, print_sample_results

__all__ = ["run_explain", "add_explain_parser"]

CLASS_OBJECTIVES = ("log_softmax", "softmax", "cross_entropy")


@dataclass
class Scores:
    """The forward's output, the explained target and the objective setting."""

    out: Tensor
    target: Optional[Tensor]
    objective: Optional[str]  # None: each method's own default for class outputs

    @property
    def classes(self) -> int:
        return 1 if self.out.dim() == 1 else int(self.out.shape[1])


def forward_scores(model: nn.Module, x: Tensor, target: Optional[int],
                   objective: str) -> Scores:
    """Run the model once: check its output, resolve ``--target`` and ``--objective``.

    A single output (``(B,)`` or ``(B, 1)``) is explained as is (objective
    ``output``): class objectives would be constant there.
    """
    try:
        with torch.no_grad():
            out = model(x)
    except Exception as err:
        raise CLIError(
            f"the model cannot run on the input of shape {tuple(x.shape)}: {err}. "
            "Check --batched, --size, --grayscale and the channel order (C, H, W)."
        ) from None
    out = check_output(out, x.shape[0])
    scores = Scores(out, None, None if objective == "auto" else objective)
    if scores.classes == 1:
        if objective in CLASS_OBJECTIVES:
            raise CLIError(f"--objective {objective} needs class scores (B, C) with C > 1; "
                           "the model returns one output: use --objective output.")
        scores.objective = "output"
        if out.dim() == 2:
            scores.target = torch.zeros(len(x), dtype=torch.long, device=x.device)
        return scores
    if target is None:
        scores.target = out.argmax(1)
    elif not 0 <= target < out.shape[1]:
        raise CLIError(f"--target {target} is out of range for {out.shape[1]} classes.")
    else:
        scores.target = torch.full((len(x),), target, dtype=torch.long, device=x.device)
    return scores


def pair_grouping(grid: Optional[int], x: Tensor,
                  specs: Sequence[MethodSpec]) -> Tuple[Optional[Tensor], Optional[int]]:
    """The ``feature_mask`` of pairwise methods: a ``--grid`` of superpixels (by
    default 8 x 8 for images above 1024 features), else None (every feature)."""
    if not any(s.kind == "pairs" for s in specs):
        return None, None
    image_like = x.dim() == 4
    if grid is None and image_like and x[0].numel() > 1024:
        grid = 8
    if not grid:
        return None, None
    if not image_like:
        raise CLIError("--grid groups image pixels; the input is not (B, C, H, W).")
    return grid_mask(x.shape[2], x.shape[3], grid).to(x.device), grid


def _layer_name(model: nn.Module, layer: Optional[nn.Module]) -> Optional[str]:
    return next((n for n, m in model.named_modules() if m is layer), None)


def _print_summary(x: Tensor, scores: Scores, results: Dict[str, Tensor],
                   names: Sequence[str], grid: Optional[int],
                   cells: Optional[Tuple[int, ...]]) -> None:
    probs = torch.softmax(scores.out, 1) if scores.classes > 1 else None
    what = f"{grid}x{grid}-grid cell (row,col) " if grid else ""
    cell_list = feature_names(0, None if cells is None else (cells[0], cells[1]))
    cell_what = "layer cell (row,col) " if cells is not None else ""
    for i in range(len(x)):
        if probs is not None and scores.target is not None:
            t = int(scores.target[i])
            print(f"sample {i}: target {t} (probability {float(probs[i, t]):.3f}, "
                  f"predicted {int(scores.out[i].argmax())})")
        else:
            print(f"sample {i}: output {float(scores.out[i].flatten()[0]):.4g}")
        print_sample_results(i, results, names, what, cell_list, cell_what)


def _meta(args: argparse.Namespace, scores: Scores, ctx: Context, outcome: Outcome,
          skipped: Dict[str, str], grid: Optional[int]) -> Dict[str, Any]:
    """How the results were made, stored next to them (loads with weights_only)."""
    return {
        "command": "explain", "model": args.model, "input": args.input,
        "target": None if scores.target is None else scores.target.cpu(),
        "output": scores.out.detach().cpu(),
        "objective": args.objective, "settings": ctx.settings,
        "grid": grid, "layer": _layer_name(ctx.model, ctx.layer),
        "feature_mask": None if ctx.feature_mask is None else ctx.feature_mask.cpu(),
        "seconds": dict(outcome.seconds), "shared_with": dict(outcome.shared_with),
        "failed": dict(outcome.failures), "skipped": dict(skipped), "seed": args.seed,
        "versions": versions(),
    }


def _row_labels(scores: Scores) -> List[str]:
    """``sample 0: target 3, predicted 5`` (class outputs) or ``sample 0: output 0.12``."""
    if scores.classes == 1 or scores.target is None:
        return [f"sample {i}: output {float(o.flatten()[0]):.3g}"
                for i, o in enumerate(scores.out)]
    return [f"sample {i}: target {int(t)}, predicted {int(o.argmax())}"
            for i, (t, o) in enumerate(zip(scores.target, scores.out))]


def _write(args: argparse.Namespace, x: Tensor, display: Optional[Tensor],
           outcome: Outcome, names: List[str], cells: Optional[Tuple[int, ...]],
           mask: Optional[Tensor], meta: Dict[str, Any], rows: List[str]) -> List[str]:
    paths = split_output(args.out, "explain_out", "explain")
    if display is not None:
        written = image_figures(
            display, outcome.results, rows, cells, names,
            None if mask is None else mask[0, 0].cpu(), paths,
        )
    else:
        written = tabular_figures(outcome.results, names, int(x[0].numel()), paths)
    raw = os.path.splitext(paths[0])[0] + ".pt"
    torch.save({**outcome.results, "meta": meta}, raw)
    return [*written, raw]


def _report(outcome: Outcome, written: List[str]) -> int:
    if outcome.seconds:
        print("methods: " + outcome.timing_line())
    for name, message in outcome.failures.items():
        print(f"FAILED {name}: {message}", file=sys.stderr)
    for path in written:
        print(f"wrote {path}")
    return 1 if outcome.failures else 0


def run_explain(args: argparse.Namespace) -> int:
    """Run ``captum-ho explain``; 0, or 1 when a method failed (the others are saved)."""
    device = device_from_flag(args.device)
    torch.manual_seed(args.seed)
    requested = resolve_methods(args.method, "explain")
    model = load_model(args.model, args.weights, device)
    x, display = load_input(args.input, args.batched, args.size, args.normalize,
                            args.grayscale, device)
    scores = forward_scores(model, x, args.target, args.objective)
    layer = find_layer(model, args.layer) if any(s.needs_layer for s in requested) else None
    mask, grid = pair_grouping(args.grid, x, requested)
    specs, skipped = applicable.choose(
        requested, bool(args.method),
        applicable.Situation(model, layer, int(x[0].numel()), mask, x, scores.target))
    line = applicable.skipped_line(skipped)
    if line:
        print(line)
    ctx = Context(
        model, x, scores.target, layer=layer, feature_mask=mask,
        n_samples=args.n_samples or (64 if smoke() else 256), sigma=args.sigma,
        n_steps=8 if smoke() else 16, seed=args.seed, objective=scores.objective,
        default_objectives={s.name: s.objective for s in METHODS.values() if s.objective},
        extra=per_method(args.method_arg, specs),
    )
    outcome = run_methods(specs, ctx, show_progress=not args.quiet)
    cells = None
    if "taylor_cam" in outcome.results and layer is not None:
        cells = layer_grid(model, layer, x)  # TaylorCAM's cells, named (row,col)
    names = feature_names(int(x[0].numel()), None if grid is None else (grid, grid))
    _print_summary(x, scores, outcome.results, names, grid, cells)
    meta = _meta(args, scores, ctx, outcome, skipped, grid)
    written = _write(args, x, display, outcome, names, cells, mask, meta, _row_labels(scores))
    return _report(outcome, written)


def add_explain_parser(sub: Any, add_common: Any) -> argparse.ArgumentParser:
    """The ``explain`` subcommand's flags."""
    p = sub.add_parser(
        "explain", help="explain your own model on an image or a tensor",
        description="Explain MODULE:CALLABLE on an image file or a .pt/.npy tensor. "
        "Without --method, every method that applies to the model and input runs.",
        epilog="Example: captum-ho explain --model torchvision.models:resnet18 "
        "--weights DEFAULT --input cat.jpg --size 224 --normalize imagenet "
        "--method ig,taylor_cam --layer layer4 (DEFAULT weights need a network once).",
    )
    p.add_argument("--input", required=True, help="image file, .pt or .npy tensor")
    p.add_argument("--target", type=int, default=None,
                   help="class to explain (default: the predicted class)")
    p.add_argument("--layer", default=None,
                   help="layer name for TaylorCAM (default: the last Conv2d)")
    p.add_argument("--grid", type=int, default=None,
                   help="group pixels into an NxN grid for pairwise methods "
                   "(default: 8 for images above 1024 features)")
    p.add_argument("--batched", action="store_true",
                   help="the tensor already has a batch dimension")
    p.add_argument("--size", type=int, default=None, help="resize images to SIZE x SIZE")
    p.add_argument("--normalize", choices=["none", "imagenet"], default="none",
                   help="input normalisation for images")
    p.add_argument("--grayscale", action="store_true", help="read images as 1 channel")
    p.add_argument("--sigma", type=float, default=0.25,
                   help="SmoothHess noise standard deviation")
    add_common(p, model=True, out="explain_out/", objective_default="auto")
    return p
