"""Fixtures of the browser tests: one learner's lab (``make lab``) serving a scratch copy of the notebooks, and one
headless chromium. Screenshots and timings go to ``test-output/browser/`` (git-ignored)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from .jupyterlab import ROOT, find_chromium, shut_down_kernels, start_lab

OUTPUT = ROOT / "test-output" / "browser"
TIMINGS: dict[str, dict] = {}


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = find_chromium()
    if path is None:
        pytest.skip("No chromium found: install Debian's `chromium` package (make test-browser does when root), "
                    "or set COURSE_CHROMIUM to a Chromium/Chrome binary.")
    return path


@pytest.fixture(scope="session")
def browser(chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # --no-sandbox: CI runs as root, where chromium's own sandbox refuses to start
        b = p.chromium.launch(executable_path=chromium_path, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture(scope="session")
def workdir(tmp_path_factory) -> Path:
    """A scratch copy of notebooks/: running all cells in JupyterLab autosaves outputs, which must never reach the
    committed notebooks."""
    root = tmp_path_factory.mktemp("learner")
    for nb in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        shutil.copy(nb, root / nb.name)
    return root


@pytest.fixture(scope="session")
def learner_lab(workdir):
    OUTPUT.mkdir(parents=True, exist_ok=True)
    lab = start_lab(workdir, OUTPUT / "jupyterlab-learner.log", target="lab")
    TIMINGS["start make lab"] = {"seconds": round(lab.started_in, 1)}
    yield lab
    lab.stop()


@pytest.fixture
def page(browser, learner_lab):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    yield page
    context.close()
    shut_down_kernels(learner_lab)  # one notebook's kernel at a time, as a learner who closes what they finished


def pytest_sessionfinish(session, exitstatus):
    if TIMINGS:
        OUTPUT.mkdir(parents=True, exist_ok=True)
        (OUTPUT / "timings.json").write_text(json.dumps(TIMINGS, indent=2) + "\n")
        width = max(len(k) for k in TIMINGS)
        lines = [f"  {k:<{width}}  " + ", ".join(f"{a} {b}" for a, b in v.items()) for k, v in TIMINGS.items()]
        print("\nbrowser test timings (test-output/browser/timings.json):\n" + "\n".join(lines))
