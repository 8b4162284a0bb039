"""``captum-ho global`` (cli.global_.run_global), called in-process.

Oracles: the engine's exact Hessian and Captum's Saliency on the whole data,
the planted pairs of the embedded MLP, and the files the command writes.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch
from captum.attr import Saliency

from captum_higher_order import zoo
from captum_higher_order.cli.global_ import add_global_parser, run_global
from captum_higher_order.hessian import hessian
from tests.models import mlp

pytestmark = pytest.mark.filterwarnings("ignore:Input Tensor 0 did not already require")


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_global_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["global", *argv, "--no-progress"])


def test_embedded_mlp_exact_hessian_matches_the_engine(tmp_path, capsys):
    out = tmp_path / "out"
    code = run_global(parse("--model", "planted_mlp", "--method", "hessian", "--limit", "40",
                            "--batch-size", "16", "--dtype", "float64", "--top", "4",
                            "--out", str(out)))
    assert code == 0
    saved = torch.load(out / "global.pt", weights_only=False)
    x = zoo.sample_inputs(512, seed=1)[:40].double()
    model = zoo.load_planted_mlp().double()
    expected = hessian(model, x).abs().mean(0)
    torch.testing.assert_close(saved["value"], expected, rtol=1e-10, atol=1e-12)
    assert saved["count"] == 40 and saved["feature_names"] == zoo.FEATURE_NAMES
    top = json.loads((out / "global_top.json").read_text())["top"]
    # The MLP was fitted to 2 x0 x1 + 1.5 x2 x3 x4 + ...: its top pairs are planted.
    assert {tuple(t["features"]) for t in top} == set(zoo.PLANTED_PAIRS)
    assert top[0]["names"] == ["x0", "x1"]
    png = (out / "global_interactions.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    printed = capsys.readouterr().out
    assert "x0, x1" in printed and "over 40 samples" in printed


def test_user_model_npy_labels_and_resume(tmp_path, capsys):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(30, 6, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 4, (30,), generator=gen)
    np.save(tmp_path / "x.npy", x.numpy())
    np.save(tmp_path / "y.npy", y.numpy())
    ckpt = tmp_path / "run.ckpt"
    argv = ["--model", "tests.models:mlp", "--data", str(tmp_path / "x.npy"), "--labels",
            str(tmp_path / "y.npy"), "--method", "saliency", "--target", "label",
            "--reduce", "mean", "--dtype", "float64", "--batch-size", "8",
            "--checkpoint", str(ckpt), "--checkpoint-every", "2", "--out", str(tmp_path / "o")]
    assert run_global(parse(*argv)) == 0
    expected = Saliency(mlp()).attribute(x, target=y).mean(0)
    first = torch.load(tmp_path / "o" / "global.pt", weights_only=False)
    torch.testing.assert_close(first["value"], expected, rtol=1e-12, atol=1e-14)
    # A rerun resumes from the finished checkpoint and gives the same numbers.
    assert run_global(parse(*argv)) == 0
    again = torch.load(tmp_path / "o" / "global.pt", weights_only=False)
    assert torch.equal(again["value"], first["value"])
    # Another reduction with the same checkpoint is refused, file untouched.
    before = ckpt.read_bytes()
    argv[argv.index("mean")] = "rms"
    assert run_global(parse(*argv)) == 2
    assert "different run" in capsys.readouterr().err
    assert ckpt.read_bytes() == before


def test_digits_cnn_patches_match_group_hessians(tmp_path):
    out = tmp_path / "out"
    assert run_global(parse("--model", "digits_cnn", "--method", "hessian", "--patch", "2",
                            "--limit", "12", "--dtype", "float64", "--out", str(out))) == 0
    saved = torch.load(out / "global.pt", weights_only=False)
    assert saved["value"].shape == (16, 16) and saved["settings"]["target"] == "predicted"
    samples = zoo.digits_samples()
    try:
        x = zoo.load_digits_data("test")[0][:12].double()
    except ImportError:  # pragma: no cover - scikit-learn is a dev extra
        x = samples[0][:12].double()
    model = zoo.load_digits_cnn().double()
    rows = torch.arange(8) // 2
    mask = (rows.view(-1, 1) * 4 + rows.view(1, -1)).view(1, 1, 8, 8)
    target = model(x).argmax(1)
    expected = hessian(model, x, target=target, objective="log_softmax",
                       feature_mask=mask).abs().mean(0)
    torch.testing.assert_close(saved["value"], expected, rtol=1e-9, atol=1e-12)


def test_cross_derivatives_method(tmp_path):
    pytest.importorskip("captum_higher_order.attr.cross_derivatives")
    out = tmp_path / "out"
    assert run_global(parse("--model", "planted_mlp", "--limit", "32", "--dtype", "float64",
                            "--out", str(out))) == 0
    saved = torch.load(out / "global.pt", weights_only=False)
    x = zoo.sample_inputs(512, seed=1)[:32].double()
    expected = hessian(zoo.load_planted_mlp().double(), x).abs().mean(0)
    off = ~torch.eye(8, dtype=torch.bool)  # pairs; the diagonal convention is the method's
    torch.testing.assert_close(saved["value"][off], expected[off], rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model", "nope"], "MODULE:CALLABLE"),
        (["--model", "tests.models:missing", "--data", "x.npy"], "no attribute"),
        (["--model", "tests.models:mlp"], "--data is required"),
        (["--model", "tests.models:mlp", "--data", "missing.npy"], "does not exist"),
        (["--model", "tests.models:mlp", "--data", "x.npy", "--target", "label"],
         "needs labels"),
        (["--model", "tests.models:mlp", "--data", "x.npy", "--target", "blue"],
         "--target must be"),
        (["--model", "tests.models:mlp", "--data", "x.npy", "--limit", "0"], "empty"),
        (["--model", "tests.models:mlp", "--data", "x.npy", "--patch", "2"], "image inputs"),
        (["--model", "tests.models:mlp", "--data", "x.npy", "--method-arg", "oops"],
         "KEY=VALUE"),
    ],
)
def test_user_errors_exit_2_with_a_message(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    np.save(tmp_path / "x.npy", np.zeros((4, 6)))
    assert run_global(parse(*argv, "--out", str(tmp_path / "o"))) == 2
    assert message in capsys.readouterr().err
