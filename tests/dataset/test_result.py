"""DatasetExplanation.rank: planted pairs and triples come first."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from captum_higher_order.dataset import (
    explain_dataset,
)
from tests.dataset.helpers import HessianInteractions, interrupted
from tests.models import mlp

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


# --------------------------------------------------------------------------- sparse rankings


class PlantedTriples(nn.Module):
    """f = (2 + x6) x0 x1 x2 + 1.5 x3 x4 x5: third mixed partials, by hand,
    d(0,1,2) = 2 + x6, d(3,4,5) = 1.5, d(0,1,6) = x2, d(0,2,6) = x1, d(1,2,6) = x0,
    every other triple 0."""

    def forward(self, x):
        return (2 + x[:, 6]) * x[:, 0] * x[:, 1] * x[:, 2] + 1.5 * x[:, 3] * x[:, 4] * x[:, 5]


def planted_triple_scores(x: torch.Tensor) -> dict:
    """Per sample, |d^3 f| of every nonzero triple of PlantedTriples."""
    return {(0, 1, 2): (2 + x[:, 6]).abs(), (3, 4, 5): torch.full_like(x[:, 0], 1.5),
            (0, 1, 6): x[:, 2].abs(), (0, 2, 6): x[:, 1].abs(), (1, 2, 6): x[:, 0].abs()}


@pytest.mark.parametrize("reduce", ["mean_abs", "rms", "max_abs"])
def test_sparse_rankings_aggregate_per_set(reduce):
    cd = pytest.importorskip("captum_higher_order.attr.cross_derivatives").CrossDerivatives
    gen = torch.Generator().manual_seed(6)
    x = torch.rand(19, 7, generator=gen, dtype=torch.float64) * 2 - 1
    r = explain_dataset(cd(PlantedTriples()), list(x.split(7)), reduce=reduce, progress=False,
                        attribute_kwargs={"order": 3, "top_k": 3})
    assert r.kind == "sets" and r.count == 19 and r.batches == 3
    # Oracle, by hand: every sample ranks (0,1,2) (|2 + x6| >= 1) and (3,4,5) (1.5)
    # above the x-triples (< 1); its third set is the x-triple with the largest
    # |x_i|. A sample that does not rank a set counts as 0 for it.
    scores = planted_triple_scores(x)
    x_triples = [(0, 1, 6), (0, 2, 6), (1, 2, 6)]
    third = torch.stack([scores[s] for s in x_triples]).argmax(0)
    expected = {}
    for s, q in scores.items():
        ranked = torch.ones(19, dtype=torch.bool) if s not in x_triples else (
            third == x_triples.index(s))
        if ranked.any():
            z = torch.where(ranked, q, torch.zeros_like(q))
            value = {"mean_abs": z.mean(), "rms": z.square().mean().sqrt(),
                     "max_abs": z.max()}[reduce]
            expected[s] = (float(value), int(ranked.sum()), z)
    assert sorted(map(tuple, r.sets.tolist())) == sorted(expected)
    ranked = r.rank(10)
    assert len(ranked) == len(expected) and ranked[0].features in [(0, 1, 2), (3, 4, 5)]
    assert [abs(e.value) for e in ranked] == sorted((abs(e.value) for e in ranked), reverse=True)
    for e in ranked:
        value, hits, z = expected[e.features]
        assert e.value == pytest.approx(value, rel=1e-9) and e.hits == hits
        if reduce == "mean_abs":  # the stderr of the zero-filled per-sample values
            assert e.stderr == pytest.approx(float(z.std() / 19 ** 0.5), rel=1e-7, abs=1e-12)
    # Ranked in every sample: exact, the dense order-3 aggregate of the same set.
    dense = explain_dataset(cd(PlantedTriples()), list(x.split(7)), reduce=reduce,
                            attribute_kwargs={"order": 3}, progress=False)
    for s in [(0, 1, 2), (3, 4, 5)]:
        assert expected[s][1] == 19
        assert next(e.value for e in ranked if e.features == s) == pytest.approx(
            float(dense.value[s]), rel=1e-9)


def test_issue_example_ranks_sets_not_averaged_indices(tmp_path):
    # explain_dataset(CrossDerivatives(mlp), [x], target=0, attribute_kwargs={'order': 3,
    # 'top_k': 2}).rank(2) used to average the indices (B, 2, 3) as if they were scores.
    cd_module = pytest.importorskip("captum_higher_order.attr.cross_derivatives")
    model = mlp()
    gen = torch.Generator().manual_seed(8)
    x = torch.randn(10, 6, generator=gen, dtype=torch.float64)
    cd = cd_module.CrossDerivatives(model)
    kwargs = {"order": 3, "top_k": 2}
    r = explain_dataset(cd, [x[:4], x[4:]], target=0, attribute_kwargs=kwargs, progress=False)
    # Oracle: the method's own per-sample rankings, summed per set in plain Python.
    per_sample = cd.attribute(x, target=0, **kwargs).as_lists()
    totals, hits = {}, {}
    for sample in per_sample:
        for s, score in sample:
            totals[s] = totals.get(s, 0.0) + abs(score)
            hits[s] = hits.get(s, 0) + 1
    best = sorted(totals, key=lambda s: (-totals[s], -hits[s], s))[:2]
    top = r.rank(2)
    assert [e.features for e in top] == best
    for e in top:
        assert len(set(e.features)) == 3  # a set of three distinct features
        assert e.value == pytest.approx(totals[e.features] / 10, rel=1e-9)
        assert e.hits == hits[e.features]
    # Through a checkpoint and a resume the tables are the same.
    path = tmp_path / "sets.ckpt"
    with pytest.raises(RuntimeError, match="simulated crash"):
        explain_dataset(cd, interrupted([x[:4], x[4:7], x[7:]], 2), target=0,
                        attribute_kwargs=kwargs, checkpoint=path, checkpoint_every=1,
                        progress=False)
    resumed = explain_dataset(cd, [x[:4], x[4:7], x[7:]], target=0, attribute_kwargs=kwargs,
                              checkpoint=path, checkpoint_every=1, progress=False)
    assert torch.equal(resumed.sets, r.sets) and torch.equal(resumed.hits, r.hits)
    torch.testing.assert_close(resumed.value, r.value, rtol=1e-12, atol=0)
    with pytest.raises(ValueError, match="leave `kind` unset"):
        explain_dataset(cd, [x], target=0, attribute_kwargs=kwargs, kind="interaction",
                        progress=False)
