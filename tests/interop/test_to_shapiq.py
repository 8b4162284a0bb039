"""to_shapiq: values against closed forms and against shapiq's own exact
interaction indices, completeness carried over, shapiq's plots draw the result."""

import sys

import matplotlib
import numpy as np
import pytest
import torch

from captum_higher_order import CrossDerivatives, IntegratedHessians
from captum_higher_order.interop import to_shapiq

shapiq = pytest.importorskip("shapiq")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

DT = torch.float64
# f(x) = x^T A x / 2 with a zero diagonal: a pure pairwise polynomial.
A = torch.tensor(
    [[0.0, 2.0, -1.0, 0.0], [2.0, 0.0, 0.5, 0.0], [-1.0, 0.5, 0.0, 3.0], [0.0, 0.0, 3.0, 0.0]],
    dtype=DT,
)


def quadratic(x):
    return 0.5 * torch.einsum("bi,ij,bj->b", x, A, x)


def test_cross_derivatives_batch_matches_hessian():
    x = torch.randn(3, 4, dtype=DT)
    h = CrossDerivatives(quadratic).attribute(x, absolute=False)
    ivs = to_shapiq(h, feature_names=list("abcd"))
    assert isinstance(ivs, list) and len(ivs) == 3
    for iv in ivs:
        assert iv.n_players == 4 and iv.max_order == 2 and iv.min_order == 0
        assert iv.feature_names == list("abcd")
        for i in range(4):
            assert iv[(i,)] == 0.0
            for j in range(i + 1, 4):
                assert iv[(i, j)] == pytest.approx(float(A[i, j]), abs=1e-12)


def test_pairwise_polynomial_equals_shapiq_exact_ksii():
    """For a game with pairwise terms only, every order-2 Shapley interaction
    index equals the Moebius coefficient a_ij x_i x_j (baseline 0): our
    Hessian scaled by x_i x_j, through to_shapiq, must equal shapiq's exact
    k-SII of the game v(S) = f(x_S, 0)."""
    x = torch.tensor([[0.7, -1.3, 0.4, 2.0]], dtype=DT)
    h = CrossDerivatives(quadratic).attribute(x, absolute=False)[0]
    ours = to_shapiq(h * torch.outer(x[0], x[0]), baseline_value=0.0)

    def game(coalitions):
        masked = torch.as_tensor(coalitions, dtype=DT) * x
        return quadratic(masked).numpy()

    exact = shapiq.ExactComputer(game, n_players=4)(index="k-SII", order=2)
    for i in range(4):
        assert ours[(i,)] == pytest.approx(exact[(i,)], abs=1e-10)
        for j in range(i + 1, 4):
            assert ours[(i, j)] == pytest.approx(exact[(i, j)], abs=1e-10)


def test_integrated_hessians_completeness_survives():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(5, 16), torch.nn.Softplus(), torch.nn.Linear(16, 1)
    ).to(DT).eval()
    x = torch.randn(2, 5, dtype=DT)
    base = torch.randn(1, 5, dtype=DT)
    ih = IntegratedHessians(model).attribute(x, baselines=base, n_steps=32)
    with torch.no_grad():
        f_base = float(model(base).squeeze())
    ivs = to_shapiq(ih, main_effects="diagonal", pairs="sum", baseline_value=f_base)
    with torch.no_grad():
        f_x = model(x).squeeze(1)
    for b, iv in enumerate(ivs):
        assert float(iv.values.sum()) == pytest.approx(float(f_x[b]), abs=1e-8)
        assert iv.baseline_value == pytest.approx(f_base)


def test_main_effects_from_attributions_and_global_result():
    x = torch.randn(50, 4, dtype=DT)
    res = CrossDerivatives(quadratic).global_interactions(x)
    iv = to_shapiq(res, main_effects=torch.arange(4.0))
    assert iv[(3,)] == 3.0 and iv[(2, 3)] == pytest.approx(3.0)
    batch = to_shapiq(torch.zeros(2, 4, 4), main_effects=torch.ones(2, 1, 2, 2))
    assert batch[1][(2,)] == 1.0


def test_shapiq_plots_draw_our_result():
    x = torch.randn(1, 4, dtype=DT)
    h = CrossDerivatives(quadratic).attribute(x, absolute=False)[0]
    iv = to_shapiq(h, feature_names=list("abcd"), main_effects=torch.tensor([1.0, -1, 2, 0]))
    fig, ax = shapiq.plot.network_plot(iv, feature_names=iv.feature_names)
    assert fig is ax.figure
    figures = [
        fig,
        shapiq.plot.force_plot(iv, feature_names=iv.feature_names),
        shapiq.plot.upset_plot(iv, feature_names=iv.feature_names),
    ]
    assert all(isinstance(f, matplotlib.figure.Figure) for f in figures)
    for f in figures:
        plt.close(f)


@pytest.mark.parametrize(
    "result, kwargs, message",
    [
        (torch.zeros(4, 3), {}, "shape"),
        (torch.zeros(2, 2, 3, 3), {}, "shape"),
        (torch.full((3, 3), float("nan")), {}, "NaN"),
        (torch.zeros(3, 3), {"feature_names": ["a"]}, "names"),
        (torch.zeros(3, 3), {"pairs": "mean"}, "pairs"),
        (torch.zeros(3, 3), {"main_effects": "trace"}, "main_effects"),
        (torch.zeros(3, 3), {"main_effects": torch.ones(5)}, "main_effects"),
    ],
)
def test_bad_input_says_what_to_change(result, kwargs, message):
    with pytest.raises(ValueError, match=message):
        to_shapiq(result, **kwargs)


def test_not_a_tensor_is_a_type_error():
    with pytest.raises(TypeError, match="Tensor"):
        to_shapiq(np.zeros((3, 3)))


def test_missing_shapiq_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "shapiq", None)
    with pytest.raises(ImportError, match=r"captum-higher-order\[interop\]"):
        to_shapiq(torch.zeros(3, 3))
