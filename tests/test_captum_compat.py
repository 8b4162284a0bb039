"""The one module wrapping Captum's private helpers works on this Captum.

`make test` runs this file and the contract suite a second time against the oldest
Captum that setup.py admits (captum 0.8.0), with CAPTUM_HO_EXPECT_CAPTUM set so the
run cannot silently test the wrong version.
"""

import os

import captum
import pytest
import torch
from captum.attr import NoiseTunnel, Saliency

from captum_higher_order import _captum


def test_expected_captum_version_is_the_one_imported():
    expected = os.environ.get("CAPTUM_HO_EXPECT_CAPTUM")
    if expected is None:
        pytest.skip("no specific Captum version requested")
    assert captum.__version__ == expected


def test_format_helpers_round_trip():
    x = torch.randn(2, 3)
    assert _captum.format_tensor_into_tuples(x)[0] is x
    assert _captum.format_output(False, (x,)) is x
    assert _captum.format_output(True, (x,)) == (x,)
    assert _captum.is_tuple((x,)) and not _captum.is_tuple(x)
    assert _captum.format_additional_forward_args(3) == (3,)
    assert _captum.format_additional_forward_args(None) is None


@pytest.mark.parametrize("method", ["gausslegendre", "riemann_trapezoid", "riemann_left"])
def test_quadrature_rules_integrate_polynomials(method):
    step_sizes, alphas = _captum.approximation_parameters(method)
    n = 64
    weights = torch.tensor(step_sizes(n), dtype=torch.float64)
    points = torch.tensor(alphas(n), dtype=torch.float64)
    assert abs(float((weights * points**2).sum()) - 1 / 3) < 2e-2


def test_log_usage_keeps_wrapped_for_noise_tunnel():
    class Doubling(Saliency):
        @_captum.log_usage()
        def attribute(self, inputs, target=None, abs=True, additional_forward_args=None):
            return 2 * inputs

    decorated = Doubling(lambda x: x.sum(1)).attribute
    assert hasattr(decorated, "__wrapped__")
    x = torch.ones(2, 3)
    nt = NoiseTunnel(Doubling(lambda x: x.sum(1)))
    out = nt.attribute(x, nt_type="smoothgrad", nt_samples=4, stdevs=0.0)
    assert torch.allclose(out, 2 * x)
