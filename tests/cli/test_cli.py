"""captum-ho: demo writes its figures and summary; explain runs user models with clear errors."""

import re

import numpy as np
import pytest
import torch
from captum.attr import IntegratedGradients

from captum_higher_order import cli, zoo
from captum_higher_order.version import __version__


def test_version_help_and_method_list(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0 and __version__ in capsys.readouterr().out
    assert cli.main([]) == 2  # issue 18: no subcommand prints the help and exits 2
    assert "demo" in capsys.readouterr().out
    assert cli.main(["methods"]) == 0
    listing = capsys.readouterr().out
    for name in cli.METHODS:
        assert name in listing


def test_global_subcommand_is_wired(tmp_path, capsys):
    code = cli.main(["global", "--model", "planted_mlp", "--method", "hessian", "--limit", "8",
                     "--batch-size", "8", "--no-progress", "--out", str(tmp_path)])
    assert code == 0 and (tmp_path / "global.pt").exists()
    assert "global" in cli.build_parser().format_help()


def test_demo_writes_both_figures_and_prints_the_summary(tmp_path, capsys):
    out = tmp_path / "figs" / "demo.png"
    assert cli.main(["demo", "--out", str(out), "--samples", "2", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert out.exists() and out.stat().st_size > 10_000
    inter = tmp_path / "figs" / "demo_interactions.png"
    assert inter.exists() and inter.stat().st_size > 10_000
    # predictions and confidences are those of the embedded model
    images, labels = zoo.digits_samples()
    with torch.no_grad():
        probs = torch.softmax(zoo.load_digits_cnn()(images[[0, 6]]), 1)
    for i in range(2):
        line = (f"sample {i}: label {int(labels[[0, 6][i]])}, predicted "
                f"{int(probs[i].argmax())} (confidence {float(probs[i].max()):.3f})")
        assert line in text
    assert "TaylorCAM top cell pairs" in text and "SmoothHess top 2x2-block pairs" in text
    assert "DTD z+ root check:" in text and "DTD verdict over the samples:" in text


def test_demo_method_subset_into_a_folder(tmp_path, capsys):
    assert cli.main(["demo", "--out", str(tmp_path), "--samples", "1", "--quiet",
                     "--method", "ig", "--method", "TaylorCAM"]) == 0
    text = capsys.readouterr().out
    assert (tmp_path / "demo.png").exists()
    assert not (tmp_path / "demo_interactions.png").exists()  # no pairwise method chosen
    assert "Integrated Gradients" in text and "DTD" not in text


def test_demo_keeps_going_when_one_method_fails(tmp_path, capsys, monkeypatch):
    def broken(ctx):
        raise RuntimeError("boom")

    monkeypatch.setattr(cli.METHODS["taylor_cam"], "run", broken)
    code = cli.main(["demo", "--out", str(tmp_path), "--samples", "1", "--quiet",
                     "--method", "ig,taylor_cam"])
    captured = capsys.readouterr()
    assert code == 1 and "FAILED taylor_cam: RuntimeError: boom" in captured.err
    assert (tmp_path / "demo.png").exists()  # IG still drawn


def _digit_file(tmp_path, suffix):
    images, _ = zoo.digits_samples()
    path = tmp_path / f"digit{suffix}"
    if suffix == ".npy":
        np.save(path, images[3].numpy())
    else:
        torch.save(images[3].clone(), path)
    return path, images[3:4]


def test_explain_tensor_input_matches_captum_ig(tmp_path, capsys):
    path, x = _digit_file(tmp_path, ".npy")
    out = tmp_path / "ex.png"
    code = cli.main(["explain", "--model", "captum_higher_order.zoo:load_digits_cnn",
                     "--input", str(path), "--method", "ig,taylor_cam", "--layer", "conv2",
                     "--out", str(out), "--quiet"])
    assert code == 0
    results = torch.load(tmp_path / "ex.pt", weights_only=True)
    model = zoo.load_digits_cnn()
    pred = int(model(x).argmax())
    expected = IntegratedGradients(model).attribute(x, target=pred, n_steps=16)  # smoke steps
    torch.testing.assert_close(results["ig"], expected)
    assert results["taylor_cam"].shape == (1, 16, 16)
    assert out.exists()
    assert f"target {pred}" in capsys.readouterr().out


def test_explain_image_file_with_weights_file(tmp_path, capsys):
    from PIL import Image

    images, _ = zoo.digits_samples()
    img_path = tmp_path / "digit.png"
    Image.fromarray((images[5, 0].numpy() * 255).round().astype("uint8")).save(img_path)
    weights = tmp_path / "w.pt"
    torch.save(zoo.load_digits_cnn().state_dict(), weights)
    code = cli.main(["explain", "--model", "captum_higher_order.zoo.digits_cnn:DigitsCNN",
                     "--weights", str(weights), "--input", str(img_path), "--grayscale",
                     "--method", "smooth_hess", "--n-samples", "16", "--out", str(tmp_path),
                     "--target", "2", "--quiet"])
    assert code == 0
    results = torch.load(tmp_path / "explain.pt", weights_only=True)
    assert results["smooth_hess"].shape == (1, 64, 64)  # 64 pixels: no grid needed
    assert (tmp_path / "explain_interactions.png").exists()
    assert "sample 0: target 2" in capsys.readouterr().out


def test_explain_user_model_file_on_an_rgb_image(tmp_path, capsys):
    from PIL import Image

    (tmp_path / "net.py").write_text(
        "import torch\n"
        "from torch import nn\n"
        "def build():\n"
        "    torch.manual_seed(0)\n"
        "    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),\n"
        "                         nn.Conv2d(4, 4, 3, stride=2, padding=1), nn.ReLU(),\n"
        "                         nn.Flatten(), nn.Linear(4 * 8 * 8, 5))\n"
    )
    rgb = (np.random.default_rng(0).random((16, 16, 3)) * 255).astype("uint8")
    Image.fromarray(rgb).save(tmp_path / "img.png")
    code = cli.main(["explain", "--model", f"{tmp_path / 'net.py'}:build",
                     "--input", str(tmp_path / "img.png"), "--method", "ig,taylor_cam,smooth_hess",
                     "--grid", "4", "--n-samples", "16", "--out", str(tmp_path / "o"), "--quiet"])
    assert code == 0
    results = torch.load(tmp_path / "o" / "explain.pt", weights_only=True)
    assert results["ig"].shape == (1, 3, 16, 16)
    assert results["taylor_cam"].shape == (1, 64, 64)      # conv2: 8x8 cells
    assert results["smooth_hess"].shape == (1, 16, 16)     # --grid 4: 16 superpixels
    assert (tmp_path / "o" / "explain.png").exists()
    assert (tmp_path / "o" / "explain_interactions.png").exists()
    assert "Integrated Gradients: strongest feature (" in capsys.readouterr().out


def test_explain_regression_model_ranks_the_planted_pair_first(tmp_path, capsys):
    x = torch.tensor([0.8, -0.9, 0.1, 0.2, -0.1, 0.3, 0.0, 0.5])
    path = tmp_path / "row.pt"
    torch.save(x, path)
    code = cli.main(["explain", "--model", "captum_higher_order.zoo:load_planted_mlp",
                     "--input", str(path), "--method", "cross_derivatives,ig",
                     "--out", str(tmp_path / "tab.png"), "--quiet"])
    assert code == 0
    text = capsys.readouterr().out
    # d2f/dx0dx1 = 2 dominates the other mixed partials at this point (|1.5 x_k| <= 0.3)
    found = re.search(r"CrossDerivatives top pairs: 0-1 \(([-+0-9.e]+)\)", text)
    assert found is not None and 1.8 < float(found.group(1)) < 2.2
    assert (tmp_path / "tab_interactions.png").exists() and (tmp_path / "tab.png").exists()
    results = torch.load(tmp_path / "tab.pt", weights_only=True)
    assert results["ig"].shape == (1, 8) and results["cross_derivatives"].shape == (1, 8, 8)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--input", "MISSING.npy"], "input file not found"),
        (["--input", "{npy}", "--weights", "nope/w.pt"], "weights file not found"),
        (["--input", "{npy}", "--method", "shapley"], "unknown method 'shapley'"),
        (["--input", "{bad}"], "cannot run on the input of shape (1, 3, 5)"),
        (["--input", "{npy}", "--target", "12"], "out of range for 10 classes"),
        (["--input", "{txt}"], "unsupported input type .txt"),
        (["--input", "{npy}", "--model", "captum_higher_order.zoo"], "MODULE:CALLABLE"),
        (["--input", "{npy}", "--model", "captum_higher_order.zoo:nothing"], "no attribute"),
        (["--input", "{npy}", "--method", "taylor_cam", "--layer", "fc9"], "no layer 'fc9'"),
    ],
)
def test_explain_errors_say_what_to_change(tmp_path, capsys, argv, message):
    npy, _ = _digit_file(tmp_path, ".npy")
    bad = tmp_path / "bad.pt"
    torch.save(torch.zeros(3, 5), bad)
    txt = tmp_path / "x.txt"
    txt.write_text("1 2 3")
    argv = [a.format(npy=npy, bad=bad, txt=txt) for a in argv]
    if "--model" not in argv:
        argv += ["--model", "captum_higher_order.zoo:load_digits_cnn"]
    if "--method" not in argv:
        argv += ["--method", "ig"]
    assert cli.main(["explain", *argv, "--out", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("captum-ho: error:") and message in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_cuda_requested_without_cuda(tmp_path, capsys):
    assert cli.main(["demo", "--device", "cuda", "--out", str(tmp_path)]) == 2
    assert "CUDA is not available" in capsys.readouterr().err


def test_masks():
    m = cli.block_mask(4, 4, 2)[0, 0]
    assert m.tolist() == [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]]
    g = cli.grid_mask(6, 6, 3)[0, 0]
    assert g.unique().tolist() == list(range(9)) and (g == 4).sum() == 4
