import os

import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("CAPTUM_HO_SMOKE", "1")

HAS_CUDA = torch.cuda.is_available()
DEVICES = [
    "cpu",
    pytest.param(
        "cuda", marks=pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device")
    ),
]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
