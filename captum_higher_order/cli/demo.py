"""``captum-ho demo``: a few held-out digits explained by the embedded CNN
(:mod:`captum_higher_order.zoo`), offline and on the CPU in seconds.

It writes a side-by-side figure (input, Integrated Gradients,
SecondOrderSaliency, GroupSparseSaliency, SmoothGrad, DTD, TaylorCAM region
pairs) and an interactions figure (SmoothHess / IntegratedHessians /
CrossDerivatives over 2x2 pixel blocks), and prints a text summary.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from typing import Any, Dict, List, Optional

import torch
from torch import Tensor

from captum_higher_order import DTDRootCheck
from captum_higher_order import visualization as viz
from captum_higher_order.cli.common import CLIError, device_from_flag, one_line, smoke
from captum_higher_order.cli.figures import image_figures, split_output
from captum_higher_order.cli.flags import add_common
from captum_higher_order.cli.inputs import block_mask, layer_grid
from captum_higher_order.cli.method_args import per_method
from captum_higher_order.cli.registry import METHODS, resolve_methods
from captum_higher_order.cli.runner import run_methods
from captum_higher_order.cli.runners import Context
from captum_higher_order.cli.summary import cell_names, pair_text
from captum_higher_order.version import __version__

__all__ = ["DEMO_INDICES", "run_demo", "add_demo_parser"]

#: Held-out digits shown by ``captum-ho demo`` (indices into ``zoo.digits_samples``):
#: a 0, a 3, a 5 the CNN gets wrong with low confidence, an 8, then more classes.
DEMO_INDICES = (0, 6, 11, 17, 2, 8, 13, 19, 4, 15)
#: The 16 groups of 2x2 pixels of the 8x8 digits, as (row,col) in the 4x4 block grid.
BLOCK_NAMES = cell_names((4, 4))


def _dtd_report(model: Any, images: Tensor, pred: Tensor,
                failures: Dict[str, str]) -> Optional[Any]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return DTDRootCheck(model, rule="z+").check(images, target=pred,
                                                        n_segment_points=8, n_directions=1)
    except Exception as err:  # reported like a failing method
        failures["dtd check"] = one_line(err)
        return None


def _print_sample(i: int, results: Dict[str, Tensor], grid: Any, report: Any) -> None:
    if "taylor_cam" in results:
        top = viz.top_interactions(results["taylor_cam"][i], k=3)
        print(f"  TaylorCAM top cell pairs (conv2 {grid[0]}x{grid[1]} cells, (row,col)): "
              f"{pair_text(top, cell_names(grid))}")
    for name in ("smooth_hess", "integrated_hessians", "cross_derivatives", "hessian"):
        if name in results:
            top = viz.top_interactions(results[name][i], k=3)
            print(f"  {METHODS[name].label} top 2x2-block pairs ((row,col) of the 4x4 "
                  f"blocks): {pair_text(top, BLOCK_NAMES)}")
    if report is not None:
        print(f"  DTD z+ root check: {report.verdict[i]} (valid roots by layer "
              f"{', '.join(f'{float(v):.2f}' for v in report.valid_share[i])}; "
              f"equals gradient x input: {'yes' if bool(report.equals_gxi[i]) else 'no'})")


def run_demo(args: argparse.Namespace) -> int:
    """Run ``captum-ho demo``; 0, or 1 when a method failed (the others are drawn)."""
    from captum_higher_order.zoo import digits_samples, load_digits_cnn

    device = device_from_flag(args.device)
    torch.manual_seed(args.seed)
    specs = resolve_methods(args.method, "demo")
    if not 1 <= args.samples <= len(DEMO_INDICES):
        raise CLIError(f"--samples must be between 1 and {len(DEMO_INDICES)}.")
    model = load_digits_cnn(device=device)
    images, labels = digits_samples(device=device)
    index = list(DEMO_INDICES[: args.samples])
    images, labels = images[index], labels[index]
    with torch.no_grad():
        conf, pred = torch.softmax(model(images), dim=1).max(dim=1)
    mask = block_mask(8, 8, 2).to(device)  # 16 blocks of 2x2 pixels
    ctx = Context(
        model, images, pred, layer=model.get_submodule("conv2"), feature_mask=mask,
        n_samples=args.n_samples or (64 if smoke() else 512), sigma=0.25,
        n_steps=8 if smoke() else 16, seed=args.seed,
        objective=None if args.objective == "auto" else args.objective,
        default_objectives={s.name: s.objective for s in METHODS.values() if s.objective},
        extra=per_method(args.method_arg, specs),
    )
    start = time.perf_counter()
    outcome = run_methods(specs, ctx, show_progress=not args.quiet)
    results, failures = outcome.results, outcome.failures
    report = _dtd_report(model, images, pred, failures) if "dtd" in results else None

    grid = layer_grid(model, model.get_submodule("conv2"), images)
    print(f"captum-ho {__version__} demo: embedded digits CNN "
          f"(zoo.load_digits_cnn), {len(index)} held-out digits, device {device}")
    for i in range(len(index)):
        mark = "" if int(pred[i]) == int(labels[i]) else "  <- misclassified"
        print(f"sample {i}: label {int(labels[i])}, predicted {int(pred[i])} "
              f"(confidence {float(conf[i]):.3f}){mark}")
        _print_sample(i, results, grid, report)
    if report is not None:
        print(f"DTD verdict over the samples: {report.overall_verdict} "
              "(Sixt & Landgraf 2022: z+ roots leave the linear region)")

    labels_txt: List[str] = [
        f"label {int(labels[i])}, predicted {int(pred[i])} (p={float(conf[i]):.2f})"
        for i in range(len(index))
    ]
    written = image_figures(
        images.cpu(), results, labels_txt, grid, BLOCK_NAMES, mask[0, 0].cpu(),
        split_output(args.out, "demo_out", "demo"), sample=int(conf.argmin()),
    )
    print(f"methods: {outcome.timing_line()}; total {time.perf_counter() - start:.1f}s")
    for name, message in failures.items():
        print(f"FAILED {name}: {message}", file=sys.stderr)
    for path in written:
        print(f"wrote {path}")
    return 1 if failures else 0


def add_demo_parser(sub: Any) -> argparse.ArgumentParser:
    """The ``demo`` subcommand's flags."""
    p = sub.add_parser(
        "demo", help="explain a few digits with the embedded model (offline, CPU)",
        description="Explain held-out digits with the embedded CNN; write the side-by-side "
        "and interactions figures and print a summary.",
    )
    p.add_argument("--samples", type=int, default=4, help="digits to explain (1-10)")
    add_common(p, model=False, out="demo_out/ (or a .png path for the main figure)")
    return p
