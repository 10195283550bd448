"""`course grade` throughput with isolation on, against nbgrader alone, and what one hostile submission costs.

Grades ``--n`` copies of one honest submission (the fixture course's, or any lab's: ``--course labs --assignment X
--notebook path``) with ``course_lib.grading.grade_batch`` (the CLI's function: bubblewrap sandbox, guards, limits,
feedback) at each ``--jobs``; then, in the same process, ``nbgrader autograde`` alone on ``--baseline-n`` copies,
sequentially (nbgrader's API in this process, and the ``nbgrader`` command per student as an instructor runs it);
then a batch of honest copies with one hostile submission added (one that sleeps through the notebook limit, one
fork bomb), against the same batch without it. Writes ``benchmarks/results/grading.json``.

Usage (from the repo root)::

    .venv/bin/python benchmarks/grading.py                      # about 10 minutes on 2 cores
    .venv/bin/python benchmarks/grading.py --n 8 --jobs 4 --baseline-n 2 --hostile-n 4 --out /tmp/smoke.json

Timings depend on what else the machine runs: the JSON records the load average before and after, and the CPU
seconds each submission cost (which the load does not change much): 60 x cores / CPU seconds is the rate an idle
machine reaches.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from machine import machine, versions  # noqa: E402

from course_lib import grading  # noqa: E402
from course_lib.grading import batch, template  # noqa: E402

FIXTURE = REPO / "tests" / "fixtures" / "grading"
FORK_BOMB = "import os\nwhile True:\n    os.fork()\n"


def sleeper(cell_timeout: float) -> list[str]:
    """Cells that each stay just under the cell limit, until the notebook limit stops them: the longest a
    submission can hold a job slot without being killed for a cell."""
    return [f"import time\ntime.sleep({max(cell_timeout - 1, 0.5):g})\n"] * 40


def _copies(notebook: Path, n: int, folder: Path, prefix: str = "s") -> None:
    for i in range(n):
        target = folder / f"{prefix}{i:04d}"
        target.mkdir(parents=True)
        shutil.copyfile(notebook, target / notebook.name)


def _grade(subs: Path, course: str, assignment: str, out: Path, options: grading.Options) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    done = grading.grade_batch(str(subs), course, assignment, str(out), options, "benchmark")
    seconds = time.perf_counter() - start
    results = done["results"]
    cpu = [r["cpu_seconds"] for r in results if "cpu_seconds" in r]
    return {"submissions": len(results), "wall_s": round(seconds, 1),
            "per_minute": round(60 * len(results) / seconds, 1),
            "statuses": {s: sum(r["status"] == s for r in results) for s in ("graded", "rejected", "error")},
            "cpu_s_per_submission": {"grader": round(statistics.fmean(c["grader"] for c in cpu), 2),
                                     "kernel": round(statistics.fmean(c["kernel"] for c in cpu), 2)} if cpu else None,
            "seconds_per_submission_median": statistics.median(r["seconds"] for r in results),
            "results": {r["student"]: r for r in results}}


def _baseline(course: str, assignment: str, notebook: Path, n: int, scratch: Path, cli_n: int) -> dict:
    """nbgrader alone: generate_assignment once, then autograde each student in turn (no sandbox, no guards)."""
    from nbgrader.apps import NbGraderAPI

    info = template.prepare(course, assignment, str(scratch))
    root = info["root"]
    for i in range(n + cli_n):
        folder = Path(root) / "submitted" / f"b{i:04d}" / assignment
        folder.mkdir(parents=True)
        shutil.copyfile(notebook, folder / notebook.name)
    cfg = template.scratch_config(template.course_config(course), root, info["course_id"])
    api = NbGraderAPI(config=cfg)
    start = time.perf_counter()
    with template.venv_path():
        ok = sum(api.autograde(assignment, f"b{i:04d}", force=True, create=True)["success"] for i in range(n))
    in_process = time.perf_counter() - start
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}
    start = time.perf_counter()
    for i in range(n, n + cli_n):
        subprocess.run([os.path.join(os.path.dirname(sys.executable), "nbgrader"), "autograde", assignment,
                        "--student", f"b{i:04d}", "--force"], cwd=root, env=env, capture_output=True, check=True)
    cli = time.perf_counter() - start
    return {"api_in_process": {"submissions": n, "succeeded": ok, "wall_s": round(in_process, 1),
                               "per_minute": round(60 * n / in_process, 1)},
            "cli_per_student": {"submissions": cli_n, "wall_s": round(cli, 1),
                                "per_minute": round(60 * cli_n / cli, 1) if cli_n else None}}


def _with_cells(notebook: Path, sources: list[str]) -> str:
    """The notebook with code cells added after its first cell (an attack added by a student)."""
    nb = json.loads(notebook.read_text())
    nb["cells"][1:1] = [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
                         "source": source} for source in sources]
    return json.dumps(nb)


def _hostile(course: str, assignment: str, notebook: Path, n: int, scratch: Path, options: grading.Options) -> dict:
    """Wall time of n honest copies, then the same with one sleeper (runs to the notebook limit) or one fork bomb."""
    out: dict = {}
    honest = scratch / "honest"
    _copies(notebook, n, honest)
    alone = _grade(honest, course, assignment, scratch / "o1", options)
    totals = {s: r["total"] for s, r in alone.pop("results").items()}
    out["honest_only"] = alone
    for name, sources in (("sleeper", sleeper(options.cell_timeout)), ("fork_bomb", [FORK_BOMB])):
        folder = scratch / name
        shutil.copytree(honest, folder)
        (folder / "zz_hostile").mkdir()
        (folder / "zz_hostile" / notebook.name).write_text(_with_cells(notebook, sources))
        graded = _grade(folder, course, assignment, scratch / f"o_{name}", options)
        hostile = graded["results"].pop("zz_hostile")
        intact = all(r["status"] == "graded" and r["total"] == totals[s] for s, r in graded["results"].items())
        out[name] = {"wall_s": graded["wall_s"], "extra_wall_s": round(graded["wall_s"] - alone["wall_s"], 1),
                     "hostile_status": hostile["status"], "hostile_reason": hostile["reason"],
                     "hostile_seconds": hostile["seconds"], "honest_grades_intact": intact}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--course", default=str(FIXTURE / "course"))
    parser.add_argument("--assignment", default="fixture_lab")
    parser.add_argument("--notebook", default=str(FIXTURE / "submissions" / "honest_full" / "fixture_lab.ipynb"))
    parser.add_argument("--n", type=int, default=60, help="copies graded per --jobs value")
    parser.add_argument("--jobs", type=int, nargs="+", default=[2, 4, 6, 8])
    parser.add_argument("--baseline-n", type=int, default=12, help="copies graded by nbgrader alone, in process")
    parser.add_argument("--cli-n", type=int, default=4, help="copies graded with the `nbgrader` command each")
    parser.add_argument("--hostile-n", type=int, default=16, help="honest copies beside one hostile submission")
    parser.add_argument("--cell-timeout", type=float, default=10)
    parser.add_argument("--notebook-timeout", type=float, default=30)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "grading.json"))
    args = parser.parse_args()
    notebook = Path(args.notebook)
    python = os.path.relpath(sys.executable, REPO) if sys.executable.startswith(str(REPO)) else sys.executable
    record: dict = {"command": f"{python} benchmarks/grading.py {shlex.join(sys.argv[1:])}".strip(),
                    "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "machine": machine(),
                    "versions": versions(("nbgrader", "nbclient", "ipykernel", "course-lib")),
                    "bubblewrap": subprocess.run(["bwrap", "--version"], capture_output=True, text=True).stdout.strip(),
                    "settings": {"course": args.course, "assignment": args.assignment, "notebook": str(notebook),
                                 "cell_timeout": args.cell_timeout, "notebook_timeout": args.notebook_timeout}}
    scratch = Path(tempfile.mkdtemp(prefix="grading-bench-"))
    try:
        subs = scratch / "subs"
        _copies(notebook, args.n, subs)
        record["sandboxed"] = {}
        for jobs in args.jobs:
            options = grading.Options(cell_timeout=args.cell_timeout, notebook_timeout=args.notebook_timeout,
                                      jobs=jobs, progress=False)
            run = _grade(subs, args.course, args.assignment, scratch / f"out{jobs}", options)
            run.pop("results")
            record["sandboxed"][f"jobs={jobs}"] = run
            print(f"jobs={jobs}: {run['per_minute']}/min ({run['wall_s']} s, {run['statuses']}, CPU/submission "
                  f"{run['cpu_s_per_submission']})", flush=True)
        record["nbgrader_alone"] = _baseline(args.course, args.assignment, notebook, args.baseline_n,
                                             scratch / "baseline", args.cli_n)
        best = max(record["sandboxed"].values(), key=lambda r: r["per_minute"])
        base = record["nbgrader_alone"]
        record["best"] = {"jobs": next(k for k, v in record["sandboxed"].items() if v is best),
                          "per_minute": best["per_minute"], "target_per_minute": 30,
                          "ratio_vs_nbgrader_api_sequential": round(best["per_minute"] /
                                                                     base["api_in_process"]["per_minute"], 2),
                          "ratio_vs_nbgrader_cli_per_student": round(best["per_minute"] /
                                                                      base["cli_per_student"]["per_minute"], 2)
                          if base["cli_per_student"]["per_minute"] else None}
        cpu = best["cpu_s_per_submission"]
        if cpu:
            record["best"]["idle_machine_estimate_per_minute"] = round(
                60 * (os.cpu_count() or 1) / (cpu["grader"] + cpu["kernel"]), 1)
        print(f"nbgrader alone: {base}", flush=True)
        options = grading.Options(cell_timeout=args.cell_timeout, notebook_timeout=args.notebook_timeout,
                                  jobs=int(record["best"]["jobs"].split("=")[1]), progress=False)
        record["hostile"] = _hostile(args.course, args.assignment, notebook, args.hostile_n, scratch / "hostile",
                                     options)
        record["hostile"]["slot_held_at_most_s"] = {
            "rule": f"notebook_timeout + {batch.START_SLACK_S:g} (batch.START_SLACK_S: kernel start up to 60 s, "
                    "nbgrader and the feedback); then the grading process is killed",
            "this_run": args.notebook_timeout + batch.START_SLACK_S,
            "defaults": grading.Options().notebook_timeout + batch.START_SLACK_S}
        print(json.dumps(record["hostile"], indent=1), flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    record["machine"]["load_average_1m_at_end"] = os.getloadavg()[0]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.out}: best {record['best']}")


if __name__ == "__main__":
    main()
