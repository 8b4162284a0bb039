"""The ``captum-ho`` command line.

``captum-ho demo`` explains a few held-out digits with the embedded CNN
(:mod:`.demo`); ``captum-ho explain --model MODULE:CALLABLE --input PATH``
explains a user's model on an image or a tensor file (:mod:`.explain`);
``captum-ho global`` aggregates interactions over a data set (:mod:`.global_`);
``captum-ho methods`` lists the methods of the one registry (:mod:`.registry`),
whose names every subcommand accepts in either spelling (``smooth_hess`` or
``smooth-hess``).

Layout: ``common`` (errors, device, versions), ``registry`` + ``runners`` (the
methods), ``loading`` (the one model loader), ``inputs`` (files -> batches,
pixel groupings), ``applicable`` (which methods fit a model), ``runner`` (run,
time, collect failures), ``summary`` / ``figures`` (what is printed and drawn),
``flags`` (flags shared by the subcommands), one module per subcommand.
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from captum_higher_order.cli.common import SMOKE_ENV, CLIError
from captum_higher_order.cli.demo import DEMO_INDICES, add_demo_parser, run_demo
from captum_higher_order.cli.explain import add_explain_parser, run_explain
from captum_higher_order.cli.flags import add_common
from captum_higher_order.cli.global_ import add_global_parser, run_global
from captum_higher_order.cli.inputs import block_mask, grid_mask, layer_grid, load_input
from captum_higher_order.cli.loading import import_object, load_model
from captum_higher_order.cli.registry import METHODS, MethodSpec, lookup, resolve_methods
from captum_higher_order.cli.runner import Outcome, run_methods
from captum_higher_order.cli.runners import Context
from captum_higher_order.version import __version__

__all__ = [
    "main", "build_parser", "METHODS", "MethodSpec", "Context", "Outcome", "CLIError",
    "lookup", "resolve_methods", "run_methods", "load_model", "load_input", "import_object",
    "block_mask", "grid_mask", "layer_grid", "run_demo", "run_explain", "run_global",
    "add_global_parser", "DEMO_INDICES", "SMOKE_ENV",
]


def build_parser() -> argparse.ArgumentParser:
    """The ``captum-ho`` parser with its subcommands."""
    parser = argparse.ArgumentParser(
        prog="captum-ho",
        description="Higher-order attribution for PyTorch models (a Captum plugin).",
    )
    parser.add_argument("--version", action="version", version=f"captum-ho {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_demo_parser(sub)
    add_explain_parser(sub, add_common)
    methods = sub.add_parser("methods", help="list the methods, their kinds, aliases and "
                             "subcommands")
    methods.add_argument("--quiet", "--no-progress", dest="quiet", action="store_true",
                         help="accepted for symmetry with the other subcommands")
    add_global_parser(sub)  # dataset-level interactions
    return parser


def list_methods() -> int:
    """Print the registry: name, kind, where it runs, the other spelling, description."""
    print(f"{'name':<20} {'kind':<6} {'subcommands':<20} {'also':<20} description")
    for spec in METHODS.values():
        also = spec.dashed if spec.dashed != spec.name else "-"
        where = ",".join(spec.subcommands)
        default = "" if spec.default else " (not in the default set)"
        print(f"{spec.name:<20} {spec.kind:<6} {where:<20} {also:<20} "
              f"{spec.description}{default}")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of ``captum-ho``; returns the exit status (2: usage error,
    1: a method failed while the others were saved)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        if args.command == "demo":
            return run_demo(args)
        if args.command == "explain":
            return run_explain(args)
        if args.command == "methods":
            return list_methods()
        return int(run_global(args))
    except CLIError as err:
        print(f"captum-ho: error: {err}", file=sys.stderr)
        return 2
