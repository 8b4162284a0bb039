"""Runs every registered method through every Captum contract check."""

import pytest

from tests.conftest import DEVICES
from tests.contract.harness import CHECKS
from tests.contract.registry import all_cases

CASES = all_cases()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("check", sorted(CHECKS))
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_contract(case, check, device):
    CHECKS[check](case, device)
