"""benchmarks/peers.py --quick: the output has every method and family, and the
AUCs are where the ground truth puts them."""

import importlib.util
import json
import os
import sys

import pytest

pytest.importorskip("shapiq")
if importlib.util.find_spec("path_explain") is None:  # its __init__ imports TensorFlow
    pytest.skip("path-explain is not installed", allow_module_level=True)

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def _load(name):
    path = os.path.join(ROOT, "benchmarks", f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_quick_run(tmp_path):
    peers = _load("peers")
    out = tmp_path / "peers.json"
    peers.main(["--quick", "--json", str(out), "--plot", str(tmp_path / "peers.png")])
    assert (tmp_path / "peers.png").stat().st_size > 10_000
    rows = json.loads(out.read_text())["means"]
    means = {(p["family"], p["method"], p["setting"]): p for p in rows}
    methods = {m for _, m, _ in means}
    assert {"CrossDerivatives", "IntegratedHessians", "ExpectedHessians", "path_explain EH",
            "shapiq k-SII", "shapiq FSII", "SmoothHess (ReLU net)"} <= methods
    for p in means.values():
        assert p["seconds_per_sample"] > 0
    # The zoo MLP fits its target to R2 0.9994 and the target's Hessian is nonzero
    # exactly on the 4 planted pairs (AUC 1): the network's must rank them first too.
    assert means[("planted", "CrossDerivatives", "exact")]["auc"] >= 0.95
    assert means[("planted", "IntegratedHessians", "n_steps=8")]["auc"] >= 0.95
    # Budget 256 = all 2^8 coalitions: shapiq's k-SII is exact there.
    ksii = means[("planted", "shapiq k-SII", "budget=256")]
    assert ksii["auc"] >= 0.95 and ksii["agreement"] == pytest.approx(1.0)
    for p in means.values():
        if p["auc"] is not None:
            assert 0.5 <= p["auc"] <= 1.0
        if p["agreement"] is not None:
            assert -1.0 <= p["agreement"] <= 1.0
    # Digits: IH's path integral is closest to the patch-removal game.
    digits_ih = means[("digits", "IntegratedHessians", "n_steps=8")]["agreement"]
    assert digits_ih > means[("digits", "CrossDerivatives", "exact")]["agreement"]


def test_path_explain_loads_without_tensorflow():
    peers = _load("peers")
    explainer = peers.load_path_explainer()
    assert explainer.__name__ == "PathExplainerTorch"
