"""One nbgrader lab as a learner meets it, in the learner's lab (``make lab``) in headless chromium: the release as
nbgrader writes it for students, run as it is (the answer cells raise ``NotImplementedError`` until written), and
nbgrader's Validate button, which must list the failing tests; then the same lab with every answer written (the
committed solution), which must run clean and validate."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from .conftest import OUTPUT, TIMINGS
from .jupyterlab import ROOT, open_notebook, run_all

LAB = "lora_lab"  # about 15 s on 2 cores: the tiny model and peft, no Presidio


@pytest.fixture(scope="module")
def lab_files(workdir, tmp_path_factory) -> dict[str, str]:
    """The release (``nbgrader generate_assignment`` in a scratch course) and the solved lab, in the lab's folder."""
    course = tmp_path_factory.mktemp("course")
    shutil.copy(ROOT / "labs" / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "labs" / "source" / LAB, course / "source" / LAB)
    bin_dir = Path(sys.executable).parent  # nbgrader calls alembic from the same environment
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run([str(bin_dir / "nbgrader"), "generate_assignment", LAB, "--log-level=WARN"], cwd=course,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    release, solved = workdir / f"{LAB}_release", workdir / f"{LAB}_solved"
    shutil.copytree(course / "release" / LAB, release)
    solved.mkdir()
    shutil.copy(ROOT / "solutions" / LAB / f"{LAB}.ipynb", solved / f"{LAB}.ipynb")
    return {"release": f"{release.name}/{LAB}.ipynb", "solved": f"{solved.name}/{LAB}.ipynb"}


def _validate(page, timeout_s: float = 180) -> tuple[str, str]:
    """Press nbgrader's Validate button; return the result dialog's kind (success / failed / ...) and its text."""
    page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Toolbar-item", has_text="Validate").click()
    dialog = page.locator(".jp-Dialog")
    dialog.wait_for(timeout=timeout_s * 1000)
    kinds = ("success", "failed", "changed", "type-changed", "passed")
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        for kind in kinds:  # nbgrader marks the dialog's body with validation-<kind>
            if dialog.locator(f".validation-{kind}").count():
                return kind, dialog.inner_text()
        time.sleep(0.5)
    raise TimeoutError(f"no validation result after {timeout_s:.0f} s: {dialog.inner_text()[:500]}")


def _answer_cells(path: Path) -> int:
    nb = nbformat.read(path, as_version=4)
    return sum(1 for c in nb.cells if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution"))


def test_the_release_runs_and_validate_lists_what_is_missing(learner_lab, page, lab_files):
    open_notebook(page, learner_lab, lab_files["release"])
    result = run_all(page, 600)
    assert result.errors and all("NotImplementedError" in e for e in result.errors[:1]), result.errors
    page.screenshot(path=str(OUTPUT / f"{LAB}-release-run.png"))
    start = time.perf_counter()
    kind, text = _validate(page)
    page.screenshot(path=str(OUTPUT / f"{LAB}-release-validate.png"))
    assert kind == "failed", f"validating the unanswered release gave {kind!r}: {text[:500]}"
    assert "The following cell failed:" in text and "NotImplementedError" in text
    assert _answer_cells(learner_lab.root_dir / lab_files["release"]) > 0
    TIMINGS[f"{LAB} release"] = {"run all (s)": round(result.seconds, 1),
                                 "validate (s)": round(time.perf_counter() - start, 1)}


def test_the_solved_lab_runs_clean_and_validates(learner_lab, page, lab_files):
    open_notebook(page, learner_lab, lab_files["solved"])
    result = run_all(page, 600)
    assert not result.errors, result.errors
    assert result.executed == result.code_cells
    start = time.perf_counter()
    kind, text = _validate(page)
    page.screenshot(path=str(OUTPUT / f"{LAB}-solved-validate.png"))
    assert kind == "success", f"validating the solved lab gave {kind!r}: {text[:500]}"
    assert "Success! Your notebook passes all the tests." in text
    TIMINGS[f"{LAB} solved"] = {"run all (s)": round(result.seconds, 1),
                                "validate (s)": round(time.perf_counter() - start, 1)}
