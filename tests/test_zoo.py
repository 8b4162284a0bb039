"""The embedded models load, are accurate, and their training script reproduces them."""

import json

import pytest
import torch

from captum_higher_order import zoo
from captum_higher_order.zoo import train


def test_digits_cnn_test_accuracy_at_least_95_percent():
    model = zoo.load_digits_cnn()
    assert not model.training
    x_te, y_te = zoo.load_digits_data("test")
    assert x_te.shape == (450, 1, 8, 8)
    with torch.no_grad():
        acc = (model(x_te).argmax(1) == y_te).float().mean().item()
    assert acc >= 0.95
    # the recorded number is the one the committed weights give
    assert acc == pytest.approx(zoo.digits_metadata()["test_accuracy"], abs=1e-4)


def test_shipped_samples_come_from_the_test_split_and_are_classified():
    images, labels = zoo.digits_samples()
    assert images.shape == (20, 1, 8, 8) and labels.tolist() == sorted(list(range(10)) * 2)
    assert 0.0 <= images.min() and images.max() <= 1.0
    x_tr, _, x_te, _ = zoo.load_digits_data()
    flat = images.reshape(20, -1)
    # every shipped digit is a test digit and none is a training digit
    assert (torch.cdist(flat, x_te.reshape(len(x_te), -1)).min(1).values == 0).all()
    assert (torch.cdist(flat, x_tr.reshape(len(x_tr), -1)).min(1).values > 0).all()
    with torch.no_grad():
        assert (zoo.load_digits_cnn()(images).argmax(1) == labels).float().mean() >= 0.9


def test_planted_mlp_fits_the_planted_function():
    model = zoo.load_planted_mlp()
    x = zoo.sample_inputs(2048, seed=123)  # not the training seed
    y = zoo.planted_function(x)
    with torch.no_grad():
        pred = model(x)
    assert pred.shape == (2048,)
    r2 = 1 - ((pred - y) ** 2).mean() / y.var()
    assert r2 > 0.99


def test_planted_function_interactions_match_its_exact_hessian():
    # the ground truth lists exactly the nonzero off-diagonal Hessian entries
    x = zoo.sample_inputs(16, seed=5).double()
    hess = torch.stack(
        [torch.autograd.functional.hessian(lambda v: zoo.planted_function(v[None])[0], xi)
         for xi in x]
    )
    off = hess.abs().amax(0) * (1 - torch.eye(8, dtype=torch.double))
    assert torch.equal(off > 1e-9, zoo.planted_pair_matrix())
    assert zoo.FEATURE_NAMES[7] == "x7" and off[7].abs().max() == 0


def test_loaders_without_weights_and_on_device():
    fresh = zoo.load_digits_cnn(pretrained=False)
    out = fresh(torch.zeros(2, 1, 8, 8))
    assert out.shape == (2, 10)
    assert zoo.load_planted_mlp(pretrained=False)(torch.zeros(3, 8)).shape == (3,)
    with pytest.raises(ValueError, match="split"):
        zoo.load_digits_data("validation")


def test_training_script_reproduces_the_committed_digits_weights(tmp_path):
    assert train.main(["--only", "digits", "--out", str(tmp_path)]) == 0
    with open(tmp_path / "digits_cnn.json") as f:
        meta = json.load(f)
    assert meta["test_accuracy"] >= 0.95
    assert meta["test_accuracy"] == pytest.approx(
        zoo.digits_metadata()["test_accuracy"], abs=0.01
    )
    # same predictions as the committed weights (bitwise equality would tie the
    # test to one CPU's floating-point reductions)
    fresh = zoo.DigitsCNN()
    fresh.load_state_dict(torch.load(tmp_path / "digits_cnn.pt", weights_only=True))
    x_te, _ = zoo.load_digits_data("test")
    with torch.no_grad():
        agree = (fresh.eval()(x_te).argmax(1) == zoo.load_digits_cnn()(x_te).argmax(1))
    assert agree.float().mean() >= 0.97
    assert (tmp_path / "digits_samples.json").exists()
