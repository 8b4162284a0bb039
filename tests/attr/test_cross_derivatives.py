"""CrossDerivatives against closed forms, torch.func oracles and axioms."""

import importlib.util
import itertools
import math
import os

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from captum_higher_order._inputs import ZeroHessianWarning
from captum_higher_order.attr.cross_derivatives import CrossDerivatives, InteractionRanking
from captum_higher_order.hessian import mixed_derivative_rows
from captum_higher_order.metrics.interactions import interaction_auc
from captum_higher_order.zoo.synthetic import nid_function, planted_products
from tests.models import mlp, two_input_net

DT = torch.float64


def poly(x):
    """x1 x2 x3 + sin(x4) x5 (0-based: x0 x1 x2 + sin(x3) x4)."""
    return x[:, 0] * x[:, 1] * x[:, 2] + torch.sin(x[:, 3]) * x[:, 4]


def _sin_derivative(t, n):
    # d^n/dt^n sin(t) = sin(t + n pi / 2)
    return math.sin(t + n * math.pi / 2)


def poly_partial(x, idx):
    """Closed form of d^k poly / dx_idx[0] ... dx_idx[k-1] at one point x."""
    counts = [idx.count(i) for i in range(5)]
    value = 0.0
    # x0 x1 x2: each variable at most once.
    if all(c <= 1 for c in counts[:3]) and sum(counts[3:]) == 0:
        value += math.prod(float(x[i]) for i in range(3) if counts[i] == 0)
    # sin(x3) x4: only x3 and x4, x4 at most once.
    if sum(counts[:3]) == 0 and counts[4] <= 1:
        s = _sin_derivative(float(x[3]), counts[3])
        value += s * (float(x[4]) if counts[4] == 0 else 1.0)
    return value


@pytest.mark.parametrize("order", [2, 3, 4])
def test_exact_mixed_partials_of_polynomial(order):
    x = torch.randn(4, 5, dtype=DT)
    result = CrossDerivatives(poly).attribute(x, order=order, absolute=False)
    assert result.shape == (4,) + (5,) * order
    expected = torch.zeros_like(result)
    for b in range(4):
        for idx in itertools.product(range(5), repeat=order):
            expected[(b,) + idx] = poly_partial(x[b], list(idx))
    torch.testing.assert_close(result, expected, atol=1e-8, rtol=0)
    absolute = CrossDerivatives(poly).attribute(x, order=order)
    torch.testing.assert_close(absolute, expected.abs(), atol=1e-8, rtol=0)


def test_rev_rev_mode_matches_forward_mode():
    x = torch.randn(3, 5, dtype=DT)
    cd = CrossDerivatives(poly)
    fwd = cd.attribute(x, order=4, absolute=False, mode="fwd_rev")
    rev = cd.attribute(x, order=4, absolute=False, mode="rev_rev")
    torch.testing.assert_close(fwd, rev, atol=1e-10, rtol=0)


def _third_derivative_oracle(fn, x):
    """(B, F, F, F) from torch.func: jacfwd of the exact per-sample Hessian."""
    def single(z):
        return fn(z.unsqueeze(0)).reshape(())

    third = torch.func.jacfwd(torch.func.hessian(single))
    return torch.stack([third(row) for row in x])


def test_order3_matches_torch_func_on_mlp():
    model = mlp(d_in=5, hidden=8, d_out=3, act=torch.nn.GELU)
    x = torch.randn(3, 5, dtype=DT)
    result = CrossDerivatives(model).attribute(x, target=1, order=3, absolute=False)
    expected = _third_derivative_oracle(lambda z: model(z)[:, 1], x)
    torch.testing.assert_close(result, expected, atol=1e-10, rtol=1e-8)


def test_order3_tuple_inputs_flattened_in_order():
    model = two_input_net()
    x1, x2 = torch.randn(2, 3, dtype=DT), torch.randn(2, 2, 2, dtype=DT)
    scale = torch.tensor([1.0, 0.5], dtype=DT)
    result = CrossDerivatives(model).attribute(
        (x1, x2), target=[2, 0], additional_forward_args=(scale,), order=3,
        objective="log_softmax", absolute=False,
    )
    assert result.shape == (2, 7, 7, 7)
    flat = torch.cat([x1, x2.flatten(1)], dim=1)
    for b, t in enumerate([2, 0]):
        def score(z, b=b, t=t):
            out = model(z[:, :3], z[:, 3:].reshape(-1, 2, 2), scale[b : b + 1])
            return torch.log_softmax(out, dim=1)[:, t]

        expected = _third_derivative_oracle(score, flat[b : b + 1])[0]
        torch.testing.assert_close(result[b], expected, atol=1e-10, rtol=1e-8)


