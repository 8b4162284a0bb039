"""rank_interactions and interaction_auc on hand-made rankings with known AUC."""

import pytest
import torch

from captum_higher_order.metrics.interactions import (
    interaction_auc,
    rank_interactions,
    roc_auc,
)


def _pair_matrix(num, scores):
    m = torch.zeros(num, num)
    for (i, j), s in scores.items():
        m[i, j] = m[j, i] = s
    return m


def test_perfect_and_reversed_rankings():
    # 4 features, ground truth {0, 1}: 1 positive pair, 5 negative pairs.
    scores = {(0, 1): 6.0, (0, 2): 5.0, (0, 3): 4.0, (1, 2): 3.0, (1, 3): 2.0, (2, 3): 1.0}
    m = _pair_matrix(4, scores)
    assert interaction_auc(m, [{0, 1}]) == 1.0
    assert interaction_auc(-m, [{0, 1}]) == 0.0


def test_known_partial_auc():
    # The positive (0, 1) ranks second of six: it beats 4 of 5 negatives.
    scores = {(0, 2): 6.0, (0, 1): 5.0, (0, 3): 4.0, (1, 2): 3.0, (1, 3): 2.0, (2, 3): 1.0}
    assert interaction_auc(_pair_matrix(4, scores), [{0, 1}]) == pytest.approx(4 / 5)
    # Two positives {0,1} and {2,3}: positive scores 5 and 1 against
    # negatives 6, 4, 3, 2 -> pairs won: 3 + 0 = 3 of 8.
    assert interaction_auc(_pair_matrix(4, scores), [{0, 1}, {2, 3}]) == pytest.approx(3 / 8)


def test_ties_count_one_half():
    scores = {(0, 1): 2.0, (0, 2): 2.0, (0, 3): 1.0, (1, 2): 1.0, (1, 3): 1.0, (2, 3): 1.0}
    # positive ties one negative at 2 (1/2) and beats the other four: 4.5 / 5
    assert interaction_auc(_pair_matrix(4, scores), [{0, 1}]) == pytest.approx(0.9)
    assert interaction_auc(torch.ones(4, 4), [{0, 1}]) == 0.5


def test_subset_convention_for_pairs_and_triples():
    # One planted triple {0, 1, 2} in 5 features: pairs inside it are positive.
    m = torch.zeros(5, 5)
    for i, j in [(0, 1), (0, 2), (1, 2)]:
        m[i, j] = m[j, i] = 1.0
    assert interaction_auc(m, [{0, 1, 2}]) == 1.0
    t = torch.zeros(5, 5, 5)
    t[0, 1, 2] = 1.0  # only the sorted entry is read; the triple ranks first
    assert interaction_auc(t, [{0, 1, 2}], order=3) == 1.0
    # a planted pair has no positive triple
    with pytest.raises(ValueError, match="positives and negatives"):
        interaction_auc(t, [{0, 1}], order=3)


def test_list_and_mapping_inputs():
    ranking = [((0, 1), 3.0), ((2, 3), 2.0), ((1, 2), 1.0)]
    # 1 positive above 2 negatives
    assert interaction_auc(ranking, [{0, 1}]) == 1.0
    assert interaction_auc(dict(ranking), [{1, 2}]) == 0.0
    # with num_features the 3 unlisted pairs are negatives scored below all
    # listed: positive (1, 2) beats those 3 and loses to 2 -> 3 / 5
    assert interaction_auc(ranking, [{1, 2}], num_features=4) == pytest.approx(3 / 5)
    with pytest.raises(ValueError, match="distinct"):
        interaction_auc([((0, 0), 1.0), ((1, 2), 0.5)], [{0, 1}])
    with pytest.raises(ValueError, match="dims"):
        interaction_auc(torch.zeros(4, 4), [{0, 1, 2}], order=3)


def test_roc_auc_matches_sklearn():
    metrics = pytest.importorskip("sklearn.metrics")
    gen = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 6, (200,), generator=gen).double()  # many ties
    labels = torch.rand(200, generator=gen) < 0.3
    expected = metrics.roc_auc_score(labels.numpy(), scores.numpy())
    assert roc_auc(scores, labels) == pytest.approx(expected, abs=1e-12)


def test_rank_interactions():
    m = torch.tensor([[9.0, 3.0, 1.0], [3.0, 9.0, -5.0], [1.0, -5.0, 9.0]])
    assert rank_interactions(m) == [((1, 2), -5.0), ((0, 1), 3.0), ((0, 2), 1.0)]
    assert rank_interactions(m, k=1, feature_names=["a", "b", "c"]) == [(("b", "c"), -5.0)]
    t = torch.zeros(4, 4, 4)
    t[0, 2, 3] = 2.0
    t[1, 1, 1] = 10.0  # repeated indices are not interactions
    top = rank_interactions(t, k=2)
    assert top[0] == ((0, 2, 3), 2.0) and len(top) == 2
    with pytest.raises(ValueError, match="per sample"):
        rank_interactions(torch.zeros(2, 3, 3))
    with pytest.raises(ValueError, match="names"):
        rank_interactions(m, feature_names=["a"])
