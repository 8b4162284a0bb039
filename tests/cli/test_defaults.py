"""captum-ho defaults that work (issue 18): applicable default methods, failures
reported per method while the others are saved, results that say how they were
made, loaders with errors that say what to change.

Oracles: Captum's IntegratedGradients, torch.autograd's Hessian of the model,
and the files the command writes. Everything runs in-process via ``main``.
"""

from __future__ import annotations

import sys

import pytest
import torch
from captum.attr import IntegratedGradients

from captum_higher_order import DTDRootCheck, zoo
from captum_higher_order.cli import build_parser, main
from captum_higher_order.cli.registry import lookup, resolve_methods
from captum_higher_order.version import __version__

pytestmark = pytest.mark.filterwarnings("ignore:Input Tensor 0 did not already require")

ROW = [0.8, -0.9, 0.1, 0.2, -0.1, 0.3, 0.0, 0.5]
CNN_FILE = (
    "import torch\n"
    "from torch import nn\n"
    "def build():\n"
    "    torch.manual_seed(0)\n"
    "    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),\n"
    "                         nn.Conv2d(4, 4, 3, stride=2, padding=1), nn.ReLU(),\n"
    "                         nn.Flatten(), nn.Linear(4 * 4 * 4, 5))\n"
)


@pytest.fixture
def row(tmp_path):
    path = tmp_path / "row.pt"
    torch.save(torch.tensor(ROW), path)
    return path


def _load(path):
    return torch.load(path, weights_only=True)


def test_tabular_default_set_skips_what_does_not_apply(tmp_path, row, capsys):
    code = main(["explain", "--model", "planted_mlp", "--input", str(row),
                 "--out", str(tmp_path / "o"), "--quiet"])
    out = capsys.readouterr().out
    assert code == 0
    skipped = [line for line in out.splitlines() if line.startswith("skipped:")]
    assert len(skipped) == 1 and "taylor_cam (the model has no Conv2d layer" in skipped[0]
    model = zoo.load_planted_mlp()
    try:
        DTDRootCheck(model)
        dtd_applies = True
    except (TypeError, ValueError):  # an unsupported module: DTD must be skipped
        dtd_applies = False
    assert ("dtd (" in skipped[0]) is not dtd_applies
    saved = _load(tmp_path / "o" / "explain.pt")
    expected = {"ig", "second_order", "group_sparse", "smoothgrad", "smooth_hess",
                "integrated_hessians", "cross_derivatives"} | ({"dtd"} if dtd_applies else set())
    assert set(saved) - {"meta"} == expected
    x = torch.tensor([ROW])
    ig = IntegratedGradients(model).attribute(x, n_steps=16)  # smoke: 2 x 8 steps
    torch.testing.assert_close(saved["ig"], ig)
    # a single output is explained as is: every objective is the output itself
    h = torch.autograd.functional.hessian(lambda v: model(v.view(1, 8)).sum(), x[0])
    off = ~torch.eye(8, dtype=torch.bool)
    torch.testing.assert_close(saved["cross_derivatives"][0][off], h[off], rtol=1e-4, atol=1e-5)
    meta = saved["meta"]
    assert meta["target"] is None and meta["failed"] == {} and "taylor_cam" in meta["skipped"]
    assert {s["objective"] for n, s in meta["settings"].items() if "objective" in s} == {"output"}
    assert meta["settings"]["smooth_hess"]["n_samples"] == 64  # smoke setting
    assert meta["versions"]["captum_higher_order"] == __version__
    assert meta["versions"]["torch"] == str(torch.__version__)
    # honest times: shared work is said to be shared, nothing reads 0.0s
    timing = next(line for line in out.splitlines() if line.startswith("methods:"))
    assert "SmoothHess shared with SmoothGrad" in timing and " 0.0s" not in timing


def test_user_cnn_file_runs_every_default_method(tmp_path, capsys):
    (tmp_path / "tinycnn.py").write_text(CNN_FILE)
    torch.manual_seed(1)
    torch.save(torch.rand(3, 8, 8), tmp_path / "img.pt")
    code = main(["explain", "--model", f"{tmp_path / 'tinycnn.py'}:build", "--input",
                 str(tmp_path / "img.pt"), "--n-samples", "16", "--out", str(tmp_path / "o"),
                 "--quiet"])
    out = capsys.readouterr().out
    assert code == 0 and "skipped:" not in out
    saved = _load(tmp_path / "o" / "explain.pt")
    defaults = {s.name for s in resolve_methods(None, "explain")}
    assert set(saved) - {"meta"} == defaults
    assert saved["taylor_cam"].shape == (1, 16, 16)  # second conv: 4x4 cells
    assert saved["meta"]["layer"] == "2" and saved["meta"]["grid"] is None
    target = saved["meta"]["target"]
    assert target.tolist() == [int(saved["meta"]["output"].argmax())]
    assert (tmp_path / "o" / "explain.png").exists()
    assert (tmp_path / "o" / "explain_interactions.png").exists()
    assert "(channel, row, col)" in out


