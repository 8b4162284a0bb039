"""Every Python block of docs/interop.md runs as pasted (in a scratch directory)."""

import os
import re

import pytest

pytest.importorskip("shapiq")
pytest.importorskip("quantus")

DOC = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "interop.md")


def _blocks():
    with open(DOC) as fh:
        return re.findall(r"```python\n(.*?)```", fh.read(), flags=re.S)


@pytest.mark.slow
@pytest.mark.parametrize("number", range(len(_blocks())))
def test_block_runs(number, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec(compile(_blocks()[number], f"docs/interop.md block {number}", "exec"), {})
    out = capsys.readouterr().out
    if number == 0:
        total, value = out.splitlines()[0].split()
        assert float(total) == pytest.approx(float(value), abs=2e-3)  # completeness
        assert (tmp_path / "ih_network.png").exists()
    else:
        assert out.count("\n| ") >= 5
