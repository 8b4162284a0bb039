"""Every ``Examples::`` block in the package runs and prints what it says."""

import doctest
import importlib
import pkgutil

import pytest
import torch

import captum_higher_order

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(captum_higher_order.__path__, "captum_higher_order.")
    if not info.name.endswith("__main__")
)


@pytest.mark.parametrize("name", MODULES)
def test_examples(name):
    module = importlib.import_module(name)
    torch.manual_seed(0)
    result = doctest.testmod(
        module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
