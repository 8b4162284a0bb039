"""Deprecated: moved to :mod:`captum_higher_order.zoo.synthetic`.

Importing a name from here still works and warns with a ``DeprecationWarning``
naming the new path.
"""

from typing import Any, List

from captum_higher_order.datasets._moved import moved_attribute

_MOVED = ["NID_FUNCTIONS", "SyntheticFunction", "nid_function", "planted_products"]


def __getattr__(name: str) -> Any:
    return moved_attribute(__name__, name, _MOVED)


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(_MOVED))
