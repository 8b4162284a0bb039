"""The forwarding behind the deprecated ``captum_higher_order.datasets`` paths."""

import warnings
from typing import Any, Sequence

NEW_PATH = "captum_higher_order.zoo.synthetic"


def moved_attribute(old_module: str, name: str, names: Sequence[str]) -> Any:
    """``name`` from :mod:`captum_higher_order.zoo.synthetic`, with a warning
    that names the new import path (attributed to the importing line)."""
    if name not in names:
        raise AttributeError(f"module {old_module!r} has no attribute {name!r}")
    warnings.warn(
        f"{old_module} is deprecated and will be removed; import {name} from "
        f"{NEW_PATH} (or captum_higher_order.zoo) instead.",
        DeprecationWarning,
        stacklevel=3,
    )
    from captum_higher_order.zoo import synthetic

    return getattr(synthetic, name)