def test_additive_function_has_zero_cross_terms():
    def additive(x):
        return torch.sin(x[:, 0]) + x[:, 1] ** 3 + torch.exp(x[:, 2]) + torch.tanh(x[:, 3])

    x = torch.randn(3, 4, dtype=DT)
    cd = CrossDerivatives(additive)
    pairs = cd.attribute(x, absolute=False)
    off = ~torch.eye(4, dtype=torch.bool)
    assert bool((pairs[:, off] == 0).all())
    diag = torch.stack(
        [-torch.sin(x[:, 0]), 6 * x[:, 1], torch.exp(x[:, 2]),
         -2 * torch.tanh(x[:, 3]) * (1 - torch.tanh(x[:, 3]) ** 2)], dim=1,
    )
    torch.testing.assert_close(torch.diagonal(pairs, dim1=1, dim2=2), diag, atol=1e-10, rtol=0)
    triples = cd.attribute(x, order=3, absolute=False)
    for i, j, k in itertools.product(range(4), repeat=3):
        if len({i, j, k}) > 1:
            assert bool((triples[:, i, j, k] == 0).all())


def test_symmetry():
    model = mlp(d_in=5, hidden=8, d_out=3, act=torch.nn.GELU)
    x = torch.randn(2, 5, dtype=DT)
    cd = CrossDerivatives(model)
    pairs = cd.attribute(x, target=0, absolute=False)
    torch.testing.assert_close(pairs, pairs.transpose(1, 2), atol=0, rtol=0)
    triples = cd.attribute(x, target=0, order=3, absolute=False)
    for perm in itertools.permutations([1, 2, 3]):
        torch.testing.assert_close(triples.permute(0, *perm), triples, atol=0, rtol=0)


def _block_sum(dense, index, num_groups):
    """Sum a (B, F, ..., F) tensor over the blocks of a group index (F,)."""
    out = dense
    for dim in range(1, dense.dim()):
        shape = list(out.shape)
        shape[dim] = num_groups
        summed = torch.zeros(shape, dtype=out.dtype)
        summed.index_add_(dim, index, out)
        out = summed
    return out


@pytest.mark.parametrize("order", [2, 3])
def test_grouped_equals_block_sums(order):
    model = mlp(d_in=6, hidden=8, d_out=3, act=torch.nn.GELU)
    x = torch.randn(2, 6, dtype=DT)
    ids = torch.tensor([5, 5, 1, 7, 7, 1])  # non-contiguous ids, ordered 1, 5, 7
    cd = CrossDerivatives(model)
    full = cd.attribute(x, target=2, order=order, absolute=False)
    grouped = cd.attribute(x, target=2, order=order, absolute=False, feature_mask=ids[None])
    index = torch.tensor([1, 1, 0, 2, 2, 0])
    torch.testing.assert_close(grouped, _block_sum(full, index, 3), atol=1e-10, rtol=1e-8)


def test_ranked_exhaustive_equals_sorted_dense():
    model = mlp(d_in=6, hidden=8, d_out=3, act=torch.nn.GELU)
    x = torch.randn(2, 6, dtype=DT)
    cd = CrossDerivatives(model)
    dense = cd.attribute(x, target=1, order=3)
    ranking = cd.attribute(x, target=1, order=3, top_k=5, search="exhaustive")
    assert isinstance(ranking, InteractionRanking)
    assert ranking.indices.shape == (2, 5, 3) and ranking.scores.shape == (2, 5)
    for b in range(2):
        entries = sorted(
            ((float(dense[b, i, j, k]), (i, j, k))
             for i, j, k in itertools.combinations(range(6), 3)),
            reverse=True,
        )[:5]
        assert [tuple(t) for t in ranking.indices[b].tolist()] == [e[1] for e in entries]
        torch.testing.assert_close(
            ranking.scores[b], torch.tensor([e[0] for e in entries], dtype=DT),
            atol=1e-12, rtol=0,
        )
    lists = ranking.as_lists(feature_names=list("abcdef"))
    assert len(lists) == 2 and len(lists[0][0][0]) == 3 and isinstance(lists[0][0][1], float)


