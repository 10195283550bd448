"""``make test-latest`` (issue 13): the notebooks against the newest releases of the libraries that move fastest.

The Makefile builds ``.venv-latest`` (the kit with its pins, then ``pip install --upgrade`` of ``PACKAGES``, so pip
ignores the kit's pins for those six) and ``benchmarks/latest_versions.py`` runs there. These are its parts: the
project's pins, what pip really installed, what the index offers (pre-releases included), each notebook's result
with the first error line of its first failing cell, and the results file
(``benchmarks/results/latest_versions.json``).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from packaging.version import InvalidVersion, Version

# The libraries whose newest releases are tried. The Makefile's LATEST_PKGS names the same six (tests check).
PACKAGES = ("trl", "peft", "transformers", "datasets", "accelerate", "bitsandbytes")
SCOPE = ("every notebook in notebooks/, each in its own `pytest --nbval-lax --nbval-current-env` run, in the fast "
         "profile (tiny random model, few steps); the unit tests and the labs' solutions are not run here")

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# pytest's "____ notebooks/x.ipynb::Cell 3 ____" failure header; a long path leaves one "_" on each side
_SECTION = re.compile(r"^_+ (.+?) _+$")
_EXCEPTION = re.compile(r"^[A-Za-z_][\w.]*(: .*)?$")  # "ValueError: message" or a bare "KeyboardInterrupt"
_FRAME = ("Cell In[", "File ", "Input In [")  # IPython's frame headers; the exception line follows the last one


def pinned_versions(pyproject_text: str, packages: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Each package's exact pin (``name==version``) in a pyproject.toml's ``[project] dependencies``."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib

    pins = {}
    for line in tomllib.loads(pyproject_text)["project"]["dependencies"]:
        name, sep, pin = line.partition("==")
        if sep:
            pins[name.strip().lower()] = pin.strip()
    missing = [p for p in packages if p not in pins]
    if missing:
        raise ValueError(f"pyproject.toml has no exact pin (name==version) for {missing}; add one to "
                         "[project] dependencies, or drop the name from course_lib.latest.PACKAGES")
    return {p: pins[p] for p in packages}


def installed_versions(packages: tuple[str, ...]) -> dict[str, str | None]:
    """What is installed in *this* interpreter's environment (run it with ``.venv-latest``'s python): ``None`` if
    a package is absent."""
    found: dict[str, str | None] = {}
    for package in packages:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = None
    return found


def parse_index_versions(pip_output: str) -> list[str]:
    """The versions listed by ``pip index versions --pre NAME`` (its "Available versions:" line), as printed."""
    for line in pip_output.splitlines():
        if line.startswith("Available versions:"):
            return [v.strip() for v in line.split(":", 1)[1].split(",") if v.strip()]
    raise ValueError("pip index versions printed no 'Available versions:' line:\n" + pip_output.strip()[:500])


def index_versions(package: str, python: str = sys.executable) -> list[str] | str:
    """Every version the package index offers (pre-releases included), or the reason they could not be read."""
    proc = subprocess.run([python, "-m", "pip", "index", "versions", "--pre", package], capture_output=True,
                          text=True, timeout=120)
    try:
        return parse_index_versions(proc.stdout)
    except ValueError:
        lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip() and "WARNING" not in ln]
        return "index not readable: " + (lines[-1].strip() if lines else f"pip exited {proc.returncode}")


def _versions(listed: list[str]) -> list[Version]:
    out = []
    for text in listed:
        try:
            out.append(Version(text))
        except InvalidVersion:
            continue  # very old releases with non-PEP 440 names; never the newest
    return out


def compare_package(pinned: str, installed: str | None, available: list[str] | str) -> dict:
    """One package's row: its pin, what pip installed, whether that is the pin, the newest final release on the
    index and whether it is the installed one, and the newest pre-release above the pin (``None`` if there is none)."""
    row: dict = {"pinned": pinned, "installed": installed,
                 "same_as_pinned": installed is not None and Version(installed) == Version(pinned)}
    if isinstance(available, str):
        row.update(newest_release=None, installed_is_newest_release=None, newer_prerelease=None, index=available)
        return row
    listed = _versions(available)
    finals = [v for v in listed if not v.is_prerelease]
    newest = max(finals) if finals else None
    above = [v for v in listed if v.is_prerelease and v > Version(pinned)]
    row["newest_release"] = str(newest) if newest else None
    row["installed_is_newest_release"] = newest is not None and installed is not None and Version(installed) == newest
    row["newer_prerelease"] = str(max(above)) if above else None
    return row


def first_error(pytest_output: str) -> tuple[str | None, str | None]:
    """``(cell, line)`` of the first failure in a ``pytest --nbval-lax`` run: the failing cell ("Cell 3") and the
    exception line of its traceback (the last exception of a chain, the first line of a long message). A failure
    outside a cell (the notebook could not be collected, a plugin broke) gives pytest's first "E   " line, else its
    first "ERROR: " line, else the output's last line. ``(None, None)`` when nothing failed."""
    lines = _ANSI.sub("", pytest_output).splitlines()
    starts = [i for i, line in enumerate(lines) if _SECTION.match(line)]
    if starts:
        title = _SECTION.match(lines[starts[0]]).group(1)
        end = starts[1] if len(starts) > 1 else next(
            (i for i in range(starts[0] + 1, len(lines)) if lines[i].startswith("====")), len(lines))
        section = lines[starts[0] + 1:end]
        cell = title.rsplit("::", 1)[1] if "::Cell " in title else None
        if "Traceback:" in section:  # nbval prints the cell's source first ("Input:"): never read that as the error
            section = section[section.index("Traceback:") + 1:]
        frames = [i for i, line in enumerate(section) if line.lstrip().startswith(_FRAME)
                  or "Traceback (most recent call last)" in line or line.startswith("An exception has occurred")]
        after = section[frames[-1] + 1:] if frames else section
        found = next((line.strip() for line in after if _EXCEPTION.match(line) and line.strip()), None)
        found = found or next((line[1:].strip() for line in section if line.startswith("E ")), None)
        if found:
            return cell, found
        return cell, next((line.strip() for line in reversed(section) if line.strip()), title)
    e_lines = [line[1:].strip() for line in lines if line.startswith("E ")]
    e_lines += [line.strip() for line in lines if line.startswith("ERROR: ")]  # pytest's usage errors
    if e_lines:
        return None, e_lines[0]
    tail = [line.strip() for line in lines if line.strip()]
    return (None, tail[-1]) if tail else (None, None)


