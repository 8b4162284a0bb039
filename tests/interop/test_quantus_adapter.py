"""quantus_explain: the maps it hands to Quantus equal the methods' own
(oracles: autograd gradients, the CAFO closed form), and two Quantus metrics
(faithfulness correlation, random-logit randomisation) run on the digits CNN."""

import warnings

import numpy as np
import pytest
import torch

from captum_higher_order import DTDRootCheck, GroupSparseSaliency
from captum_higher_order.interop import QUANTUS_METHODS, quantus_explain
from captum_higher_order.zoo import digits_samples, load_digits_cnn


@pytest.fixture(scope="module")
def digits():
    model = load_digits_cnn()
    images, labels = digits_samples()
    return model, images[:6], labels[:6]


def _grad(model, x, fn):
    x = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(fn(model(x)).sum(), x)
    return g


def test_smoothgrad_with_tiny_sigma_is_the_gradient(digits):
    model, x, y = digits
    a = quantus_explain(model, x.numpy(), y.numpy(), method="SmoothGrad", sigma=1e-4,
                        n_samples=8, generator=0)
    expected = _grad(model, x, lambda out: out.gather(1, y.view(-1, 1)))
    assert a.shape == tuple(x.shape) and a.dtype == np.float32
    np.testing.assert_allclose(a, expected.numpy(), atol=1e-4)


def test_first_order_caso_is_the_loss_gradient_over_lambda2(digits):
    model, x, y = digits
    a = quantus_explain(model, x.numpy(), y.numpy(), method="SecondOrderSaliency",
                        second_order=False, lambda2=2.0)
    loss = torch.nn.CrossEntropyLoss(reduction="sum")
    expected = _grad(model, x, lambda out: loss(out, y)) / 2.0
    np.testing.assert_allclose(a, expected.numpy(), atol=1e-6)


def test_targets_reach_the_method(digits):
    model, x, y = digits
    other = (y + 1) % 10
    a = quantus_explain(model, x.numpy(), y.numpy(), method="DTDRootCheck")
    b = quantus_explain(model, x.numpy(), other.numpy(), method="DTDRootCheck",
                        init_kwargs={"rule": "z+"})
    direct = DTDRootCheck(model, rule="z+").attribute(x, target=other)
    np.testing.assert_allclose(b, direct.detach().numpy(), rtol=1e-6, atol=1e-7)
    assert not np.allclose(a, b)
    sparse = quantus_explain(model, x[:1], y[:1].tolist(), method="GroupSparseSaliency")
    ref = GroupSparseSaliency(model).attribute(x[:1], target=y[:1])
    np.testing.assert_allclose(sparse, ref.detach().numpy(), atol=1e-6)


def test_quantus_metrics_score_our_maps(digits):
    quantus = pytest.importorskip("quantus")
    model, x, y = digits
    x_np, y_np = x.numpy(), y.numpy()
    kwargs = {"method": "SmoothGrad", "sigma": 0.1, "n_samples": 32, "generator": 0}

    def constant_map(model, inputs, targets, **_):
        return np.broadcast_to(np.linspace(0, 1, inputs[0].size, dtype=np.float32)
                               .reshape(inputs.shape[1:]), inputs.shape).copy()

    np.random.seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        faithfulness = quantus.FaithfulnessCorrelation(
            nr_runs=20, subset_size=8, perturb_baseline="black", abs=False,
            normalise=True, return_aggregate=True, disable_warnings=True,
        )(model=model, x_batch=x_np, y_batch=y_np, explain_func=quantus_explain,
          explain_func_kwargs=kwargs, device="cpu")
        random_logit = quantus.RandomLogit(
            num_classes=10, similarity_func=quantus.similarity_func.ssim,
            return_aggregate=True, disable_warnings=True, seed=0,
        )
        ours = random_logit(model=model, x_batch=x_np, y_batch=y_np,
                            explain_func=quantus_explain, explain_func_kwargs=kwargs,
                            device="cpu")
        blind = random_logit(model=model, x_batch=x_np, y_batch=y_np,
                             explain_func=constant_map, device="cpu")
    # SmoothGrad of the class score: removing high-attribution pixels lowers it.
    assert 0.0 < float(faithfulness[0]) <= 1.0
    # A map that ignores the class has similarity 1 between classes; ours changes.
    assert float(blind[0]) == pytest.approx(1.0)
    assert float(ours[0]) < 0.5


def test_bad_method_and_model():
    with pytest.raises(ValueError, match="choose one of"):
        quantus_explain(load_digits_cnn(), np.zeros((1, 1, 8, 8)), [0], method="LRP")
    with pytest.raises(TypeError, match="nn.Module"):
        quantus_explain(lambda x: x, np.zeros((1, 1, 8, 8)), [0])
    assert set(QUANTUS_METHODS) >= {"SecondOrderSaliency", "SmoothGrad", "DTDRootCheck"}
