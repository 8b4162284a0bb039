"""Collects ``CASES`` from every ``cases_*.py`` module in this folder."""

from __future__ import annotations

import importlib
import pkgutil
from typing import List

from tests.contract.harness import ContractCase


def all_cases() -> List[ContractCase]:
    import tests.contract as pkg

    cases: List[ContractCase] = []
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        if info.name.startswith("cases_"):
            module = importlib.import_module(f"tests.contract.{info.name}")
            cases.extend(module.CASES)
    names = [c.name for c in cases]
    duplicates = {n for n in names if names.count(n) > 1}
    assert not duplicates, f"duplicate contract case names: {duplicates}"
    return cases