def run_notebook(notebook: Path, python: str, env: dict[str, str], timeout_s: float, log: Path | None = None) -> dict:
    """Run one notebook with nbval (``--nbval-lax``: errors fail, outputs are not compared) under ``python``; its
    result: passed, seconds, pytest's closing line, and for a failure the failing cell and its first error line.
    The whole output goes to ``log`` when given."""
    command = [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(notebook), "--nbval-lax",
               "--nbval-current-env"]
    start = time.perf_counter()
    # Its own process group, so that a notebook past its time is stopped with the kernel nbval started for it.
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=timeout_s)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        code = None
    except BaseException:  # interrupted (Ctrl-C, or SIGTERM turned into SystemExit by the runner): take it along
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    seconds = round(time.perf_counter() - start, 1)
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(output, encoding="utf-8")
    tail = [line.strip() for line in _ANSI.sub("", output).splitlines() if line.strip()]
    row = {"notebook": notebook.name, "passed": code == 0, "seconds": seconds,
           "pytest_closing_line": tail[-1] if tail else None, "failed_cell": None, "first_error": None}
    if code is None:
        row["first_error"] = f"timed out after {timeout_s:.0f} s (the whole notebook; see the log)"
    elif code != 0:
        row["failed_cell"], row["first_error"] = first_error(output)
        if row["first_error"] is None:
            row["first_error"] = f"pytest exited {code} with no output"
    return row


def build_report(packages: dict[str, dict], notebooks: list[dict], **extra) -> dict:
    """The results file's content: ``extra`` (command, date, machine, ...) first, then the scope, the per-package
    versions, whether all six are the pinned versions, each notebook's row, the counts and the failures."""
    failures = [{k: n[k] for k in ("notebook", "failed_cell", "first_error")} for n in notebooks if not n["passed"]]
    return {**extra, "scope": SCOPE, "packages": packages,
            "all_same_as_pinned": all(row["same_as_pinned"] for row in packages.values()),
            "notebooks": notebooks,
            "counts": {"notebooks": len(notebooks), "passing": len(notebooks) - len(failures),
                       "failing": len(failures)},
            "failures": failures}


def summary(report: dict) -> list[str]:
    """Lines to print at the end of the run. Worded so that no line reads like a test runner's closing line
    ("N passed"): CI judges the pinned suite's line, not these."""
    counts = report["counts"]
    lines = [f"newest releases: {counts['passing']} of {counts['notebooks']} notebooks ran clean"]
    for name, row in report["packages"].items():
        same = "= pinned" if row["same_as_pinned"] else f"(pinned {row['pinned']})"
        pre = f", pre-release {row['newer_prerelease']} not tried" if row.get("newer_prerelease") else ""
        lines.append(f"  {name} {row['installed']} {same}{pre}")
    for failure in report["failures"]:
        where = f" {failure['failed_cell']}" if failure["failed_cell"] else ""
        lines.append(f"  FAILING {failure['notebook']}{where}: {failure['first_error']}")
    return lines


def write_report(report: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
