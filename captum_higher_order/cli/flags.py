"""Flags that mean the same in every ``captum-ho`` subcommand, defined once."""

from __future__ import annotations

import argparse
from typing import Optional

from captum_higher_order.cli.registry import METHODS

__all__ = ["OBJECTIVES", "add_common"]

OBJECTIVES = ("auto", "output", "log_softmax", "softmax", "cross_entropy")


def add_common(p: argparse.ArgumentParser, model: bool, out: str,
               objective_default: Optional[str] = "auto") -> None:
    """``--method --method-arg --device --seed --n-samples --quiet/--no-progress --out --objective``
    (and ``--model --weights`` when the subcommand takes a user's model)."""
    names = ", ".join(METHODS)
    p.add_argument(
        "--method", action="append", metavar="NAME",
        help=f"method(s), repeatable or comma-separated: {names} or 'all'; dashed spellings "
        "(smooth-hess) and class names (SmoothHess) work too "
        "(default: every method that applies)",
    )
    if model:
        p.add_argument("--model", required=True,
                       help="an embedded model (planted_mlp, digits_cnn), MODULE:CALLABLE "
                       "(a module on the path or in the current directory) or "
                       "path/to/file.py:CALLABLE returning an nn.Module (or naming one)")
        p.add_argument("--weights", default=None,
                       help="state-dict file, or a torchvision weights name (DEFAULT)")
    p.add_argument("--method-arg", action="append", default=[], metavar="[METHOD.]KEY=VALUE",
                   help="a keyword of the methods' attribute(), e.g. lambda2=8 or "
                   "integrated_hessians.n_steps=64 (repeatable; without METHOD. it goes to "
                   "every chosen method that takes KEY)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    p.add_argument("--seed", type=int, default=0, help="seed for stochastic methods [0]")
    p.add_argument("--n-samples", type=int, default=None,
                   help="SmoothHess / SmoothGrad gradient calls per input")
    p.add_argument("--quiet", "--no-progress", dest="quiet", action="store_true",
                   help="no progress bars")
    p.add_argument("--out", default=None, help=f"output folder (default: {out})")
    if objective_default is not None:
        p.add_argument(
            "--objective", default=objective_default, choices=OBJECTIVES,
            help="the differentiated scalar for every method that takes one: auto (each "
            "method's default for class outputs; output for a single output), output, "
            "log_softmax, softmax or cross_entropy [auto]",
        )
