"""The documentation site builds in strict mode: a broken link, a reference to a
missing page or an unresolvable API object fails (mkdocs.yml, docs/mkdocs_hooks.py)."""

import os
import subprocess
import sys

import pytest

pytest.importorskip("mkdocs")
pytest.importorskip("mkdocstrings")
pytest.importorskip("material")
pytest.importorskip("mkdocs_jupyter")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _build(site_dir, config="mkdocs.yml"):
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", config, "-d", str(site_dir)],
        cwd=ROOT, capture_output=True, text=True, env=dict(os.environ, NO_MKDOCS_2_WARNING="1"),
    )


def test_site_builds_strict_with_guides_api_tutorials_and_benchmarks(tmp_path):
    result = _build(tmp_path / "site")
    assert result.returncode == 0, result.stderr[-4000:]
    site = tmp_path / "site"
    index = (site / "index.html").read_text(encoding="utf-8")
    assert 'href="caso/"' in index  # README links rewritten to the site's pages
    from captum_higher_order import __version__

    assert f"captum-higher-order {__version__}" in index  # the site names the version
    api = (site / "api" / "methods" / "index.html").read_text(encoding="utf-8")
    assert "lambda2_mode" in api  # rendered from SecondOrderSaliency's docstring
    for page in ("benchmarks", "changelog", "contributing", "gallery", "design"):
        assert (site / page / "index.html").exists(), page
    for page in (site / "tutorials").iterdir():  # executed notebooks keep their figures
        assert "data:image/png" in (page / "index.html").read_text(encoding="utf-8"), page.name
    notebooks = sorted(p.name for p in (site / "tutorials").iterdir())
    assert notebooks == sorted(
        f[: -len(".ipynb")] for f in os.listdir(os.path.join(ROOT, "tutorials"))
        if f.endswith(".ipynb")
    )


def test_strict_build_fails_on_a_broken_link(tmp_path):
    """The strict setting is live: the same config plus one page with a dead link fails."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# x\n\n[dead](missing.md)\n")
    config = tmp_path / "mkdocs.yml"
    config.write_text("site_name: t\nstrict: true\ndocs_dir: docs\n")
    result = _build(tmp_path / "site", str(config))
    assert result.returncode != 0
    assert "missing.md" in result.stderr
