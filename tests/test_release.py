"""Release metadata agrees: one version for setup.py, the package, the CLI and the
CHANGELOG; the zoo weights and py.typed are declared as package data and exist.
(`make dist-check` builds the sdist and wheel and checks their contents; slow.)"""

import glob
import importlib.util
import os
import re
import sys

import pytest

import captum_higher_order

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _setup_kwargs():
    """The keyword arguments setup.py passes to setup(), without running setuptools."""
    import setuptools

    captured = {}
    spec = importlib.util.spec_from_file_location("_setup_under_test",
                                                  os.path.join(ROOT, "setup.py"))
    module = importlib.util.module_from_spec(spec)
    original = setuptools.setup
    setuptools.setup = lambda **kw: captured.update(kw)
    try:
        spec.loader.exec_module(module)
    finally:
        setuptools.setup = original
    return captured


def test_setup_package_and_changelog_agree_on_the_version():
    kwargs = _setup_kwargs()
    assert kwargs["version"] == captum_higher_order.__version__
    assert re.fullmatch(r"\d+\.\d+\.\d+([ab]\d+|rc\d+)?", captum_higher_order.__version__)
    with open(os.path.join(ROOT, "CHANGELOG.md"), encoding="utf-8") as f:
        first = re.search(r"^## (\S+)", f.read(), re.M)
    assert first and first.group(1) == captum_higher_order.__version__


def test_cli_version_flag_prints_the_package_version(capsys):
    from captum_higher_order import cli

    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    out = capsys.readouterr()
    assert exit_info.value.code in (0, None)
    assert captum_higher_order.__version__ in out.out


def test_package_data_declares_the_zoo_weights_and_py_typed():
    kwargs = _setup_kwargs()
    patterns = kwargs["package_data"]["captum_higher_order"]
    pkg = os.path.join(ROOT, "captum_higher_order")
    declared = {os.path.relpath(p, pkg)
                for pat in patterns for p in glob.glob(os.path.join(pkg, pat))}
    zoo = {os.path.relpath(p, pkg) for ext in ("pt", "json")
           for p in glob.glob(os.path.join(pkg, "zoo", f"*.{ext}"))}
    assert "py.typed" in declared
    assert zoo and zoo <= declared, sorted(zoo - declared)
    # the weights are real files, not Git LFS pointers
    for rel in zoo:
        with open(os.path.join(pkg, rel), "rb") as f:
            assert not f.read(64).startswith(b"version https://git-lfs"), rel
    assert kwargs["entry_points"]["console_scripts"] == ["captum-ho=captum_higher_order.cli:main"]


def test_dist_check_script_lists_what_the_wheel_must_hold():
    spec = importlib.util.spec_from_file_location("dist_check",
                                                  os.path.join(ROOT, "tools", "dist_check.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules["dist_check"] = module
    spec.loader.exec_module(module)
    want = module.expected_files()
    assert "captum_higher_order/py.typed" in want
    assert "captum_higher_order/zoo/digits_cnn.pt" in want
    assert "captum_higher_order/zoo/planted_mlp.pt" in want
    assert module.version() == captum_higher_order.__version__
