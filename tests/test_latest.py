"""`make test-latest` (issue 13): the first error line of a failing notebook, the version comparison, the results
file, and .ci/run's order (the pinned suite decides CI; the newest-releases run is reported only)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from course_lib import latest

ROOT = Path(__file__).resolve().parent.parent

PYPROJECT = """
[project]
name = "x"
dependencies = ["transformers==5.23.0", "gguf==0.19.0", "trl==1.16.0"]
"""


def test_first_error_of_a_real_failing_notebook(tmp_path):
    """A notebook whose cell 1 raises a chained error and whose cell 2 raises again: nbval runs on after the first
    failure (--nbval-lax), so the report must name cell 1 and the last exception of its chain, not cell 2's."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_code_cell("import json\ntry:\n    json.loads('{')\nexcept ValueError as e:\n"
                                  "    raise RuntimeError('upstream renamed it\\nsecond line') from e"),
        nbformat.v4.new_code_cell("raise KeyError('later')"),
    ]
    path = tmp_path / "broken.ipynb"
    nbformat.write(nb, path)
    log = tmp_path / "logs" / "broken.log"
    row = latest.run_notebook(path, sys.executable, {**os.environ}, timeout_s=300, log=log)
    assert row["notebook"] == "broken.ipynb"
    assert row["passed"] is False
    assert row["failed_cell"] == "Cell 1"
    assert row["first_error"] == "RuntimeError: upstream renamed it"
    assert row["pytest_closing_line"].startswith("2 failed, 1 passed in ")
    assert "KeyError" in log.read_text()  # the whole output is kept for a person to read


NBVAL_SYNTAX = """\
____________________________ nb.ipynb::Cell 0 _____________________________
Notebook cell execution failed
Cell 0: Cell execution caused an exception

Input:
x = (1

Traceback:

  Cell In[1], line 1
    x = (1
          ^
SyntaxError: incomplete input

=========================== short test summary info ============================
FAILED nb.ipynb::Cell 0 - Notebook cell execution failed
1 failed in 0.90s
"""

# nbval prints the cell's source before its traceback: a source line that looks like "Name: text" is not the error
NBVAL_INPUT_LOOKS_LIKE_ERROR = """\
\x1b[91m_____ nb.ipynb::Cell 4 _____\x1b[0m
Input:
Warning: int = 3
sys.exit(3)

Traceback:

An exception has occurred, use %tb to see the full traceback.

SystemExit: 3

1 failed in 0.50s
"""

COLLECTION_ERROR = """\
==================================== ERRORS ====================================
_____________________ ERROR collecting notebooks/00_x.ipynb _____________________
.venv-latest/lib/python3.11/site-packages/nbval/plugin.py:12: in <module>
    from jupyter_client.manager import start_new_kernel
E   ImportError: cannot import name 'start_new_kernel' from 'jupyter_client.manager'
E   second E line
1 error in 0.41s
"""


@pytest.mark.parametrize("output,expected", [
    (NBVAL_SYNTAX, ("Cell 0", "SyntaxError: incomplete input")),
    (NBVAL_INPUT_LOOKS_LIKE_ERROR, ("Cell 4", "SystemExit: 3")),
    (COLLECTION_ERROR, (None, "ImportError: cannot import name 'start_new_kernel' from 'jupyter_client.manager'")),
    ("\nno tests ran in 0.00s\nERROR: file or directory not found: nb.ipynb\n",
     (None, "ERROR: file or directory not found: nb.ipynb")),
    ("Killed\n", (None, "Killed")),
    ("", (None, None)),
], ids=["syntax", "input-not-error", "collection", "usage-error", "last-line", "empty"])
def test_first_error_from_pytest_output(output, expected):
    assert latest.first_error(output) == expected


def test_pinned_versions_reads_exact_pins():
    assert latest.pinned_versions(PYPROJECT, ("trl", "transformers")) == {"trl": "1.16.0", "transformers": "5.23.0"}
    with pytest.raises(ValueError, match=r"no exact pin .*\['peft'\]"):
        latest.pinned_versions(PYPROJECT, ("trl", "peft"))


def test_the_six_are_pinned_in_this_project_and_named_alike_in_the_makefile():
    pins = latest.pinned_versions((ROOT / "pyproject.toml").read_text())
    assert sorted(pins) == sorted(latest.PACKAGES)
    makefile = (ROOT / "Makefile").read_text()
    line = next(line for line in makefile.splitlines() if line.startswith("LATEST_PKGS"))
    assert line.split(":=", 1)[1].split() == list(latest.PACKAGES)
    assert ".venv-latest/" in (ROOT / ".gitignore").read_text().splitlines()


def test_parse_index_versions():
    output = "trl (1.16.0)\nAvailable versions: 1.17.0rc1, 1.16.0, 1.0.0rc1, 0.4.7\n  INSTALLED: 1.16.0\n"
    assert latest.parse_index_versions(output) == ["1.17.0rc1", "1.16.0", "1.0.0rc1", "0.4.7"]
    with pytest.raises(ValueError, match="no 'Available versions:' line"):
        latest.parse_index_versions("ERROR: No matching distribution found for nosuchpackage\n")


