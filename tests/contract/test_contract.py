"""Runs every registered method through every Captum contract check."""

import pytest

from tests.conftest import DEVICES
from tests.contract.harness import CHECKS, CUDA_ONLY
from tests.contract.registry import all_cases

CASES = all_cases()

# Checks that say nothing on the CPU (its results are bitwise reproducible) are
# only generated for the accelerator.
CHECK_DEVICE = [
    pytest.param(check, device, id=f"{check}-{getattr(device, 'values', [device])[0]}",
                 marks=getattr(device, "marks", ()))
    for check in sorted(CHECKS)
    for device in DEVICES
    if not (check in CUDA_ONLY and device == "cpu")
]


@pytest.mark.parametrize("check,device", CHECK_DEVICE)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_contract(case, check, device):
    CHECKS[check](case, device)
