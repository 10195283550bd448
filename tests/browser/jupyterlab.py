"""A small driver for JupyterLab in a real browser (Playwright + Debian's chromium): start the learner's lab the way
``make lab`` does, open a notebook, run all its cells, and read what a learner sees (errors, figures, widgets).

Only the browser tests use it; ``make test-browser`` installs what it needs.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "course-browser-test"
# JupyterLab renders an error output (a traceback) with the stderr mime type, like a warning: what tells them apart
# is IPython's traceback header
STDERR_OUTPUT = '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
TRACEBACK = "Traceback (most recent call last)"
CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """The system's chromium (Debian's `chromium` package); Playwright's own browser download is not reachable."""
    explicit = os.environ.get("COURSE_CHROMIUM")
    if explicit:
        return explicit
    for name in CHROMIUM_CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Lab:
    """A running JupyterLab server: ``url(path)`` opens a file in it; ``stop()`` ends it and its kernels."""

    process: subprocess.Popen
    port: int
    root_dir: Path
    log: Path
    started_in: float = 0.0

    def url(self, path: str = "", workspace: str = "") -> str:
        """``path`` opened in a workspace of its own (a fresh one: ``reset``), so no earlier notebook is restored."""
        where = f"/workspaces/{workspace}" if workspace else ""
        tree = f"/tree/{path}" if path else ""
        return f"http://127.0.0.1:{self.port}/lab{where}{tree}?token={TOKEN}&reset"

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)


def start_lab(root_dir: Path, log: Path, target: str = "lab", timeout: float = 180.0) -> Lab:
    """``make <target>`` (``lab``: the learner's lab; ``instructor``: nbgrader's tools too) serving ``root_dir``,
    no browser of its own, a fixed token. The Makefile's stamps are up to date after ``make install``, so this
    only starts the server."""
    port = free_port()
    args = f"--no-browser --port={port} --IdentityProvider.token={TOKEN} --ServerApp.root_dir={root_dir}"
    env = {**os.environ, "COURSE_PROFILE": os.environ.get("COURSE_PROFILE", "fast")}
    out = log.open("w")
    start = time.perf_counter()
    process = subprocess.Popen(["make", "--no-print-directory", target, f"LAB_ARGS={args}"], cwd=ROOT, env=env,
                               stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    lab = Lab(process, port, root_dir, log)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"make {target} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={TOKEN}", timeout=2):
                lab.started_in = time.perf_counter() - start
                return lab
        except OSError:
            time.sleep(1)
    lab.stop()
    raise RuntimeError(f"JupyterLab did not answer within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@dataclass
class RunResult:
    seconds: float
    code_cells: int
    executed: int
    errors: list[str] = field(default_factory=list)


def open_notebook(page, lab: Lab, path: str, timeout_ms: int = 90_000) -> None:
    page.goto(lab.url(path, workspace=Path(path).stem.replace("_", "-")))
    page.wait_for_selector(".jp-NotebookPanel .jp-Notebook .jp-Cell", timeout=timeout_ms)
    wait_kernel_idle(page, timeout_ms)
    page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell").first.click()  # the notebook has the focus


def kernel_status(page) -> str:
    return page.evaluate("""() => {
        const el = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator');
        return el ? (el.getAttribute('data-status') || '') : '';
    }""")


def wait_kernel_idle(page, timeout_ms: int) -> None:
    deadline = time.time() + timeout_ms / 1000
    while time.time() < deadline:
        if kernel_status(page) == "idle":
            return
        time.sleep(0.5)
    raise TimeoutError(f"the kernel did not become idle within {timeout_ms / 1000:.0f} s "
                       f"(status {kernel_status(page)!r})")


def run_menu(page, menu: str, item: str) -> None:
    """Click a main-menu entry, as a learner would (e.g. Run → Run All Cells)."""
    page.locator(".lm-MenuBar-itemLabel", has_text=menu).first.click()
    page.locator(".lm-Menu-itemLabel", has_text=item).first.click()


def prompts(page) -> list[str]:
    return page.eval_on_selector_all(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputPrompt",
                                     "els => els.map(e => e.textContent.trim())")


def run_all(page, timeout_s: float) -> RunResult:
    """Run → Run All Cells, then wait until no cell is queued or running and the kernel is idle."""
    start = time.perf_counter()
    for _attempt in range(3):  # a click that lands while the lab is still settling does nothing: click again
        run_menu(page, "Run", "Run All Cells")
        started = time.time() + 15
        while time.time() < started and not any(p != "[ ]:" for p in prompts(page)):
            time.sleep(0.25)
        if any(p != "[ ]:" for p in prompts(page)):
            break
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        current = prompts(page)
        if not any("*" in p for p in current) and kernel_status(page) == "idle":
            break
        time.sleep(1.0)
    else:
        raise TimeoutError(f"cells still running after {timeout_s:.0f} s: prompts {prompts(page)}")
    current = prompts(page)
    time.sleep(0.5)  # the last output's rendering
    errors = [text for text in page.locator(STDERR_OUTPUT).all_text_contents() if TRACEBACK in text]
    return RunResult(time.perf_counter() - start, len(current),
                     sum(1 for p in current if any(ch.isdigit() for ch in p)),
                     [e.strip().splitlines()[-1] for e in errors])


def images(page) -> list[dict]:
    """Every image in the notebook's outputs, scrolled into view, with whether the browser decoded it."""
    handles = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output img")
    found = []
    for i in range(handles.count()):
        img = handles.nth(i)
        img.scroll_into_view_if_needed()
        found.append(img.evaluate("e => ({w: e.naturalWidth, h: e.naturalHeight, complete: e.complete})"))
    return found


def shut_down_kernels(lab: Lab) -> None:
    """Shut down every kernel of the server (its REST API), so the next notebook starts on free memory."""
    import json

    base = f"http://127.0.0.1:{lab.port}/api/kernels"
    with urllib.request.urlopen(f"{base}?token={TOKEN}", timeout=10) as answer:
        kernels = json.load(answer)
    for kernel in kernels:
        request = urllib.request.Request(f"{base}/{kernel['id']}?token={TOKEN}", method="DELETE")
        urllib.request.urlopen(request, timeout=30).close()


def save(page) -> None:
    page.keyboard.press("Control+s")
    time.sleep(1.5)
