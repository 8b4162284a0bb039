"""The forward's output is checked against the inputs' batch in every method
(issue 16.3, first bullet): transposed, batch-reduced, un-batched and non-tensor
outputs raise a ValueError that says what to change; good models still run."""

from __future__ import annotations

import pytest
import torch

import captum_higher_order as cho
from captum_higher_order._inputs import check_forward, format_inputs, select_objective
from tests.models import mlp, small_cnn

M = mlp(d_out=4)
X = torch.randn(4, 6, dtype=torch.float64)  # B == C == 4: shapes alone are ambiguous

METHODS = {
    "SecondOrderSaliency": lambda f, x, **k: cho.SecondOrderSaliency(f).attribute(x, **k),
    "GroupSparseSaliency": lambda f, x, **k: cho.GroupSparseSaliency(f).attribute(
        x, max_iter=5, search_steps=2, **k),
    "CrossDerivatives": lambda f, x, **k: cho.CrossDerivatives(f).attribute(x, **k),
    "IntegratedHessians": lambda f, x, **k: cho.IntegratedHessians(f).attribute(
        x, n_steps=2, **k),
    "SmoothHess": lambda f, x, **k: cho.SmoothHess(f).attribute(x, n_samples=4, **k),
}

BAD_MODELS = {
    "transposed (C, B)": (lambda x: M(x).T, "first sample alone"),
    "batch mean (C,)": (lambda x: M(x).mean(0), "first sample alone"),
    "batch mean keepdim": (lambda x: M(x).mean(0, keepdim=True), "for a batch of 4"),
    "tuple": (lambda x: (M(x), None), "returned a tuple"),
    "dict": (lambda x: {"logits": M(x)}, "returned a dict"),
    "0-d": (lambda x: M(x).sum(), "scalar"),
}


@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize("bad", sorted(BAD_MODELS))
def test_every_method_refuses_bad_outputs(method, bad):
    model, phrase = BAD_MODELS[bad]
    with pytest.raises(ValueError, match=phrase):
        METHODS[method](model, X, target=0)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_unbatched_input_is_refused(method):
    with pytest.raises(ValueError, match=r"unsqueeze\(0\)"):
        METHODS[method](M, torch.randn(6, dtype=torch.float64), target=0)


def test_unbatched_input_with_matching_output_size_is_refused():
    # (6,) in, (6,) out: the batch check passes, the one-sample probe fails.
    model = mlp(d_out=6)
    with pytest.raises(ValueError, match="fails on its first sample alone"):
        cho.CrossDerivatives(model).attribute(torch.randn(6, dtype=torch.float64), target=0)


class _Wrap(torch.nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.net = small_cnn()
        self.fn = fn

    def forward(self, x):
        return self.fn(self.net(x))


@pytest.mark.parametrize("fn, phrase", [
    (lambda o: o.T, "first sample alone"),
    (lambda o: o.mean(0), "first sample alone"),
    (lambda o: o.sum(), "scalar"),
])
def test_taylor_cam_refuses_bad_outputs(fn, phrase):
    model = _Wrap(fn)
    x = torch.randn(3, 1, 8, 8, dtype=torch.float64)  # B == C == 3
    with pytest.raises(ValueError, match=phrase):
        cho.TaylorCAM(model, model.net.conv2).attribute(x, target=0)


def test_good_outputs_pass_and_the_check_is_cached():
    calls = []

    def f(x):
        calls.append(x.shape[0])
        return M(x)

    fmt = format_inputs(X)
    out = check_forward(f, fmt)
    assert torch.equal(out, M(X).detach())
    assert calls == [4, 1]  # the batch, then the one-sample probe (B == C)
    check_forward(f, fmt)
    assert calls == [4, 1]
    # (B, C) with C != B is unambiguous: no probe.
    calls.clear()
    check_forward(f, format_inputs(torch.randn(3, 6, dtype=torch.float64)))
    assert calls == [3]


def test_transposed_output_was_a_silent_wrong_answer_and_now_matches_nothing():
    # The right answer for the wrapped model is the one for M with the
    # transpose undone; the check refuses instead of returning another one.
    good = cho.CrossDerivatives(M).attribute(X, target=0)
    assert good.shape == (4, 6, 6)
    with pytest.raises(ValueError, match="dim 0 of the output is not the batch"):
        cho.CrossDerivatives(lambda x: M(x).T).attribute(X, target=0)


def test_target_length_must_match_output_batch():
    with pytest.raises(ValueError, match="4 samples"):
        select_objective(torch.zeros(3, 2), torch.zeros(4, dtype=torch.long), "output")


def test_integrated_hessians_quotes_the_users_batch():
    with pytest.raises(ValueError, match=r"valid 0\.\.3\), got \[9, 9\]\.$"):
        cho.IntegratedHessians(M).attribute(X[:2], target=9, n_steps=2)
    with pytest.raises(ValueError, match="B=2"):
        cho.IntegratedHessians(lambda x: M(x).unsqueeze(-1)).attribute(
            X[:2], target=0, n_steps=2)


def test_inference_mode_is_refused_and_inference_tensors_are_copied():
    with torch.inference_mode():
        with pytest.raises(ValueError, match="inference_mode"):
            cho.CrossDerivatives(M).attribute(X, target=0)
        x_inf = X.clone()
    assert x_inf.is_inference()
    got = cho.SmoothHess(M).attribute(x_inf, target=0, n_samples=4,
                                      generator=torch.Generator().manual_seed(0))
    ref = cho.SmoothHess(M).attribute(X.clone(), target=0, n_samples=4,
                                      generator=torch.Generator().manual_seed(0))
    assert torch.equal(got, ref)


def test_no_grad_around_a_call_is_fine():
    ref = cho.CrossDerivatives(M).attribute(X, target=1)
    with torch.no_grad():
        got = cho.CrossDerivatives(M).attribute(X, target=1)
    torch.testing.assert_close(got, ref)


def test_auto_mode_does_not_rerun_a_forward_that_raised():
    # A user's error in the forward is not "forward AD unsupported": auto mode
    # must raise it at once instead of running the forward again in rev_rev.
    from captum_higher_order.hessian.engine import Engine, make_problem

    calls = []

    def failing(x):
        calls.append(1)
        raise RuntimeError("the user's model failed")

    problem = make_problem(failing, X, 0, None, "output", check_output=False)
    with pytest.raises(RuntimeError, match="the user's model failed"):
        Engine(problem, "auto").products((torch.ones(1, *X.shape, dtype=X.dtype),))
    assert len(calls) == 1


def test_taylor_cam_does_not_rerun_a_forward_that_raised():
    model = small_cnn()
    calls = {"n": 0, "fail_from": None}

    def hook(module, inp, out):
        calls["n"] += 1
        if calls["fail_from"] is not None and calls["n"] >= calls["fail_from"]:
            raise RuntimeError("user hook failed")

    handle = model.fc.register_forward_hook(hook)
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    try:
        cho.TaylorCAM(model, model.conv2).attribute(x, target=0)
        clean = calls["n"]  # forwards of a run without failure
        calls.update(n=0, fail_from=clean)  # fail in the last forward of the same call
        with pytest.raises(RuntimeError, match="user hook failed"):
            cho.TaylorCAM(model, model.conv2).attribute(x, target=0)
        assert calls["n"] == clean
    finally:
        handle.remove()
