"""MkDocs hooks: put the repository's README, CONTRIBUTING, benchmark tables and the
executed tutorial notebooks into the site without copying them into ``docs/``.

The README links to ``docs/caso.md``, ``tutorials/x.ipynb`` and
``benchmarks/README.md`` as seen from the repository root (that is how GitHub and
PyPI show it); on the site those pages live at ``caso.md``, ``tutorials/x.ipynb``
and ``benchmarks.md``, so the links are rewritten here. Any link that still does
not resolve fails ``mkdocs build --strict``.
"""

from __future__ import annotations

import glob
import logging
import os
import re

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (pattern, replacement) applied to README.md and CONTRIBUTING.md
ROOT_LINKS = [
    (re.compile(r"\]\(docs/"), "]("),
    (re.compile(r"\]\(benchmarks/README\.md"), "](benchmarks.md"),
    (re.compile(r"\]\(CONTRIBUTING\.md"), "](contributing.md"),
    (re.compile(r"\]\(CHANGELOG\.md"), "](changelog.md"),
]


class _SharedArgsEntry(logging.Filter):
    """Napoleon lets one ``Args`` entry, wrapped over lines, document several
    parameters (``target, objective, ...: As in attribute``); griffe cannot split
    it and warns. Only that message is dropped: every other docstring or
    cross-reference warning still fails the strict build."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Failed to get 'name: description' pair" not in record.getMessage()


def package_version() -> str:
    namespace: dict = {}
    with open(os.path.join(ROOT, "captum_higher_order", "version.py")) as f:
        exec(f.read(), namespace)
    return namespace["__version__"]


def on_config(config):
    """The site shows the package's version (the one `captum-ho --version` prints)."""
    config.site_name = f"{config.site_name} {package_version()}"
    return config


def on_startup(command, dirty) -> None:
    logging.getLogger("mkdocs.plugins.griffe").addFilter(_SharedArgsEntry())


def _read(path: str) -> str:
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return f.read()


def _root_page(path: str) -> str:
    text = _read(path)
    for pattern, replacement in ROOT_LINKS:
        text = pattern.sub(replacement, text)
    return text


@event_priority(100)  # before mkdocs-jupyter, which turns .ipynb files into pages
def on_files(files: Files, config) -> Files:
    files.append(File.generated(config, "index.md", content=_root_page("README.md")))
    files.append(File.generated(config, "changelog.md", content=_root_page("CHANGELOG.md")))
    files.append(File.generated(config, "contributing.md",
                                content=_root_page("CONTRIBUTING.md")))
    bench = _read("benchmarks/README.md").replace("](peers.png)", "](benchmarks/peers.png)")
    files.append(File.generated(config, "benchmarks.md", content=bench))
    # Real files with the repository root as their source folder (mkdocs-jupyter
    # cannot read a notebook given as a generated file).
    for pattern in ("benchmarks/*.png", "tutorials/*.ipynb"):
        for path in sorted(glob.glob(os.path.join(ROOT, pattern))):
            files.append(File(os.path.relpath(path, ROOT), src_dir=ROOT,
                              dest_dir=config.site_dir,
                              use_directory_urls=config.use_directory_urls))
    return files
