"""The ``captum-ho`` command line."""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from captum_higher_order.version import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="captum-ho",
        description="Higher-order attribution for PyTorch models (a Captum plugin).",
    )
    parser.add_argument("--version", action="version", version=f"captum-ho {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("demo", help="explain a few digits with the embedded model")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.command == "demo":
        print(
            "captum-ho demo is not yet available: it arrives with the embedded "
            "model and visualizers. Try `captum-ho --help`.",
            file=sys.stderr,
        )
        return 2
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
