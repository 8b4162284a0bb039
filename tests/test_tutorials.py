"""Every tutorial notebook runs top to bottom (CAPTUM_HO_SMOKE=1 keeps it small)."""

import json
import os
import re
import sys

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

TUTORIALS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tutorials")


def _generator():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "make_notebooks", os.path.join(TUTORIALS, "make_notebooks.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GEN = _generator()
NAMES = sorted(GEN.NOTEBOOKS)


def _cells(nb):
    return [(cell.cell_type, cell.get("id"), cell.source) for cell in nb.cells]


def _committed(name):
    return nbformat.read(os.path.join(TUTORIALS, name), as_version=4)


def test_committed_notebooks_match_the_generator():
    on_disk = sorted(f for f in os.listdir(TUTORIALS) if f.endswith(".ipynb"))
    assert on_disk == NAMES
    for name in NAMES:
        title, cells = GEN.NOTEBOOKS[name]
        assert _cells(_committed(name)) == _cells(GEN.build(cells, title)), (
            f"{name} is stale: run `make notebooks` (python tutorials/make_notebooks.py)"
        )


def _image_outputs(cell):
    return [out for out in cell.get("outputs", []) if "image/png" in out.get("data", {})]


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_is_stored_executed_with_an_ig_figure(name):
    """Stored with outputs: every code cell ran without error, figures are embedded, and
    one figure puts Captum's (Layer)IntegratedGradients beside the method taught, followed
    by a sentence on what the second-order view adds."""
    nb = _committed(name)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert all(cell.get("execution_count") for cell in code), f"{name}: not executed"
    errors = [out for cell in code for out in cell.get("outputs", [])
              if out.get("output_type") == "error"]
    assert not errors, f"{name}: stored with an error"
    ig_figures = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code"
                  and "IntegratedGradients(" in cell.source and _image_outputs(cell)]
    assert ig_figures, f"{name}: no stored figure from a cell that runs IntegratedGradients"
    said = [cell.source for cell in nb.cells if cell.cell_type == "markdown"
            and re.search(r"What the\s[a-z\s-]+?\sadds", cell.source)]
    assert said, f"{name}: no sentence on what the second-order view adds"


KERNEL = "captum-ho-tests"


@pytest.fixture
def this_interpreter_kernel(tmp_path, monkeypatch):
    """A kernelspec for this very interpreter, visible only to this test (JUPYTER_PATH)."""
    spec_dir = tmp_path / "jupyter" / "kernels" / KERNEL
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "captum-ho tests",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    return KERNEL


@pytest.mark.parametrize("name", NAMES)
def test_notebook_executes(name, tmp_path, monkeypatch, this_interpreter_kernel):
    monkeypatch.setenv("CAPTUM_HO_SMOKE", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(os.path.join(TUTORIALS, name), as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import sys; print(sys.executable)"))
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name=this_interpreter_kernel,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    errors = [
        out for cell in nb.cells if cell.cell_type == "code"
        for out in cell.get("outputs", []) if out.get("output_type") == "error"
    ]
    assert not errors
    assert nb.cells[-1].outputs[0]["text"].strip() == sys.executable  # the kernel is this venv
    # every code cell ran
    assert all(cell.get("execution_count") for cell in nb.cells if cell.cell_type == "code")