@pytest.mark.parametrize("pinned,installed,available,expected", [
    ("1.16.0", "1.16.0", ["1.16.0", "1.15.0", "1.0.0rc1"],
     {"pinned": "1.16.0", "installed": "1.16.0", "same_as_pinned": True, "newest_release": "1.16.0",
      "installed_is_newest_release": True, "newer_prerelease": None}),
    ("5.23.0", "5.24.1", ["5.25.0rc0", "5.24.1", "5.24.0", "5.23.0", "5.0.0rc3"],
     {"pinned": "5.23.0", "installed": "5.24.1", "same_as_pinned": False, "newest_release": "5.24.1",
      "installed_is_newest_release": True, "newer_prerelease": "5.25.0rc0"}),
    # pip could not take the newest (a dependency held it back): said, not hidden
    ("0.21.2", "0.21.2", ["0.22.0", "0.21.2", "not-a-version"],
     {"pinned": "0.21.2", "installed": "0.21.2", "same_as_pinned": True, "newest_release": "0.22.0",
      "installed_is_newest_release": False, "newer_prerelease": None}),
    ("0.50.2", None, "index not readable: network unreachable",
     {"pinned": "0.50.2", "installed": None, "same_as_pinned": False, "newest_release": None,
      "installed_is_newest_release": None, "newer_prerelease": None,
      "index": "index not readable: network unreachable"}),
], ids=["same", "newer", "held-back", "no-index"])
def test_compare_package(pinned, installed, available, expected):
    assert latest.compare_package(pinned, installed, available) == expected


def test_report_fields_counts_and_summary(tmp_path):
    packages = {"trl": latest.compare_package("1.16.0", "1.16.0", ["1.16.0"]),
                "transformers": latest.compare_package("5.23.0", "5.24.0", ["5.25.0rc1", "5.24.0"])}
    rows = [{"notebook": "00_a.ipynb", "passed": True, "seconds": 10.0, "pytest_closing_line": "5 passed in 9s",
             "failed_cell": None, "first_error": None},
            {"notebook": "04_b.ipynb", "passed": False, "seconds": 20.0, "pytest_closing_line": "1 failed in 19s",
             "failed_cell": "Cell 7", "first_error": "TypeError: f() got an unexpected keyword argument 'x'"}]
    report = latest.build_report(packages, rows, command="make test-latest", date="2026-11-24")
    assert list(report) == ["command", "date", "scope", "packages", "all_same_as_pinned", "notebooks", "counts",
                            "failures"]
    assert report["all_same_as_pinned"] is False
    assert report["counts"] == {"notebooks": 2, "passing": 1, "failing": 1}
    assert report["failures"] == [{"notebook": "04_b.ipynb", "failed_cell": "Cell 7",
                                   "first_error": "TypeError: f() got an unexpected keyword argument 'x'"}]
    assert latest.summary(report) == [
        "newest releases: 1 of 2 notebooks ran clean",
        "  trl 1.16.0 = pinned",
        "  transformers 5.24.0 (pinned 5.23.0), pre-release 5.25.0rc1 not tried",
        "  FAILING 04_b.ipynb Cell 7: TypeError: f() got an unexpected keyword argument 'x'",
    ]
    path = tmp_path / "results" / "latest.json"
    latest.write_report(report, path)
    assert json.loads(path.read_text()) == report


FAKE_MAKE = """#!/usr/bin/env bash
echo "$1" >> "$CALLS"
case "$1" in
  test) echo "7 passed, 1 skipped in 3.00s"; exit "$PINNED_EXIT";;
  test-latest) echo "2 failed, 5 passed in 4.00s"; exit 1;;
esac
"""


@pytest.mark.parametrize("pinned_exit", [0, 2])
def test_ci_run_is_judged_by_the_pinned_suite(tmp_path, pinned_exit):
    """.ci/run with a stand-in `make`: the newest-releases run is reported but never fails CI, and the last
    test-runner line printed is the pinned suite's; a failing pinned suite fails CI before test-latest runs."""
    if shutil.which("timeout") is None:
        pytest.skip("coreutils' timeout is missing")
    (tmp_path / ".ci").mkdir()
    shutil.copy(ROOT / ".ci" / "run", tmp_path / ".ci" / "run")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "make").write_text(FAKE_MAKE)
    (bin_dir / "make").chmod(0o755)
    calls = tmp_path / "calls"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "CALLS": str(calls),
           "PINNED_EXIT": str(pinned_exit)}
    result = subprocess.run(["bash", str(tmp_path / ".ci" / "run")], capture_output=True, text=True, env=env,
                            timeout=60)
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    if pinned_exit:
        assert result.returncode == pinned_exit
        assert calls.read_text().split() == ["test"]
    else:
        assert result.returncode == 0, result.stdout + result.stderr
        assert calls.read_text().split() == ["test", "test-latest"]
        assert any(line.startswith("test-latest: FAILING with the newest releases (exit 1;") for line in lines)
        assert lines[-1] == "7 passed, 1 skipped in 3.00s"


def test_a_notebook_past_its_time_is_stopped_and_said_so(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import time\ntime.sleep(600)")]
    path = tmp_path / "slow.ipynb"
    nbformat.write(nb, path)
    row = latest.run_notebook(path, sys.executable, {**os.environ}, timeout_s=1)
    assert (row["passed"], row["failed_cell"]) == (False, None)
    assert row["first_error"] == "timed out after 1 s (the whole notebook; see the log)"


def test_a_long_path_leaves_one_underscore_around_the_header():
    output = ("_ pytest-of-root/pytest-207/test_first_error_of_a_real_fai0/broken.ipynb::Cell 1 _\n"
              "Notebook cell execution failed\nCell 1: Cell execution caused an exception\n\nInput:\nraise KeyError('k')\n\n"
              "Traceback:\n\n------\nKeyError                 Traceback (most recent call last)\n"
              "Cell In[1], line 1\n----> 1 raise KeyError('k')\n\nKeyError: 'k'\n"
              "=========================== short test summary info ============================\n")
    assert latest.first_error(output) == ("Cell 1", "KeyError: 'k'")
