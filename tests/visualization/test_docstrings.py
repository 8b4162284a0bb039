"""The ``Examples::`` of every visualization module run and print what they say."""

import doctest
import importlib
import pkgutil

import matplotlib

from captum_higher_order import visualization as V

matplotlib.use("Agg")


def test_docstring_examples_run():
    # the package re-exports its functions; their examples live in the submodules
    attempted = 0
    for info in pkgutil.iter_modules(V.__path__, V.__name__ + "."):
        result = doctest.testmod(importlib.import_module(info.name), optionflags=doctest.ELLIPSIS)
        assert result.failed == 0, info.name
        attempted += result.attempted
    assert attempted >= 20
