"""Notebooks are committed clean, and the harness that executes them (nbval, in `make test`) really fails when a
notebook raises. The notebooks themselves are executed by `pytest --nbval-lax notebooks` (see the Makefile)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_numbered_notebooks():
    assert NOTEBOOKS, "no notebooks found"
    for nb in NOTEBOOKS:
        assert nb.name[:3].rstrip("_").isdigit(), f"{nb.name}: notebooks are named NN_topic.ipynb"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path):
    nb = json.loads(path.read_text())
    dirty = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code" and (c["outputs"] or c["execution_count"])]
    assert not dirty, f"{path.name}: cells {dirty} have outputs; run `make strip` before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_cell_has_a_unique_id(path):
    """nbformat 4.5 wants an id on every cell (nbval warns now and will fail later): a cell pasted in by a script
    must get one."""
    nb = json.loads(path.read_text())
    ids = [c.get("id") for c in nb["cells"]]
    missing = [i for i, cell_id in enumerate(ids) if not cell_id]
    assert not missing, f"{path.name}: cells {missing} have no id; give each a short unique string"
    assert len(set(ids)) == len(ids), f"{path.name}: two cells share an id"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_follows_the_lesson_pattern(path):
    nb = json.loads(path.read_text())
    cells = nb["cells"]
    first = "".join(cells[0]["source"])
    assert first.startswith("# ") and "You will learn" in first, f"{path.name}: opening cell lacks title or goals"
    setup = "".join(cells[1]["source"])
    assert "describe_environment()" in setup, f"{path.name}: second cell must be the setup cell"
    # the Open in Colab badge under the title, the Colab lines first in the setup cell: `course colab-cells` writes
    # both (tests/test_colab.py checks they are exactly what course_lib.colab generates)
    assert "[![Open In Colab]" in first and 'if "google.colab" in sys.modules' in setup, f"{path.name}: no Colab cells"
    last = "".join(cells[-1]["source"])
    assert "show_quiz" in last, f"{path.name}: a notebook ends with its 'check yourself' quiz"
    long = [i for i, c in enumerate(cells) if c["cell_type"] == "code" and len("".join(c["source"]).splitlines()) > 25]
    assert not long, f"{path.name}: code cells {long} exceed 25 lines; move the logic into course_lib"


def test_the_harness_fails_when_a_notebook_raises(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell("raise ValueError('boom')")]
    path = tmp_path / "broken.ipynb"
    nbformat.write(nb, path)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax", "--nbval-current-env",
         str(path)], capture_output=True, text=True, cwd=tmp_path, env={**os.environ}, timeout=300,
    )
    assert result.returncode != 0, result.stdout
    assert "boom" in result.stdout
