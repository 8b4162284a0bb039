"""Every fenced ```python block of README.md and docs/*.md runs as pasted.

Each block runs on its own: a fresh namespace, a temporary working directory (blocks
may write files such as ``graph.png`` or checkpoints) and matplotlib's Agg backend. A
block that is deliberately not runnable (it downloads weights, needs a GPU, or shows a
fragment) is fenced as ```python-norun (or ```text) instead, with the reason in the
text around it.
"""

from __future__ import annotations

import glob
import os
import re
from typing import List, Tuple

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)


def markdown_files() -> List[str]:
    files = [os.path.join(ROOT, "README.md")]
    files += sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
    return files


def python_blocks(path: str) -> List[Tuple[int, str]]:
    """``(line number of the opening fence, source)`` of each ```python block."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    return [(text[: m.start()].count("\n") + 1, m.group(1)) for m in FENCE.finditer(text)]


# Blocks that train a model or run a metric suite (tens of CPU seconds): still run by
# default, skipped by ``-m "not slow"``.
SLOW_FILES = ("cross_derivatives.md", "interop.md")


def _param(path: str, line: int, source: str):
    marks = [pytest.mark.slow] if os.path.basename(path) in SLOW_FILES else []
    return pytest.param(path, line, source, id=f"{os.path.relpath(path, ROOT)}:{line}",
                        marks=marks)


BLOCKS = [
    _param(path, line, source) for path in markdown_files() for line, source in python_blocks(path)
]


def test_blocks_are_found():
    """The extraction itself works: the README alone has a block per method family."""
    readme = python_blocks(os.path.join(ROOT, "README.md"))
    assert len(readme) >= 8
    assert all("import" in source for _, source in readme)


def test_fence_pattern_skips_norun_and_text_blocks():
    text = "a\n```python-norun\nraise SystemExit\n```\n```text\nx\n```\n```python\nok = 1\n```\n"
    assert [m.group(1) for m in FENCE.finditer(text)] == ["ok = 1\n"]


@pytest.mark.parametrize("path, line, source", BLOCKS)
def test_block_runs_as_pasted(path, line, source, tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    code = compile(source, f"{os.path.relpath(path, ROOT)}:{line}", "exec")
    try:
        exec(code, {"__name__": "__main__"})  # a fresh namespace per block
    finally:
        plt.close("all")
