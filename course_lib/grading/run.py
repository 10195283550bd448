"""Grading one submission, in a fresh process of its own (forked from a server that imported nbgrader once).

Steps: read the student's notebook(s) (never trusting the file) → rebuild them in the source's structure
(``notebook.py``) → static scan (``scan.py``) → add the guard cells (``guard.py``) → a scratch nbgrader course
holding only this notebook and a copy of the template gradebook → ``nbgrader autograde`` with the hardened ``Execute``
(``execute.py``) whose kernel is started through ``launcher.py`` inside the sandbox (``sandbox.py``) → status from
what happened (``verdict.py``) → per-cell scores from the scratch gradebook → feedback (nbgrader's feedback
template, ``feedback.py``: hidden tests removed, guard cells removed). The result is one JSON file; ``batch.py`` merges
them. Only the kernel is sandboxed: this process is trusted code (nbgrader, the gradebook) and holds the secrets.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import sys
import time
import traceback

import nbformat
from nbconvert.preprocessors import ClearMetadataPreprocessor
from nbgrader.api import Gradebook
from nbgrader.apps import NbGraderAPI
from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, IgnorePattern, LimitOutput,
                                    SaveAutoGrades)

from . import collect, execute, feedback, notebook, report, sandbox, scan, template, verdict
from .guard import Guard

KERNEL_NAME = "course-sandbox"
LAUNCHER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "launcher.py")


def _write_kernelspec(scratch: str, spec_file: str) -> None:
    folder = os.path.join(scratch, "jupyter", "kernels", KERNEL_NAME)
    os.makedirs(folder)
    with open(os.path.join(folder, "kernel.json"), "w") as f:
        json.dump({"argv": [sys.executable, "-I", "-S", LAUNCHER, spec_file, "{connection_file}"],
                   "display_name": "Python 3 (grading sandbox)", "language": "python", "interrupt_mode": "message",
                   "metadata": {"debugger": False}}, f)


def _config(job: dict, course_root: str, ipc_dir: str, guard: Guard):
    opts = job["options"]
    cfg = template.scratch_config(template.course_config(job["info"]["course"]), course_root, job["info"]["course_id"])
    cfg.Autograde.autograde_preprocessors = [execute.SandboxedExecute, IgnorePattern, ClearMetadataPreprocessor,
                                             LimitOutput, SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]
    ex = cfg.SandboxedExecute
    ex.timeout, ex.kernel_name, ex.interrupt_on_timeout = int(opts["cell_timeout"]), KERNEL_NAME, True
    ex.shutdown_kernel, ex.startup_timeout, ex.raise_on_iopub_timeout = "immediate", 60, False
    ex.interrupt_grace, ex.guard_prefix, ex.ipc_dir = opts["interrupt_grace"], guard.name + "(", ipc_dir
    ex.max_output_cell = int(opts["output_mb"] * 1_000_000)
    ex.max_output_total = int(opts["output_kill_mb"] * 1_000_000)
    cfg.KernelManager.transport, cfg.KernelManager.ip = "ipc", os.path.join(ipc_dir, "k")
    cfg.OverwriteCells.add_missing_cells = False
    return cfg


def _spec(job: dict, scratch: str, ipc_dir: str) -> str:
    opts = job["options"]
    mode = opts["sandbox_mode"]
    uid = sandbox.sandbox_uid(job["batch_id"], job["index"])
    etc = os.path.join(scratch, "etc")
    sandbox.write_etc(etc, uid if mode == "root" else os.getuid())
    seccomp = None
    program = sandbox.seccomp_program()
    if program is not None and mode != "none":
        seccomp = os.path.join(scratch, "seccomp.bpf")
        with open(seccomp, "wb") as f:
            f.write(program)
    limits = sandbox.default_limits(opts["cell_timeout"], opts["notebook_timeout"], opts["memory_mb"])
    limits["nproc"] = opts["processes"]
    spec = sandbox.make_spec(mode=mode, uid=uid, python=sys.executable, ro_roots=opts["ro_roots"], ipc_dir=ipc_dir,
                             etc_dir=etc, limits=limits, workdir_mb=opts["disk_mb"], tmp_mb=opts["disk_mb"],
                             env=opts.get("env"), seccomp_file=seccomp)
    path = os.path.join(scratch, "sandbox.json")
    with open(path, "w") as f:
        json.dump(spec, f)
    return path


def _scores(db: str, course_id: str, info: dict, student: str) -> dict:
    scores: dict[str, dict] = {}
    with Gradebook(f"sqlite:///{db}", course_id) as gb:
        for name, nb in info["notebooks"].items():
            book = gb.find_submission_notebook(nb["stem"], info["assignment"], student)
            for grade in book.grades:
                known = grade.auto_score is not None or grade.manual_score is not None
                scores.setdefault(name, {})[grade.name] = float(grade.score) if known else None
    return scores


def _prepare_notebooks(job: dict, guard: Guard, result: dict) -> dict | None:
    """Read, rebuild, scan. Returns {notebook name: executable notebook}, or None when the submission is rejected."""
    sub: collect.Submission = job["submission"]
    opts, info = job["options"], job["info"]
    trusted = sub.student in opts["trust"]
    if sub.problems:
        return verdict.reject(result, "; ".join(sub.problems))
    out, findings = {}, []
    for name, nb_info in info["notebooks"].items():
        try:
            data = collect.read_member(sub, name, int(opts["max_notebook_mb"] * 1024 * 1024))
            cells = notebook.read_notebook(data, os.path.basename(sub.members[name]), opts["max_notebook_mb"])
        except notebook.NotebookProblem as err:
            return verdict.reject(result, str(err))
        except (OSError, KeyError, RuntimeError, ValueError, EOFError) as err:  # corrupt zip member, vanished file
            return verdict.reject(result, f"{sub.origin}: {name} could not be read ({type(err).__name__}: {err})")
        rebuilt = notebook.rebuild(cells, nb_info)
        prefix = f"{name}: " if len(info["notebooks"]) > 1 else ""
        result["notes"] += [prefix + note for note in rebuilt.notes]
        sources = [c["source"] for c in nb_info["cells"] if c["cell_type"] == "code"] + \
            [s for _, s in rebuilt.student_code]
        imported = scan.import_aliases(sources)
        test_attrs = {a for c in nb_info["cells"] if c["locked"] and c["cell_type"] == "code"
                      for chain in scan.names_used(c["source"])[1] for a in chain[1:]}
        for label, source in rebuilt.student_code:
            findings += scan.scan_cell(source, label, imported=imported, test_attrs=test_attrs)
        out[name] = notebook.with_guards(rebuilt, guard, opts["ro_roots"], info["shipped"])
    rejects = [f for f in findings if f.severity == scan.REJECT]
    reviews = [f for f in findings if f.severity == scan.REVIEW] + (rejects if trusted else [])
    if reviews:
        result["notes"].append(("trusted, for review: " if trusted and rejects else "for review: ") +
                               scan.summarize(reviews))
    if rejects and not trusted:
        return verdict.reject(result, "tampering with the grading: " + scan.summarize(rejects))
    return out


def grade_one(job: dict) -> dict:
    """Grade ``job["submission"]``; always returns (and writes to ``job["result_file"]``) a result dict."""
    started = time.time()
    sub: collect.Submission = job["submission"]
    info, opts = job["info"], job["options"]
    scratch = os.path.join(job["scratch_root"], f"{job['index']:05d}")
    result = verdict.new_result(sub, info)
    result.update(key=job["key"], reason="grading was interrupted before it finished: re-run to resume")
    try:
        os.makedirs(scratch)
        log = os.open(os.path.join(scratch, "log.txt"), os.O_WRONLY | os.O_CREAT, 0o600)
        os.dup2(log, 1)
        os.dup2(log, 2)  # kernels inherit these: their noise lands in the log, not on the instructor's terminal
        guard = Guard()
        prepared = _prepare_notebooks(job, guard, result)
        if prepared is not None:
            _autograde(job, scratch, guard, prepared, result)
    except Exception as err:  # our bug or the machine's: never a score, always a reason
        verdict.error(result, f"the grader failed: {type(err).__name__}: {err}", traceback.format_exc())
    finally:
        result["seconds"] = round(time.time() - started, 2)
        own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        result["cpu_seconds"] = {"grader": round(own.ru_utime + own.ru_stime, 2),
                                 "kernel": round(kids.ru_utime + kids.ru_stime + execute.STATE["kernel_cpu"], 2)}
        report.write_feedback(job["out"], result)
        report.write_result(job["result_file"], result)
        if not opts.get("keep_scratch"):
            shutil.rmtree(scratch, ignore_errors=True)
    return result


def _autograde(job: dict, scratch: str, guard: Guard, prepared: dict, result: dict) -> None:
    info, opts, student = job["info"], job["options"], job["submission"].student
    assignment = info["assignment"]
    course_root = os.path.join(scratch, "course")
    ipc_dir = os.path.join(scratch, "ipc")
    for folder in (ipc_dir, os.path.join(scratch, "rt"), os.path.join(course_root, "source")):
        os.makedirs(folder)
    os.symlink(os.path.join(info["root"], "source", assignment), os.path.join(course_root, "source", assignment))
    shutil.copyfile(info["db"], os.path.join(course_root, "gradebook.db"))
    submitted = os.path.join(course_root, "submitted", student, assignment)
    os.makedirs(submitted)
    guard_cells, cell_labels = {}, {}
    for name, (nb, labels, cell_labels[name]) in prepared.items():
        nbformat.write(nb, os.path.join(submitted, name))
        indices = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.source.startswith(guard.name + "(")]
        guard_cells[name] = list(zip(indices, labels))
    _write_kernelspec(scratch, _spec(job, scratch, ipc_dir))
    os.environ.update(JUPYTER_PATH=os.path.join(scratch, "jupyter"), JUPYTER_RUNTIME_DIR=os.path.join(scratch, "rt"),
                      JUPYTER_CONFIG_DIR=os.path.join(scratch, "jupyter-config"))
    api = NbGraderAPI(config=_config(job, course_root, ipc_dir, guard))
    execute.reset_state(opts["notebook_timeout"])
    try:
        outcome = api.autograde(assignment, student, force=True, create=True)
    finally:
        execute.stop_watchdog()
    autograded = os.path.join(course_root, "autograded", student, assignment)
    executed = {}
    for name in prepared:
        path = os.path.join(autograded, name)
        if os.path.exists(path):
            executed[name] = nbformat.read(path, as_version=4)
    decided = verdict.decide(result, outcome, execute.STATE, guard, guard_cells, executed, ipc_dir, opts,
                             labels=next(iter(cell_labels.values())) if len(cell_labels) == 1 else [])
    if not decided:
        return
    result["scores"] = _scores(os.path.join(course_root, "gradebook.db"), info["course_id"], info, student)
    for name, nb in executed.items():
        notebook.strip_guards(nb, guard)
        os.chmod(os.path.join(autograded, name), 0o644)
        nbformat.write(nb, os.path.join(autograded, name))
        keep = os.path.join(job["out"], "autograded", student)
        os.makedirs(keep, exist_ok=True)
        nbformat.write(nb, os.path.join(keep, name))
    if not opts.get("no_feedback"):
        result["feedback_files"] = {}
        for name, nb in executed.items():
            path = os.path.join(scratch, name[: -len(".ipynb")] + ".html")
            with open(path, "w") as f:
                f.write(feedback.render(nb, db_url=f"sqlite:///{os.path.join(course_root, 'gradebook.db')}",
                                        assignment=assignment, notebook=name[: -len(".ipynb")], student=student,
                                        hide_hidden_tests=not opts["show_hidden_tests"]))
            result["feedback_files"][name] = path
    verdict.finish(result, info)
