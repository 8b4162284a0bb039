"""Pieces shared by the ``captum-ho`` subcommands."""

from __future__ import annotations

import importlib
import importlib.util
import os
from typing import Any


class CLIError(Exception):
    """A user error: printed as ``captum-ho: error: ...`` with exit status 2."""


def import_object(spec: str) -> Any:
    """The object named by ``MODULE:ATTR`` or ``path/to/file.py:ATTR`` (``ATTR``
    may be dotted), with errors that say which part of ``--model`` is wrong."""
    if ":" not in spec:
        raise CLIError(
            f"--model must be MODULE:CALLABLE or path/to/file.py:CALLABLE "
            f"(e.g. torchvision.models:resnet18), got {spec!r}."
        )
    module_name, _, attr_path = spec.rpartition(":")
    if module_name.endswith(".py"):
        if not os.path.exists(module_name):
            raise CLIError(f"--model file not found: {module_name}")
        mod_spec = importlib.util.spec_from_file_location("_captum_ho_user_model", module_name)
        assert mod_spec is not None and mod_spec.loader is not None
        module = importlib.util.module_from_spec(mod_spec)
        mod_spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            raise CLIError(f"cannot import {module_name!r} for --model: {err}") from None
    obj: Any = module
    for part in attr_path.split("."):
        if not hasattr(obj, part):
            raise CLIError(f"{module_name!r} has no attribute {attr_path!r} (--model {spec}).")
        obj = getattr(obj, part)
    return obj
