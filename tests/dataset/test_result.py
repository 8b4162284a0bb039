"""DatasetExplanation.rank: planted pairs and triples come first."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from captum_higher_order.dataset import (
    explain_dataset,
)
from tests.dataset.helpers import (
    HessianInteractions,
)

pytestmark = pytest.mark.filterwarnings("ignore:Input Tensor . did not already require")


def test_rank_finds_planted_pairs():
    class Planted(nn.Module):
        def forward(self, x):  # pairs (0, 3) strong, (1, 2) weaker, 4 additive
            return 5 * x[:, 0] * x[:, 3] + x[:, 1] * x[:, 2] + torch.sin(x[:, 4])

    gen = torch.Generator().manual_seed(2)
    batches = list(torch.randn(20, 5, generator=gen, dtype=torch.float64).split(8))
    r = explain_dataset(HessianInteractions(Planted()), batches, progress=False)
    ranked = r.rank(3, feature_names=list("abcde"))
    assert [e.features for e in ranked[:2]] == [(0, 3), (1, 2)]
    assert ranked[0].names == ("a", "d")
    assert ranked[0].value == pytest.approx(5.0) and ranked[0].stderr == pytest.approx(0.0)
    assert ranked[2].value == pytest.approx(0.0)  # every other pair is zero
    # With the diagonal, the pure second derivative |d^2 sin(x4)| = |sin(x4)| comes third.
    diag = r.rank(3, include_diagonal=True)
    assert [e.features for e in diag] == [(0, 3), (1, 2), (4, 4)]
    x4 = torch.cat(batches)[:, 4]
    assert diag[2].value == pytest.approx(x4.sin().abs().mean().item(), rel=1e-10)


@pytest.mark.parametrize("reduce", ["mean_abs", "max_abs"])
def test_cross_derivatives_pairs_and_triples(reduce):
    mod = pytest.importorskip("captum_higher_order.attr.cross_derivatives")

    class Planted(nn.Module):  # 2 x0 x1 + 1.5 x2 x3 x4 + sin(x5)
        def forward(self, x):
            return 2 * x[:, 0] * x[:, 1] + 1.5 * x[:, 2] * x[:, 3] * x[:, 4] + x[:, 5].sin()

    gen = torch.Generator().manual_seed(4)
    x = torch.rand(21, 6, generator=gen, dtype=torch.float64) * 2 - 1
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x), batch_size=8)
    cd = mod.CrossDerivatives(Planted())
    r = explain_dataset(cd, loader, reduce=reduce, progress=False)
    # Oracle: the closed-form mixed partials d^2 f / dx_i dx_j of the planted function.
    pairs = torch.zeros(21, 6, 6, dtype=torch.float64)
    pairs[:, 0, 1] = pairs[:, 1, 0] = 2.0
    for i, j, k in [(2, 3, 4), (2, 4, 3), (3, 4, 2)]:
        pairs[:, i, j] = pairs[:, j, i] = 1.5 * x[:, k]
    expected = pairs.abs().mean(0) if reduce == "mean_abs" else pairs.abs().amax(0)
    off = ~torch.eye(6, dtype=torch.bool)
    torch.testing.assert_close(r.value[off], expected[off], rtol=1e-10, atol=1e-12)
    assert [e.features for e in r.rank(2)][0] == (0, 1)
    if reduce == "mean_abs":  # the method's own streaming aggregation agrees
        glob = cd.global_interactions(x, batch_size=5)
        torch.testing.assert_close(r.value, glob.scores.to(r.value), rtol=1e-10, atol=1e-12)
    # Order 3 (dense (B, F, F, F)): d^3 f / dx2 dx3 dx4 = 1.5 is the only triple.
    r3 = explain_dataset(cd, loader, reduce=reduce, attribute_kwargs={"order": 3},
                         progress=False)
    top = r3.rank(2)
    assert r3.kind == "interaction" and top[0].features == (2, 3, 4)
    assert top[0].value == pytest.approx(1.5, rel=1e-8) and abs(top[1].value) < 1e-8
