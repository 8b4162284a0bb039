"""The dtype policy (docs/design.md, "Dtype policy"; issue 16.4).

* Inputs whose float dtype differs from the model's are never cast silently:
  when the forward fails on them, a ValueError names both dtypes; a model that
  casts its inputs itself keeps working.
* float16/bfloat16 models run in their dtype; the solvers' small dense algebra
  (Lanczos' tridiagonal eigh, block QR, quantiles) runs in float64/float32, so
  SecondOrderSaliency and GroupSparseSaliency work; results come back in the
  inputs' dtype within the stated error of a float64 run of the same (rounded)
  weights, and an overflow raises instead of returning NaN.
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch

import captum_higher_order as cho
from tests.models import mlp

HALF = [torch.float16, torch.bfloat16]
#: Stated relative Frobenius error against float64 (docs/design.md, "Dtype policy").
BOUND = {torch.float16: 5e-3, torch.bfloat16: 3e-2}

METHODS = {
    "CrossDerivatives": lambda f, x: cho.CrossDerivatives(f).attribute(x, target=0),
    "SecondOrderSaliency": lambda f, x: cho.SecondOrderSaliency(f).attribute(x, target=0),
    "GroupSparseSaliency": lambda f, x: cho.GroupSparseSaliency(f).attribute(
        x, target=0, lambda1=1e-4),
    "IntegratedHessians": lambda f, x: cho.IntegratedHessians(f).attribute(
        x, target=0, n_steps=4),
}


@pytest.mark.parametrize("dtype", HALF, ids=str)
@pytest.mark.parametrize("method", sorted(METHODS))
def test_half_precision_is_finite_and_within_the_stated_error(method, dtype):
    model = mlp(d_out=4, dtype=dtype)
    x = torch.randn(4, 6).to(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # solver tolerances in half precision
        got = METHODS[method](model, x)
        reference = METHODS[method](copy.deepcopy(model).double(), x.double())
    assert got.dtype == dtype and got.shape == reference.shape
    assert bool(torch.isfinite(got).all())
    err = float((got.double() - reference).norm() / reference.norm())
    bound = BOUND[dtype] * (2 if method == "GroupSparseSaliency" else 1)
    assert err < bound, err


def test_lanczos_tridiagonal_eigh_in_float64_for_half_dtypes():
    from captum_higher_order.hessian.lanczos import _tridiagonal_eigh

    alpha = torch.tensor([[2.0, 1.0, 3.0]], dtype=torch.bfloat16)
    beta = torch.tensor([[0.5, 0.25]], dtype=torch.bfloat16)
    theta, s = _tridiagonal_eigh(alpha, beta)
    t = torch.diag(alpha[0].double()) + torch.diag(beta[0].double(), 1) + torch.diag(
        beta[0].double(), -1)
    assert theta.dtype == torch.bfloat16 and s.dtype == torch.bfloat16
    torch.testing.assert_close(theta[0].double(), torch.linalg.eigvalsh(t), rtol=1e-2, atol=0)


class _Steep(torch.nn.Module):
    """Output below 1e-4, second derivative 9e4 * sin: overflows float16 (max 65504)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(3, dtype=torch.float16))

    def forward(self, x):
        return (torch.sin(self.w * x * 300 * 300) / 300 / 300).sum(1, keepdim=True)


@pytest.mark.parametrize("method", [cho.CrossDerivatives, cho.SecondOrderSaliency])
def test_float16_overflow_in_a_second_order_pass_raises_instead_of_nan(method):
    x = torch.full((2, 3), 0.3, dtype=torch.float16)
    kwargs = {"objective": "output"} if method is cho.SecondOrderSaliency else {}
    with pytest.raises(ValueError, match="overflowed to NaN/Inf in torch.float16"):
        method(_Steep()).attribute(x, target=0, **kwargs)


def test_float16_overflowing_output_raises():
    model = mlp(d_out=4, dtype=torch.float16)
    x = torch.full((2, 6), 6e4, dtype=torch.float16)
    with pytest.raises(ValueError, match="65504"):
        cho.CrossDerivatives(lambda z: model(z) * 1e4).attribute(x, target=0)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_mismatched_input_dtype_names_both_and_leaves_the_model(method):
    model = mlp(d_out=4)
    before = copy.deepcopy(model.state_dict())
    x = torch.randn(4, 6)  # float32 into a float64 model
    with pytest.raises(ValueError, match="torch.float32 but the model's parameters are "
                                         r"torch.float64.*x.to\(torch.float64\)"):
        METHODS[method](model, x)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert x.dtype == torch.float32


def test_model_that_casts_its_inputs_itself_keeps_working():
    model = mlp(d_out=4)

    class Casting(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = model

        def forward(self, x):
            return self.net(x.double())

    x = torch.randn(3, 6, dtype=torch.float64)
    ref = cho.CrossDerivatives(model).attribute(x, target=1)
    got = cho.CrossDerivatives(Casting()).attribute(x.float(), target=1)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), ref, rtol=1e-5, atol=1e-6)
