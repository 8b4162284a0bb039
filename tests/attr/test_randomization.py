"""Cascading model randomisation (Adebayo et al. 2018): cascade semantics,
correlations against scipy on the maps of the recorded models, no side effects."""

import pytest
import torch
from captum.attr import InputXGradient, Saliency
from scipy.stats import spearmanr
from torch import nn

from captum_higher_order.attr.dtd_root_check import DTDRootCheck
from captum_higher_order.attr.randomization import cascading_randomization
from tests.models import mlp, small_cnn


def test_cascade_order_and_correlations_match_scipy():
    model = mlp(act=nn.ReLU)
    original = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(3, 6, dtype=torch.float64)
    rng_before = torch.get_rng_state()
    seen = []

    def factory(m):
        seen.append({k: v.clone() for k, v in m.state_dict().items()})
        return InputXGradient(m)

    res = cascading_randomization(factory, model, x, target=[0, 1, 2])
    assert res.layers == ["4", "2", "0"]
    assert torch.equal(torch.get_rng_state(), rng_before)
    for k, v in model.state_dict().items():
        assert torch.equal(v, original[k])
    # seen[0] is the original model; step l has layers[0..l] changed, the rest intact
    assert all(torch.equal(seen[0][k], original[k]) for k in original)
    for step in range(3):
        state = seen[step + 1]
        changed = {k.split(".")[0] for k in state if not torch.equal(state[k], original[k])}
        assert changed == set(res.layers[: step + 1])
    ref = InputXGradient(model).attribute(x, target=[0, 1, 2]).detach()
    for step in range(3):
        copy_model = mlp(act=nn.ReLU)
        copy_model.load_state_dict(seen[step + 1])
        cur = InputXGradient(copy_model).attribute(x, target=[0, 1, 2]).detach()
        for b in range(3):
            expected = spearmanr(cur[b], ref[b]).statistic
            assert res.spearman[b, step].item() == pytest.approx(expected, abs=1e-12)
            expected_abs = spearmanr(cur[b].abs(), ref[b].abs()).statistic
            assert res.spearman_abs[b, step].item() == pytest.approx(expected_abs, abs=1e-12)
    assert res.spearman[:, -1].mean() < 0.9  # a destroyed model explains differently


def test_works_with_dtd_and_layer_subset_and_errors():
    model = small_cnn(nn.ReLU)
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64)
    res = cascading_randomization(lambda m: DTDRootCheck(m, rule="z+"), model, x,
                                  target=1, layers=["fc", "conv2"], seed=3)
    assert res.spearman.shape == (2, 2) and res.layers == ["fc", "conv2"]
    assert bool(torch.isfinite(res.spearman).all())
    again = cascading_randomization(lambda m: DTDRootCheck(m, rule="z+"), model, x,
                                    target=1, layers=["fc", "conv2"], seed=3)
    assert torch.equal(res.spearman, again.spearman)
    assert "fc" in res.summary() and res.to_dict()["layers"] == ["fc", "conv2"]
    with pytest.raises(ValueError, match="No module named"):
        cascading_randomization(Saliency, model, x, target=1, layers=["nope"])
