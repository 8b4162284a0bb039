import os

import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("CAPTUM_HO_SMOKE", "1")
# cuBLAS is bitwise reproducible only with a fixed workspace, which must be set
# before CUDA starts (the deterministic-algorithms contract checks need it).
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

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