def test_exhaustive_blocks_merge_like_one_pass(monkeypatch):
    import captum_higher_order.attr._interaction_sets as module

    model = mlp(d_in=6, hidden=8, d_out=3, act=torch.nn.GELU)
    x = torch.randn(2, 6, dtype=DT)
    cd = CrossDerivatives(model)
    whole = cd.attribute(x, target=1, order=3, top_k=7, search="exhaustive")
    monkeypatch.setattr(module, "EXHAUSTIVE_BLOCK", 4)  # 15 pairs -> 4 blocks
    blocks = cd.attribute(x, target=1, order=3, top_k=7, search="exhaustive")
    assert torch.equal(blocks.indices, whole.indices)
    torch.testing.assert_close(blocks.scores, whole.scores, atol=1e-12, rtol=0)


def test_greedy_with_wide_beam_equals_exhaustive():
    model = mlp(d_in=6, hidden=8, d_out=3, act=torch.nn.GELU)
    x = torch.randn(2, 6, dtype=DT)
    cd = CrossDerivatives(model)
    exhaustive = cd.attribute(x, target=0, order=4, top_k=6, search="exhaustive")
    greedy = cd.attribute(x, target=0, order=4, top_k=6, search="greedy", beam=1000)
    torch.testing.assert_close(greedy.scores, exhaustive.scores, atol=1e-12, rtol=0)
    assert torch.equal(greedy.indices, exhaustive.indices)


def test_greedy_finds_planted_higher_order_sets():
    # Only the 7 pairs inside planted sets have nonzero cross derivatives; a
    # beam of 7 keeps them all, and extending them by one feature reaches the
    # planted triples (every other triple is exactly zero).
    f = planted_products(9, interactions=[(0, 1, 2), (3, 4, 5), (6, 7)], seed=3)
    x = torch.empty(4, 9, dtype=DT).uniform_(-1, 1)
    ranking = CrossDerivatives(f).attribute(x, order=3, top_k=2, search="greedy", beam=7)
    for b in range(4):
        assert {tuple(t) for t in ranking.indices[b].tolist()} == {(0, 1, 2), (3, 4, 5)}
    assert bool((ranking.scores >= 1).all())  # |c_S| ~ U(1, 2)


def test_pairs_top_k_and_clamping():
    x = torch.randn(2, 5, dtype=DT)
    ranking = CrossDerivatives(poly).attribute(x, top_k=100)
    assert ranking.indices.shape == (2, 10, 2)  # clamped to C(5, 2)
    dense = CrossDerivatives(poly).attribute(x)
    for b in range(2):
        i, j = ranking.indices[b, 0].tolist()
        assert float(ranking.scores[b, 0]) == float(dense[b].triu(1).max())
        assert float(dense[b, i, j]) == float(ranking.scores[b, 0])


def test_mixed_derivative_rows_per_sample_directions():
    x = torch.randn(2, 5, dtype=DT)
    eye = torch.eye(5, dtype=DT)
    # sample 0 differentiates along (e0, e1), sample 1 along (e3, e3)
    dirs = torch.stack([torch.stack([eye[0], eye[3]]), torch.stack([eye[1], eye[3]])])
    rows = mixed_derivative_rows(poly, x, dirs.unsqueeze(0))
    assert rows.shape == (1, 2, 5)
    assert float(rows[0, 0, 2]) == 1.0  # d3/dx0 dx1 dx2
    torch.testing.assert_close(rows[0, 1, 4], -torch.sin(x[1, 3]))  # d3/dx3 dx3 dx4
    with pytest.raises(ValueError, match=r"\(m, j, F\)"):
        mixed_derivative_rows(poly, x, torch.zeros(1, 2, 4, dtype=DT))


def _dataset(n=70):
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(n, 6, generator=gen, dtype=DT)
    y = torch.randint(0, 3, (n,), generator=gen)
    return x, y


def test_global_over_dataloader_equals_mean_of_local():
    model = mlp(d_in=6, hidden=8, d_out=3, act=torch.nn.GELU)
    x, y = _dataset()
    loader = DataLoader(TensorDataset(x, y), batch_size=16)  # 5 batches, last partial
    cd = CrossDerivatives(model)
    result = cd.global_interactions(loader, target=lambda batch: batch[1])
    local = cd.attribute(x, target=y, absolute=False)
    assert result.num_samples == 70 and result.aggregation == "mean_abs"
    torch.testing.assert_close(result.scores, local.abs().mean(0), atol=1e-12, rtol=1e-10)
    # ranking: all 15 pairs, strongest first, consistent with the matrix
    assert len(result.ranking) == 15
    (i, j), top = result.ranking[0]
    assert top == float(result.scores[i, j]) == float(result.scores.triu(1).max())


