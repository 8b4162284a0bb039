"""Old import path of ``captum-ho global``: now :mod:`captum_higher_order.cli.global_`.

Kept so that ``from captum_higher_order.dataset_cli import run_global`` and
``python -m captum_higher_order.dataset_cli global ...`` keep working; use
``python -m captum_higher_order.cli global ...`` instead.
"""

from __future__ import annotations

import sys
import warnings
from typing import List, Optional

from captum_higher_order.cli.global_ import (
    EMBEDDED_MODELS,
    METHOD_NAMES,
    add_global_parser,
    load_dataset,
    run_global,
)
from captum_higher_order.cli.runners import ExactHessian

warnings.warn(
    "captum_higher_order.dataset_cli moved to captum_higher_order.cli.global_ "
    "(python -m captum_higher_order.cli global ...); the old path will be removed.",
    DeprecationWarning, stacklevel=2,
)

__all__ = ["METHOD_NAMES", "EMBEDDED_MODELS", "ExactHessian", "add_global_parser",
           "load_dataset", "run_global", "main"]


def main(argv: Optional[List[str]] = None) -> int:
    """``python -m captum_higher_order.dataset_cli ...``: the same as ``captum-ho``."""
    from captum_higher_order.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
