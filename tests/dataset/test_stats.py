"""Running statistics: streaming equals batch, Welford stability, delta-method stderr."""

from __future__ import annotations

import pytest
import torch

from captum_higher_order.dataset import (
    explain_dataset,
)
from tests.dataset.helpers import (
    SIZES,
    HessianInteractions,
    Poly,
    int_batches,
    poly_hessians,
)

pytestmark = pytest.mark.filterwarnings("ignore:Input Tensor . did not already require")


def test_streaming_equals_batch_exactly_for_integer_sums():
    model = Poly().eval()
    batches = int_batches()
    h = poly_hessians(model, torch.cat(batches))
    n = h.shape[0]
    method = HessianInteractions(model)
    for reduce, q in [("mean", h), ("mean_abs", h.abs()), ("rms", h ** 2)]:
        r = explain_dataset(method, batches, reduce=reduce, progress=False)
        assert r.count == n and r.batches == len(SIZES) and r.kind == "interaction"
        # Integer sums are exact in float64 whatever the order: bit-for-bit.
        expected = q.sum(0) / n
        assert torch.equal(r.value, expected.sqrt() if reduce == "rms" else expected)
        torch.testing.assert_close(r.std, q.std(0), rtol=1e-12, atol=1e-12)
        if reduce != "rms":
            torch.testing.assert_close(r.stderr, q.std(0) / n ** 0.5, rtol=1e-12, atol=1e-12)
    r = explain_dataset(method, batches, reduce="max_abs", progress=False)
    assert torch.equal(r.value, h.abs().amax(0))
    assert torch.isnan(r.stderr).all()


def test_rms_stderr_is_delta_method():
    model = Poly().eval()
    batches = int_batches(seed=1)
    q = poly_hessians(model, torch.cat(batches)) ** 2
    r = explain_dataset(HessianInteractions(model), batches, reduce="rms", progress=False)
    rms = q.mean(0).sqrt()
    expected = torch.where(rms > 0, q.std(0) / len(q) ** 0.5 / (2 * rms), torch.zeros_like(rms))
    torch.testing.assert_close(r.stderr, expected, rtol=1e-10, atol=1e-12)


def test_welford_is_stable_with_a_large_offset():
    # Naive E[q^2] - E[q]^2 loses every digit here; the pairwise update does not.
    class Offset:
        forward_func = None

        def attribute(self, inputs, target=None):
            return inputs + 1e9

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(40, 3, generator=gen, dtype=torch.float64)
    r = explain_dataset(Offset(), list(x.split(6)), reduce="mean", progress=False)
    torch.testing.assert_close(r.std, x.std(0), rtol=1e-6, atol=0)
