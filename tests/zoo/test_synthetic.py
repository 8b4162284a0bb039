"""The NID test functions and the planted-products generator."""

import itertools
import math

import pytest
import torch

from captum_higher_order.attr.cross_derivatives import CrossDerivatives
from captum_higher_order.metrics.interactions import interaction_auc
from captum_higher_order.zoo.synthetic import NID_FUNCTIONS, nid_function, planted_products

DT = torch.float64

# Tsang et al. (2018), Table 1, 1-based as printed in the paper.
PAPER_TRUTH = {
    "F1": [{1, 2, 3}, {2, 7}, {3, 5}, {7, 8, 9, 10}],
    "F2": [{1, 2, 3}, {2, 7}, {3, 5}, {7, 8, 9, 10}],
    "F3": [{1, 2}, {2, 3}, {3, 4}, {4, 5, 7, 8}],
    "F4": [{1, 2}, {2, 3}, {3, 4}, {1, 4}, {4, 5, 7, 8}],
    "F5": [{1, 2, 3}, {4, 5}, {6, 7}, {8, 9, 10}],
    "F6": [{1, 2}, {3, 4}, {5, 6, 8}, {8, 9, 10}],
    "F7": [{1, 2}, {3, 4, 6}, {4, 5, 6, 7, 8}, {7, 9}],
    "F8": [{1, 2}, {3, 5, 6}, {3, 4, 5, 7}, {7, 8, 9}],
    "F9": [{1, 2, 3, 4, 5}, {5, 6}, {6, 7, 8}, {9, 10}],
    "F10": [{1, 2}, {3, 5, 7}, {4, 5}, {7, 9}],
}

# Pairs inside a ground-truth set whose mixed partial is zero almost
# everywhere although the term is not additive (0-based):
# |x6 + x7| in F5, and max(x3 x4 + x6, 0) for (x3, x6) in F7.
ZERO_A_E = {"F5": {(5, 6)}, "F7": {(2, 5)}}


def test_registry_and_ground_truth_match_the_paper():
    assert list(NID_FUNCTIONS) == [f"F{i}" for i in range(1, 11)]
    for name, truth in PAPER_TRUTH.items():
        f = nid_function(name)
        assert f is nid_function(int(name[1:]))
        assert set(f.interactions) == {frozenset(i - 1 for i in s) for s in truth}
        assert f.num_features == 10 and "Tsang" in f.source
    with pytest.raises(ValueError, match="F1"):
        nid_function("F11")


def test_domains_and_closed_form_values():
    f1 = nid_function("F1")
    x, y = f1.sample(2000, seed=3, dtype=DT)
    low = torch.tensor([0.6 if i in (3, 4, 7, 9) else 0.0 for i in range(10)], dtype=DT)
    assert bool((x >= low).all()) and bool((x <= 1).all())
    assert bool(torch.isfinite(y).all())
    for name in PAPER_TRUTH:
        f = nid_function(name)
        x, y = f.sample(500, seed=1, dtype=DT)
        assert x.shape == (500, 10) and y.shape == (500,)
        assert bool(torch.isfinite(y).all()), name
    # spot values by hand at a point
    p = torch.full((1, 10), 0.5, dtype=DT)
    assert float(nid_function("F5")(p)) == pytest.approx(
        1 / 1.75 + math.exp(0.5) + 1.0 + 0.125
    )
    assert float(nid_function("F10")(p)) == pytest.approx(
        math.sinh(1.0) + math.acos(math.tanh(1.5)) + math.cos(1.0) + 1 / math.cos(0.25)
    )
    q = torch.full((1, 10), 0.8, dtype=DT)
    assert float(nid_function("F1")(q)) == pytest.approx(
        math.pi**0.64 * math.sqrt(1.6) - math.asin(0.8) + math.log(1.6) - 1.0 - 0.64
    )
    # same seed, same data
    assert torch.equal(f.sample(5, seed=9)[0], f.sample(5, seed=9)[0])


@pytest.mark.parametrize("name", list(PAPER_TRUTH))
def test_exact_cross_derivatives_follow_ground_truth(name):
    """The functions' own cross derivatives: zero outside the ground truth
    (structurally), nonzero on its pairs; so their pairwise AUC is ~1."""
    f = nid_function(name)
    x, _ = f.sample(64, seed=0, dtype=DT)
    scores = CrossDerivatives(f).global_interactions(x).scores
    positive = set(f.pairs())
    for i, j in itertools.combinations(range(10), 2):
        if (i, j) not in positive:
            assert float(scores[i, j]) == 0.0, (name, i, j)
        elif (i, j) not in ZERO_A_E.get(name, set()):
            assert float(scores[i, j]) > 1e-6, (name, i, j)
    # every nonzero positive beats every (zero) negative; a zero positive ties
    zero = len(ZERO_A_E.get(name, ()))
    expected = 1 - 0.5 * zero / len(positive)
    assert interaction_auc(scores, f.interactions) == pytest.approx(expected)


def test_planted_products():
    f = planted_products(8, interactions=[(0, 1), (2, 3, 4)], seed=2)
    assert set(f.interactions) == {frozenset({0, 1}), frozenset({2, 3, 4})}
    x, y = f.sample(10, seed=0, dtype=DT)
    assert bool((x.abs() <= 1).all())
    # mixed partial over a planted set is its coefficient, |c| in [1, 2]
    c3 = CrossDerivatives(f).attribute(x, order=3, absolute=False)[:, 2, 3, 4]
    torch.testing.assert_close(c3, c3[:1].expand(10), atol=1e-12, rtol=0)
    assert 1 <= abs(float(c3[0])) <= 2
    pairs = CrossDerivatives(f).attribute(x)
    nonzero = {(i, j) for i, j in itertools.combinations(range(8), 2) if bool(pairs[:, i, j].any())}
    assert nonzero == {(0, 1), (2, 3), (2, 4), (3, 4)}
    # random disjoint sets
    g = planted_products(10, num_interactions=3, order=3, seed=0)
    assert len(g.interactions) == 3 and all(len(s) == 3 for s in g.interactions)
    assert len(frozenset().union(*g.interactions)) == 9
    with pytest.raises(ValueError, match="disjoint"):
        planted_products(5, num_interactions=3, order=2)
    with pytest.raises(ValueError, match="distinct"):
        planted_products(5, interactions=[(1,)])
    with pytest.raises(ValueError, match=r"\(N, 8\)"):
        f(torch.zeros(3, 7))


def test_old_import_paths_forward_with_a_deprecation_warning():
    import captum_higher_order.datasets as old_package
    import captum_higher_order.datasets.synthetic as old_module
    from captum_higher_order import zoo

    for old in (old_package, old_module):
        for name in ("NID_FUNCTIONS", "SyntheticFunction", "nid_function", "planted_products"):
            with pytest.warns(DeprecationWarning, match=f"import {name} from "
                              "captum_higher_order.zoo.synthetic"):
                assert getattr(old, name) is getattr(zoo, name)
    with pytest.warns(DeprecationWarning, match="captum_higher_order.zoo.synthetic"):
        from captum_higher_order.datasets import nid_function as old_nid
    assert old_nid is nid_function
    with pytest.raises(AttributeError, match="no attribute 'F1'"):
        old_package.F1  # noqa: B018
