"""Pieces every ``captum-ho`` subcommand shares: the user-error type, the device
flag, the smoke switch used by the test suite, and version stamps."""

from __future__ import annotations

import os
import platform
from typing import Dict

import torch

from captum_higher_order.version import __version__

__all__ = ["CLIError", "SMOKE_ENV", "TRACEBACK_ENV", "smoke", "device_from_flag",
           "format_seconds", "versions", "one_line"]

#: Set to 1 to get the Python traceback of a failure instead of its one-line summary.
TRACEBACK_ENV = "CAPTUM_HO_TRACEBACK"
#: Set to 1 by the test suite and ``make`` smoke targets: fewer samples and path steps.
SMOKE_ENV = "CAPTUM_HO_SMOKE"


class CLIError(Exception):
    """A user error: printed as ``captum-ho: error: ...`` with exit status 2."""


def smoke() -> bool:
    """True when :data:`SMOKE_ENV` asks for the fast settings."""
    return os.environ.get(SMOKE_ENV, "") not in ("", "0", "false", "False")


def device_from_flag(name: str) -> torch.device:
    """``--device`` -> a torch device, with a message when CUDA is missing."""
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise CLIError(f"unknown device {name!r}: {err}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CLIError(f"--device {name} was requested but CUDA is not available; "
                       "use --device cpu.")
    return device


def format_seconds(seconds: float) -> str:
    """``0.004`` -> ``"4 ms"``, ``12.3`` -> ``"12.3s"``: never a misleading ``0.0s``."""
    if seconds < 1.0:
        return f"{max(seconds * 1000.0, 1.0):.0f} ms"
    return f"{seconds:.1f}s"


def one_line(err: BaseException, limit: int = 200) -> str:
    """``TypeName: first line of the message``, cut at ``limit`` characters."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    line = f"{type(err).__name__}: {text}" if text else type(err).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


def versions() -> Dict[str, str]:
    """Versions stored with every saved result (this package, torch, captum, python)."""
    import captum

    return {"captum_higher_order": __version__, "torch": str(torch.__version__),
            "captum": str(getattr(captum, "__version__", "unknown")),
            "python": platform.python_version()}