@pytest.mark.parametrize(
    "aggregation, reduce, order",
    [
        ("mean", lambda s: s.mean(0), 3),
        ("max_abs", lambda s: s.abs().amax(0), 2),
        ("rms", lambda s: s.square().mean(0).sqrt(), 2),
    ],
)
def test_global_aggregations_streaming(aggregation, reduce, order):
    model = mlp(d_in=6, hidden=8, d_out=3, act=torch.nn.GELU)
    x, _ = _dataset(45)
    cd = CrossDerivatives(model)
    # A generator: consumed once, batch by batch, never materialised.
    batches = (x[i : i + 10] for i in range(0, 45, 10))
    result = cd.global_interactions(
        batches, target=2, aggregation=aggregation, order=order, top_k=4,
        feature_names=list("abcdef"),
    )
    local = cd.attribute(x, target=2, order=order, absolute=False)
    torch.testing.assert_close(result.scores, reduce(local), atol=1e-12, rtol=1e-10)
    assert len(result.ranking) == 4 and all(isinstance(n, str) for n in result.ranking[0][0])


def test_global_tensor_data_and_grouping():
    f = planted_products(6, interactions=[(0, 1), (2, 3)], seed=1)
    x, _ = f.sample(300, dtype=DT)
    mask = torch.tensor([[0, 0, 1, 1, 2, 2]])
    result = CrossDerivatives(f).global_interactions(x, feature_mask=mask, batch_size=64)
    assert result.scores.shape == (3, 3) and result.num_samples == 300
    # the planted pairs lie inside groups: between groups only linear terms, zero
    assert float(result.scores[0, 1]) == float(result.scores[1, 2]) == 0.0
    assert float(result.scores[0, 0]) > 1.0


def test_errors():
    x = torch.randn(2, 5, dtype=DT)
    cd = CrossDerivatives(poly)
    with pytest.raises(ValueError, match="order"):
        cd.attribute(x, order=1)
    with pytest.raises(ValueError, match="feature_mask"):
        cd.attribute(x, order=3, max_dense_entries=100)
    with pytest.raises(ValueError, match="feature_mask"):
        cd.attribute(x, max_features=4)
    with pytest.raises(ValueError, match="top_k"):
        cd.attribute(x, order=3, top_k=0)
    with pytest.raises(ValueError, match="mode"):
        cd.attribute(x, order=3, mode="ggn")
    with pytest.raises(ValueError, match="aggregation"):
        cd.global_interactions(x, aggregation="median")
    with pytest.raises(ValueError, match="no samples"):
        cd.global_interactions([])
    with pytest.raises(TypeError, match="inputs_fn"):
        cd.global_interactions([{"x": x}])


def test_relu_network_warns_zero_derivatives():
    model = mlp(d_in=4, hidden=6, d_out=1, act=torch.nn.ReLU)
    with pytest.warns(ZeroHessianWarning):
        out = CrossDerivatives(model).attribute(torch.randn(2, 4, dtype=DT), order=3)
    assert not bool(out.any())


# --------------------------------------------------------------------------- smoke


def _load_benchmark():
    path = os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks", "interactions.py")
    spec = importlib.util.spec_from_file_location("bench_interactions", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_smoke_training_free():
    """The benchmark pipeline on F10 with a closed-form (ridge) random-feature
    GELU network: no gradient training, a second or so."""
    bench = _load_benchmark()
    f = nid_function("F10")
    x_tr, y_tr, x_ev, _ = bench.make_data(f, 1500, 200, seed=0)
    x_tr, y_tr, x_ev = x_tr.double(), y_tr.double(), x_ev.double()
    model = bench.random_features_model(x_tr, y_tr, width=300)
    auc2, auc3 = bench.cross_derivative_aucs(model, f, x_ev, x_ev[:60])
    assert auc2 > 0.8
    assert auc3 > 0.7
    # the same pipeline on the true function is (nearly) perfect
    auc2_true, _ = bench.cross_derivative_aucs(f, f, x_ev, None)
    assert auc2_true > 0.95
    assert interaction_auc(bench.nid_pairwise(model), f.interactions) >= 0.0
