"""The assignment, prepared once per batch: a scratch nbgrader course with the instructor's source, on which
``nbgrader generate_assignment`` built the gradebook (test cells with their hidden tests, points, checksums) and the
release version. Each submission's scratch course starts from a copy of its gradebook; ``info`` (JSON) tells the
workers the cells, points and files without a database query."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
from collections.abc import Iterator

from traitlets.config import Config

COURSE_ID = "course"


class GradingSetupError(RuntimeError):
    """The batch cannot start (missing assignment, nbgrader failed on the source): the message says how to fix it."""


@contextlib.contextmanager
def venv_path() -> Iterator[None]:
    """nbgrader creates a gradebook by running ``alembic`` from PATH: put this interpreter's bin folder first."""
    old = os.environ.get("PATH", "")
    os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + old
    try:
        yield
    finally:
        os.environ["PATH"] = old


def course_config(course: str) -> Config:
    """The course's ``nbgrader_config.py`` (code stubs, hidden-test markers, course id), if it has one."""
    path = os.path.join(course, "nbgrader_config.py")
    if not os.path.exists(path):
        return Config()
    from traitlets.config.loader import PyFileConfigLoader

    try:
        return PyFileConfigLoader("nbgrader_config.py", path=course).load_config()
    except Exception as err:  # the instructor's own file: say which and why
        raise GradingSetupError(f"{path} could not be loaded: {type(err).__name__}: {err}") from err


def scratch_config(cfg: Config, root: str, course_id: str) -> Config:
    """The course's config pointed at a scratch course: every folder and the gradebook (a course config may set
    ``db_url`` to the real gradebook, which grading must never touch)."""
    cfg.CourseDirectory.root = root
    cfg.CourseDirectory.course_id = course_id
    cfg.CourseDirectory.db_url = "sqlite:///" + os.path.join(root, "gradebook.db")
    for trait, folder in (("source_directory", "source"), ("release_directory", "release"),
                          ("submitted_directory", "submitted"), ("autograded_directory", "autograded"),
                          ("feedback_directory", "feedback"), ("solution_directory", "solution")):
        setattr(cfg.CourseDirectory, trait, folder)
    cfg.CourseDirectory.student_id = "*"
    cfg.CourseDirectory.assignment_id = ""
    return cfg


def source_files(folder: str) -> list[str]:
    """Every file of the assignment's source folder, relative, sorted (what nbgrader copies next to a notebook)."""
    out = []
    for dirpath, _, files in os.walk(folder):
        out += [os.path.relpath(os.path.join(dirpath, f), folder) for f in files]
    return sorted(out)


def source_hash(folder: str, config_path: str) -> str:
    """The assignment's source files and the course config, hashed (part of the resume key)."""
    digest = hashlib.sha256()
    paths = [(rel, os.path.join(folder, rel)) for rel in source_files(folder)]
    if os.path.exists(config_path):
        paths.append(("nbgrader_config.py", config_path))
    for rel, path in paths:
        digest.update(rel.encode())
        with open(path, "rb") as f:
            digest.update(hashlib.sha256(f.read()).digest())
    return digest.hexdigest()


def _cells(release_nb: dict, gradebook_nb) -> list[dict]:
    source_cells = {c.name: c for c in gradebook_nb.source_cells}
    cells = []
    for cell in release_nb["cells"]:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        gid = meta.get("grade_id")
        if not gid:
            continue
        kept = source_cells.get(gid)
        cells.append({"grade_id": gid, "cell_type": cell["cell_type"], "locked": bool(meta.get("locked")),
                      "grade": bool(meta.get("grade")), "solution": bool(meta.get("solution")),
                      "points": meta.get("points"), "nbgrader": meta, "release_source": "".join(cell["source"]),
                      "source": kept.source if kept is not None else "".join(cell["source"])})
    return cells


def prepare(course: str, assignment: str, scratch: str) -> dict:
    """Build the template course under ``scratch`` and return its ``info`` (also written to ``info.json``)."""
    from nbgrader.api import Gradebook
    from nbgrader.apps import NbGraderAPI

    source = os.path.join(course, "source", assignment)
    if not os.path.isdir(source):
        found = sorted(os.listdir(os.path.join(course, "source"))) if os.path.isdir(os.path.join(course, "source")) \
            else []
        raise GradingSetupError(f"no assignment '{assignment}' in {course}/source (found: {', '.join(found) or 'none'})"
                                ": pass --course the folder holding nbgrader's source/ and --assignment one of those")
    notebooks = sorted(f for f in os.listdir(source) if f.endswith(".ipynb"))
    if not notebooks:
        raise GradingSetupError(f"{source} has no notebook")
    root = os.path.join(scratch, "template")
    shutil.copytree(source, os.path.join(root, "source", assignment),
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    cfg = course_config(course)
    course_id = cfg.CourseDirectory.get("course_id") or COURSE_ID
    scratch_config(cfg, root, course_id)
    with venv_path():
        result = NbGraderAPI(config=cfg).generate_assignment(assignment, force=True, create=True)
    if not result["success"]:
        tail = "\n".join((result.get("error") or result.get("log") or "").strip().splitlines()[-12:])
        raise GradingSetupError(f"nbgrader generate_assignment failed on {source}; fix the source notebook "
                                f"(nbgrader validate helps):\n{tail}")
    info = {"assignment": assignment, "course": os.path.abspath(course), "course_id": course_id, "root": root,
            "db": os.path.join(root, "gradebook.db"), "notebooks": {},
            "shipped": [f for f in source_files(source) if not f.endswith(".ipynb")],
            "source_hash": source_hash(source, os.path.join(course, "nbgrader_config.py"))}
    with Gradebook(f"sqlite:///{info['db']}", course_id) as gb:
        for name in notebooks:
            stem = name[: -len(".ipynb")]
            with open(os.path.join(root, "release", assignment, name)) as f:
                release = json.load(f)
            book = gb.find_notebook(stem, assignment)
            cells = _cells(release, book)
            grades = {g.name: {"max": float(g.max_score), "manual": g.cell_type != "code" or any(
                c["grade_id"] == g.name and c["solution"] for c in cells)} for g in book.grade_cells}
            info["notebooks"][name] = {"stem": stem, "metadata": release.get("metadata", {}), "cells": cells,
                                       "grades": grades}
    with open(os.path.join(scratch, "info.json"), "w") as f:
        json.dump(info, f, indent=1)
    return info


def columns(info: dict) -> list[tuple[str, str, str]]:
    """(notebook, grade id, CSV column) of every graded cell, in notebook and cell order."""
    many = len(info["notebooks"]) > 1
    out = []
    for name, nb in sorted(info["notebooks"].items()):
        order = [c["grade_id"] for c in nb["cells"] if c["grade_id"] in nb["grades"]]
        for gid in order:
            label = f"{nb['stem']}:{gid}" if many else gid
            out.append((name, gid, label + (" (manual)" if nb["grades"][gid]["manual"] else "")))
    return out