def test_a_failing_method_is_named_and_the_others_are_saved(tmp_path, row, capsys):
    # lambda2 must be positive: SecondOrderSaliency raises, the two others run
    code = main(["explain", "--model", "planted_mlp", "--input", str(row),
                 "--method", "ig,second_order,cross_derivatives",
                 "--method-arg", "second_order.lambda2=-1.0", "--out", str(tmp_path), "--quiet"])
    captured = capsys.readouterr()
    assert code == 1
    failed = [line for line in captured.err.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1 and failed[0].startswith("FAILED second_order: ")
    assert "lambda2" in failed[0]
    saved = _load(tmp_path / "explain.pt")
    assert set(saved) == {"ig", "cross_derivatives", "meta"}
    assert "lambda2" in saved["meta"]["failed"]["second_order"]


def test_method_arg_reaches_the_method(tmp_path, row):
    assert main(["explain", "--model", "planted_mlp", "--input", str(row), "--method",
                 "integrated-hessians", "--method-arg", "n_steps=4",
                 "--out", str(tmp_path), "--quiet"]) == 0
    assert _load(tmp_path / "explain.pt")["meta"]["settings"]["integrated_hessians"][
        "n_steps"] == 4


@pytest.mark.parametrize("argv, message", [
    (["--method-arg", "ig.lambda2=1"], "takes no 'lambda2'"),
    (["--method-arg", "nokey"], "[METHOD.]KEY=VALUE"),
    (["--method-arg", "lambda9=1"], "none of the chosen methods"),
    (["--objective", "cross_entropy"], "needs class scores"),
    (["--method", "taylor_cam"], "TaylorCAM cannot run: the model has no Conv2d layer"),
])
def test_usage_errors_exit_2_with_one_line(tmp_path, row, capsys, argv, message):
    if "--method" not in argv:
        argv = [*argv, "--method", "ig"]
    code = main(["explain", "--model", "planted_mlp", "--input", str(row), *argv,
                 "--out", str(tmp_path), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_every_spelling_names_one_method():
    spec = lookup("smooth_hess")
    for name in ("smooth-hess", "SmoothHess", "SMOOTH_HESS"):
        assert lookup(name) is spec
    assert resolve_methods(["smooth-hess,smooth_hess", "SmoothHess"]) == [spec]
    assert lookup("smoothgrad").name == "smoothgrad"
    assert [s.name for s in resolve_methods(["Integrated-Gradients"], "global")] == ["ig"]


def test_global_accepts_both_spellings(tmp_path):
    outs = []
    for name in ("cross-derivatives", "cross_derivatives"):
        out = tmp_path / name
        assert main(["global", "--model", "planted_mlp", "--method", name, "--limit", "8",
                     "--quiet", "--out", str(out)]) == 0
        outs.append(torch.load(out / "global.pt", weights_only=False))
    assert torch.equal(outs[0]["value"], outs[1]["value"])
    assert outs[0]["settings"]["method"] == "cross_derivatives"
    assert outs[0]["settings"]["versions"]["captum_higher_order"] == __version__


def test_model_module_in_the_current_directory(tmp_path, monkeypatch, row):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cli_test_tabular_net.py").write_text(
        "from captum_higher_order import zoo\n"
        "def build():\n"
        "    return zoo.load_planted_mlp()\n"
    )
    monkeypatch.delitem(sys.modules, "cli_test_tabular_net", raising=False)
    before = list(sys.path)
    assert main(["explain", "--model", "cli_test_tabular_net:build", "--input", str(row),
                 "--method", "ig", "--out", str(tmp_path), "--quiet"]) == 0
    assert sys.path == before
    monkeypatch.delitem(sys.modules, "cli_test_tabular_net", raising=False)


def test_missing_model_module_suggests_the_file_form(tmp_path, monkeypatch, row, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["explain", "--model", "no_such_cli_module:build", "--input", str(row),
                 "--out", str(tmp_path), "--quiet"]) == 2
    assert "--model path/to/no_such_cli_module.py:build" in capsys.readouterr().err


def test_missing_torchvision_names_the_vision_extra(tmp_path, monkeypatch, row, capsys):
    monkeypatch.setitem(sys.modules, "torchvision", None)
    monkeypatch.setitem(sys.modules, "torchvision.models", None)
    assert main(["explain", "--model", "torchvision.models:resnet18", "--input", str(row),
                 "--out", str(tmp_path), "--quiet"]) == 2
    assert "pip install captum-higher-order[vision]" in capsys.readouterr().err


@pytest.mark.parametrize("content", [b"not a torch file", None])
def test_global_bad_pt_is_one_line_not_a_traceback(tmp_path, capsys, content):
    bad = tmp_path / "bad.pt"
    if content is None:
        torch.save({"weights": [1, 2]}, bad)  # a dict without inputs
    else:
        bad.write_bytes(content)
    assert main(["global", "--model", "planted_mlp", "--data", str(bad), "--quiet",
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--data" in err and "Traceback" not in err


def test_progress_bars_count_methods_and_inner_work(tmp_path, row, capsys):
    argv = ["explain", "--model", "planted_mlp", "--input", str(row), "--method",
            "smooth_hess", "--n-samples", "64", "--out", str(tmp_path)]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "captum-ho" in err and "method" in err and "SmoothHess" in err
    assert main([*argv, "--no-progress"]) == 0
    assert capsys.readouterr().err == ""


def test_no_arguments_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "usage: captum-ho" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.strip() == f"captum-ho {__version__}"


def test_old_dataset_cli_path_still_works_and_warns():
    import importlib

    from captum_higher_order.cli import global_

    sys.modules.pop("captum_higher_order.dataset_cli", None)
    with pytest.warns(DeprecationWarning, match="captum_higher_order.cli.global_"):
        old = importlib.import_module("captum_higher_order.dataset_cli")
    assert old.run_global is global_.run_global
    assert old.add_global_parser is global_.add_global_parser


def test_quiet_is_accepted_by_every_subcommand():
    parser = build_parser()
    for argv in (["demo"], ["explain", "--model", "m:f", "--input", "x.pt"],
                 ["global", "--model", "planted_mlp"], ["methods"]):
        assert parser.parse_args([*argv, "--quiet"]).quiet is True
        assert parser.parse_args([*argv, "--no-progress"]).quiet is True


def test_one_column_output_is_explained_as_the_output(tmp_path, row):
    # (B, 1) scores: class objectives would be constant (log_softmax of one logit is 0)
    (tmp_path / "col.py").write_text(
        "import torch\n"
        "from torch import nn\n"
        "def build():\n"
        "    torch.manual_seed(0)\n"
        "    return nn.Sequential(nn.Linear(8, 6), nn.Tanh(), nn.Linear(6, 1))\n"
    )
    code = main(["explain", "--model", f"{tmp_path / 'col.py'}:build", "--input", str(row),
                 "--method", "cross_derivatives,ig", "--out", str(tmp_path), "--quiet"])
    assert code == 0
    saved = _load(tmp_path / "explain.pt")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 6), torch.nn.Tanh(), torch.nn.Linear(6, 1))
    x = torch.tensor([ROW])
    h = torch.autograd.functional.hessian(lambda v: model(v.view(1, 8))[0, 0], x[0])
    off = ~torch.eye(8, dtype=torch.bool)
    torch.testing.assert_close(saved["cross_derivatives"][0][off], h[off], rtol=1e-4, atol=1e-6)
    assert float(h[off].abs().max()) > 1e-3  # not the zero a class objective would give
    torch.testing.assert_close(saved["ig"], IntegratedGradients(model).attribute(
        x, target=0, n_steps=16))
    assert saved["meta"]["target"].tolist() == [0]
    assert saved["meta"]["settings"]["cross_derivatives"]["objective"] == "output"


def test_python_dash_m_runs_the_same_command():
    import subprocess

    run = subprocess.run([sys.executable, "-m", "captum_higher_order.cli", "--version"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == f"captum-ho {__version__}"
    run = subprocess.run([sys.executable, "-m", "captum_higher_order.cli"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "usage: captum-ho" in run.stdout


class _Residual(torch.nn.Module):
    """conv -> relu -> conv, plus the skip connection: not a chain of its modules."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = torch.nn.Conv2d(1, 2, 3, padding=1)
        self.relu = torch.nn.ReLU()
        self.conv2 = torch.nn.Conv2d(2, 1, 3, padding=1)
        self.flat = torch.nn.Flatten()
        self.fc = torch.nn.Linear(16, 3)

    def forward(self, x):
        return self.fc(self.flat(self.relu(x + self.conv2(self.relu(self.conv1(x))))))


def test_default_set_probes_dtd_on_one_sample():
    from captum_higher_order.cli.applicable import Situation, choose

    model = _Residual().eval()
    x = torch.rand(2, 1, 4, 4)
    target = model(x).argmax(1)
    try:
        DTDRootCheck(model).attribute(x[:1], target=target[:1])
        dtd_runs = True
    except Exception:
        dtd_runs = False
    where = Situation(model, model.conv2, 16, None, x, target)
    chosen, skipped = choose(resolve_methods(None), False, where)
    assert ("dtd" in skipped) is not dtd_runs
    assert ("dtd" in {s.name for s in chosen}) is dtd_runs
    # asked for by name, DTD is not probed: it runs and, if it fails, is reported as FAILED
    chosen, skipped = choose([lookup("dtd")], True, where)
    assert [s.name for s in chosen] == ["dtd"] and skipped == {}


def test_global_method_failure_is_one_line_exit_1(tmp_path, capsys, monkeypatch):
    # data with 5 features for the 8-feature MLP: the forward itself breaks
    torch.save(torch.randn(4, 5), tmp_path / "five.pt")
    argv = ["global", "--model", "planted_mlp", "--data", str(tmp_path / "five.pt"),
            "--quiet", "--out", str(tmp_path / "o")]
    monkeypatch.delenv("CAPTUM_HO_TRACEBACK", raising=False)
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("captum-ho global: failed: RuntimeError: ")
    assert len(err.strip().splitlines()) == 1
    monkeypatch.setenv("CAPTUM_HO_TRACEBACK", "1")
    with pytest.raises(RuntimeError):
        main(argv)
