"""A batch: check the sandbox, prepare the assignment once, grade every submission in parallel (one fresh process
and one sandbox each), resume safely, write the reports.

Parallelism: a thread per job slot starts one process per submission from a ``forkserver`` that imported nbgrader
once (a cold ``nbgrader autograde`` spends 2.4 s of CPU importing). Each process is killed if it outlives its
notebook limit plus start-up slack, so one hostile submission costs the batch at most
``notebook_timeout + 60 + startup`` seconds of one slot, and never another student's grade.

Resuming: a submission is skipped when its result file has the same input hash (its notebooks' bytes), the same
grading key (source, config and options) and a final status (graded or rejected); errors are retried. Before a
submission is graded again its old result and feedback are deleted, so a crash mid-way leaves no stale score.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import hashlib
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field

from . import collect, report, sandbox, template

GRADER_VERSION = "1"
START_SLACK_S = 90.0  # kernel start (up to 60 s on a loaded machine), nbgrader's own work, feedback


@dataclass
class Options:
    cell_timeout: float = 30.0
    notebook_timeout: float = 300.0
    memory_mb: int = 2048
    processes: int = 64
    disk_mb: int = 256
    output_mb: float = 1.0
    output_kill_mb: float = 64.0
    interrupt_grace: float = 3.0
    max_notebook_mb: float = 20.0
    jobs: int = 0  # 0: two per CPU core (kernels spend much of their start waiting)
    trust: tuple[str, ...] = ()
    students: tuple[str, ...] = ()
    force: bool = False
    no_sandbox: bool = False
    show_hidden_tests: bool = False
    read_only: tuple[str, ...] = ()
    keep_scratch: bool = False
    no_feedback: bool = False
    progress: bool = True
    env: dict = field(default_factory=dict)


class SandboxUnavailable(RuntimeError):
    """No working sandbox and no explicit consent to grade without one."""


def _mode(options: Options, scratch: str, ro_roots: list[str]) -> str:
    if options.no_sandbox:
        print("WARNING: --no-sandbox-i-understand: submissions run WITHOUT isolation. A notebook can read the "
              "hidden tests and the gradebook, other students' files and yours, use the network and leave "
              "processes behind. Only use this for notebooks you trust.", file=sys.stderr)
        return "none"
    if sandbox.find_bwrap() is None:
        raise SandboxUnavailable("bubblewrap (bwrap) is not installed, so submissions cannot be isolated. Install "
                                 "it (Debian/Ubuntu: `apt-get install bubblewrap`; `make test` does as root), or "
                                 "pass --no-sandbox-i-understand to grade WITHOUT isolation.")
    mode = "root" if os.geteuid() == 0 else "user"
    probe_dir = os.path.join(scratch, "probe")
    os.makedirs(probe_dir)
    spec = sandbox.make_spec(mode=mode, uid=sandbox.sandbox_uid(os.getpid(), 9999), python=sys.executable,
                             ro_roots=ro_roots, ipc_dir=os.path.join(probe_dir, "ipc"),
                             etc_dir=os.path.join(probe_dir, "etc"),
                             limits=sandbox.default_limits(options.cell_timeout, options.notebook_timeout,
                                                           options.memory_mb))
    sandbox.write_etc(spec["etc_dir"], spec["uid"])
    ok, why = sandbox.probe(spec, probe_dir)
    if not ok:
        hint = ("enable unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, or the AppArmor "
                "bwrap profile on Ubuntu 24.04)" if mode == "user" else "run on a kernel with namespaces")
        raise SandboxUnavailable(f"the bubblewrap sandbox does not work here ({why}): {hint}, or pass "
                                 "--no-sandbox-i-understand to grade WITHOUT isolation.")
    return mode


def grading_key(info: dict, options: Options) -> str:
    """Changes when anything but the submission could change a grade: source, config, limits, grader code."""
    relevant = {k: v for k, v in asdict(options).items() if k not in ("jobs", "students", "force", "progress",
                                                                       "keep_scratch", "no_feedback")}
    code = hashlib.sha256()
    for name in sorted(os.listdir(os.path.dirname(__file__))):
        if name.endswith(".py"):
            with open(os.path.join(os.path.dirname(__file__), name), "rb") as f:
                code.update(f.read())
    text = json.dumps([GRADER_VERSION, code.hexdigest(), info["source_hash"], relevant], sort_keys=True, default=list)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _run_process(ctx, job: dict, deadline: float) -> dict:
    from . import run

    process = ctx.Process(target=run.grade_one, args=(job,), name=f"grade-{job['submission'].student}")
    process.start()
    process.join(deadline)
    if process.is_alive():
        process.kill()
        process.join(10)
        result = report.read_result(job["result_file"])
        if result is None or result.get("status") is None:
            return _failed(job, f"grading took longer than {deadline:.0f} s and was stopped (the notebook limit "
                                "did not end it: re-run, or grade this student alone with a longer limit)")
    result = report.read_result(job["result_file"])
    if result is None:
        return _failed(job, f"the grading process died (exit code {process.exitcode}) before writing a result")
    return result


def _failed(job: dict, reason: str) -> dict:
    from .verdict import error, new_result

    result = new_result(job["submission"], job["info"])
    error(result, reason)
    result["key"] = job["key"]
    report.write_result(job["result_file"], result)
    report.write_feedback(job["out"], result)
    return result


def _scratch_root() -> str:
    base = tempfile.gettempdir()
    if len(base) > 40:  # unix socket paths are limited to 107 bytes: keep the kernels' ipc paths short
        base = "/tmp"
    return tempfile.mkdtemp(prefix="course-grade-", dir=base)


def grade_batch(submissions: str, course: str, assignment: str, out: str, options: Options | None = None,
                command: str = "") -> dict:
    """Grade every submission in ``submissions`` against ``course/source/<assignment>``; write to ``out``.
    Returns ``{"results": [...], "isolation": str, "run": {...}}``."""
    options = options or Options()
    started = time.time()
    out, course, submissions = os.path.abspath(out), os.path.abspath(course), os.path.abspath(submissions)
    ro_roots = sandbox.read_only_roots(options.read_only)
    secrets_ = [course, submissions, out]
    exposed = sandbox.leaks(ro_roots, secrets_)
    if exposed and not options.no_sandbox:
        raise SandboxUnavailable("the sandbox's read-only folders would expose " + ", ".join(exposed) +
                                 ": move the course, submissions and output folders out of them")
    if os.path.realpath(out).startswith(os.path.realpath(submissions) + os.sep):
        raise ValueError(f"--out {out} is inside the submissions folder {submissions}: choose another folder")
    os.makedirs(out, exist_ok=True)
    scratch = _scratch_root()
    try:
        mode = _mode(options, scratch, ro_roots)
        info = template.prepare(course, assignment, scratch)
        subs, skipped = collect.collect(submissions, assignment, sorted(info["notebooks"]))
        key = grading_key(info, options)
        opts = {**asdict(options), "sandbox_mode": mode, "ro_roots": ro_roots}
        results, jobs = _plan(subs, info, options, opts, key, out, scratch)
        reused = len(results)
        try:
            results += _execute(jobs, options)
        except KeyboardInterrupt:  # Ctrl-C: report what is done; the next run resumes with the rest
            results += [report.read_result(j["result_file"]) or _pending(j) for j in jobs]
            _write_reports(out, info, options, mode, ro_roots, results, skipped, command, len(jobs), reused,
                           started, key)
            raise
        run = _write_reports(out, info, options, mode, ro_roots, results, skipped, command, len(jobs), reused,
                             started, key)
        return {"results": sorted(results, key=lambda r: r["student"]), "isolation": run.pop("isolation"),
                "run": run}
    finally:
        if not options.keep_scratch:
            shutil.rmtree(scratch, ignore_errors=True)


def _pending(job: dict) -> dict:
    from .verdict import error, new_result

    result = new_result(job["submission"], job["info"])
    error(result, "not graded yet: the batch was interrupted; run the command again to resume")
    return result


def _write_reports(out, info, options, mode, ro_roots, results, skipped, command, graded_now, reused, started,
                   key) -> dict:
    limits = {**sandbox.default_limits(options.cell_timeout, options.notebook_timeout, options.memory_mb),
              "nproc": options.processes}
    spec = sandbox.make_spec(mode=mode, uid=sandbox.SANDBOX_UID_BASE, python=sys.executable, ro_roots=ro_roots,
                             ipc_dir="", etc_dir="", seccomp_file="x" if sandbox.seccomp_program() else None,
                             limits=limits, workdir_mb=options.disk_mb, tmp_mb=options.disk_mb)
    isolation = sandbox.describe(spec, cell_timeout=options.cell_timeout, notebook_timeout=options.notebook_timeout,
                                 output_mb=options.output_mb)
    run = {"command": command or "course_lib.grading.grade_batch(...)", "graded_now": graded_now,
           "reused": reused, "jobs": _jobs(options), "seconds": time.time() - started, "sandbox": mode, "key": key}
    report.write_reports(out, info, template.columns(info), results, isolation, run, skipped)
    return {**run, "isolation": isolation}


def _jobs(options: Options) -> int:
    return options.jobs if options.jobs > 0 else 2 * (os.cpu_count() or 1)


def _plan(subs, info, options, opts, key, out, scratch) -> tuple[list[dict], list[dict]]:
    """Results reused from an earlier run, and the jobs to grade now (their stale outputs deleted first)."""
    reused, jobs = [], []
    for index, sub in enumerate(subs):
        path = report.result_path(out, sub.student) if collect.STUDENT_ID.match(sub.student) else \
            os.path.join(out, "results", f"invalid-{index}.json")
        old = report.read_result(path)
        chosen = not options.students or sub.student in options.students
        fresh = old is not None and old.get("input_hash") == sub.input_hash and old.get("key") == key \
            and old.get("status") in ("graded", "rejected")
        if old is not None and (not chosen or (fresh and not options.force)):
            reused.append(old)
            continue
        if not chosen:
            continue
        for stale in (path, report.feedback_path(out, sub.student)):
            if stale and os.path.exists(stale):
                os.remove(stale)
        shutil.rmtree(os.path.join(out, "autograded", sub.student), ignore_errors=True)
        jobs.append({"index": index, "submission": sub, "info": info, "options": {**opts}, "key": key, "out": out,
                     "scratch_root": scratch, "batch_id": os.getpid(), "result_file": path})
    return reused, jobs


@contextlib.contextmanager
def _importable_main():
    """The fork server re-runs ``__main__`` from its file in every process; a script read from stdin
    (``python - <<EOF``) has no file to re-run: hide its fake ``__file__`` while grading."""
    main = sys.modules["__main__"]
    fake = getattr(main, "__file__", None)
    hide = fake is not None and getattr(main, "__spec__", None) is None and not os.path.isfile(fake)
    if hide:
        del main.__file__
    try:
        yield
    finally:
        if hide:
            main.__file__ = fake


def _execute(jobs: list[dict], options: Options) -> list[dict]:
    if not jobs:
        return []
    with _importable_main():
        return _execute_jobs(jobs, options)


def _execute_jobs(jobs: list[dict], options: Options) -> list[dict]:
    for job in jobs:
        job["options"]["key"] = job["key"]
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["course_lib.grading.preload"])
    deadline = options.notebook_timeout + START_SLACK_S
    results: list[dict] = []
    bar = None
    if options.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(jobs), desc="grading", unit="nb", file=sys.stderr)
    pool = cf.ThreadPoolExecutor(max_workers=_jobs(options))
    futures = {pool.submit(_run_process, ctx, job, deadline): job for job in jobs}
    try:
        for future in cf.as_completed(futures):
            result = future.result()
            result.setdefault("key", futures[future]["key"])
            results.append(result)
            if bar is not None:
                bar.set_postfix_str(f"{result['student']}: {result['status']}")
                bar.update()
    except KeyboardInterrupt:
        for future in futures:
            future.cancel()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if bar is not None:
            bar.close()
    return results
