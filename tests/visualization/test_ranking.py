"""Ranking and normalisation: what every plot draws."""

import itertools

import matplotlib
import numpy as np
import pytest
import torch

from captum_higher_order import visualization as V

matplotlib.use("Agg")
from tests.visualization.helpers import _sym


def test_rank_interactions_matches_brute_force_on_matrix_and_kway_tensor():
    m = _sym(6)
    ranked = V.top_interactions(m, k=None)
    brute = sorted(
        (((i, j), float(m[i, j])) for i, j in itertools.combinations(range(6), 2)),
        key=lambda t: -abs(t[1]),
    )
    assert ranked == brute and len(ranked) == 15
    assert V.top_interactions(m, k=3, sign="positive") == sorted(
        [t for t in brute if t[1] > 0], key=lambda t: -t[1]
    )[:3]
    assert all(v < 0 for _, v in V.top_interactions(m, k=None, sign="negative"))
    # a symmetric 3-way tensor with one planted set
    t = np.zeros((5, 5, 5))
    for p in itertools.permutations((0, 2, 4)):
        t[p] = -3.0
    t[1, 2, 3] = 1.0
    assert V.top_interactions(t, k=2) == [((0, 2, 4), -3.0), ((1, 2, 3), 1.0)]
    # dicts and lists are ranked too
    assert V.top_interactions({(1, 2): 0.5, (0, 3): -2.0}, k=1) == [((0, 3), -2.0)]
    with pytest.raises(ValueError, match="sign"):
        V.top_interactions(m, sign="abs")
    with pytest.raises(ValueError, match="square"):
        V.top_interactions(torch.zeros(3, 4))


def test_top_interactions_accepts_a_cross_derivatives_ranking():
    from captum_higher_order.attr.cross_derivatives import CrossDerivatives

    def f(x):
        return 3 * x[:, 0] * x[:, 1] * x[:, 2] + x[:, 3] * x[:, 4]

    x = torch.ones(2, 5, dtype=torch.float64)
    ranking = CrossDerivatives(f).attribute(x, order=3, top_k=1)
    assert V.top_interactions(ranking.as_lists()[0]) == [((0, 1, 2), 3.0)]
    one = type(ranking)(ranking.indices[:1], ranking.scores[:1])
    assert V.top_interactions(one) == [((0, 1, 2), 3.0)]
    _, ax = V.visualize_top_interactions(one, use_pyplot=False)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0 × 1 × 2"]
    with pytest.raises(ValueError, match="as_lists"):
        V.top_interactions(ranking)


def test_normalize_values_follows_captum_outlier_rule():
    vals = np.array([0.0, 1.0, -2.0, 100.0])
    out = V.normalize_values(vals, "all", outlier_perc=0)
    np.testing.assert_allclose(out, vals / 100.0)
    # clipping the top 50% of the mass saturates the outlier only
    out = V.normalize_values(vals, "absolute_value", outlier_perc=50)
    np.testing.assert_allclose(out, [0.0, 0.01, 0.02, 1.0])
    assert not V.normalize_values(np.zeros(4)).any()


def test_dense_ranking_keeps_ties_in_lexicographic_order_like_listed_input():
    # integer entries: many equal magnitudes; the dense path (shared _ranking) and the
    # listed path (Python's stable sort) must agree, ties in (i, j) order
    g = torch.Generator().manual_seed(1)
    m = torch.randint(-2, 3, (7, 7), generator=g).double()
    m = m + m.T
    listed = [((i, j), float(m[i, j])) for i, j in itertools.combinations(range(7), 2)]
    for sign in V.SIGNS:
        dense = V.top_interactions(m, k=None, sign=sign)
        assert dense == V.top_interactions(listed, k=None, sign=sign)
        for (a, va), (b, vb) in zip(dense, dense[1:]):
            if abs(va) == abs(vb) and (sign in ("all", "absolute_value") or va == vb):
                assert a < b
    with_diag = V.top_interactions(m, k=None, include_diagonal=True, drop_zeros=False)
    assert len(with_diag) == 28 and {key for key, _ in with_diag} == {
        (i, j) for i in range(7) for j in range(i, 7)
    }
