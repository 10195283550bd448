"""The notebook that gets executed: the student's answers, put back into the instructor's structure.

nbgrader's own sanitizing (``OverwriteCells``) restores a read-only cell only while it still carries its grade id,
and leaves a test cell alone once its nbgrader metadata is stripped, moved or deleted (``add_missing_cells`` is
off by default, and re-adds cells at a guessed place). So before nbgrader sees a submission, ``rebuild`` makes a new
notebook in the *source's* order: every instructor cell (read-only text and code, every test cell with its hidden
tests) comes from the gradebook, whatever the student did to it; each answer cell takes the student's source under
the instructor's metadata; cells the student added stay, right after the instructor cell they followed. Every change
is reported as a note (nothing the student wrote is dropped: an unknown or duplicated grade id only loses its
metadata). ``with_guards`` then adds the guard cells (``guard.py``). The student's file is never modified.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_raw_cell

from . import scan
from .guard import Guard

MAX_CELLS = 5000


class NotebookProblem(ValueError):
    """The submission is not a notebook we can grade (its message says why, for the student and the instructor)."""


@dataclass
class Rebuilt:
    nb: nbformat.NotebookNode
    notes: list[str] = field(default_factory=list)
    student_code: list[tuple[str, str]] = field(default_factory=list)  # (label, source) of what the student wrote


def read_notebook(data: bytes, name: str, max_mb: float) -> list[dict]:
    """The cells of a submitted file, checked just enough to rebuild from (lenient with Colab or VS Code files)."""
    if len(data) > max_mb * 1024 * 1024:
        raise NotebookProblem(f"{name} is {len(data) / 1e6:.1f} MB, over the {max_mb:g} MB limit "
                              "(clear its outputs before submitting)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise NotebookProblem(f"{name} is not a notebook (not UTF-8 text: byte {err.start})") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as err:
        raise NotebookProblem(f"{name} is not a notebook (not JSON: {err.msg} at line {err.lineno}, "
                              f"column {err.colno})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("cells"), list):
        raise NotebookProblem(f"{name} is not a notebook (JSON without a list of cells; nbformat 3 and older "
                              "files must be opened and saved again in Jupyter)")
    if len(raw["cells"]) > MAX_CELLS:
        raise NotebookProblem(f"{name} has {len(raw['cells'])} cells, over the limit of {MAX_CELLS}")
    cells = []
    for i, cell in enumerate(raw["cells"], 1):
        source = cell.get("source") if isinstance(cell, dict) else None
        if isinstance(source, list) and all(isinstance(s, str) for s in source):
            source = "".join(source)
        if not isinstance(source, str) or cell.get("cell_type") not in ("code", "markdown", "raw"):
            raise NotebookProblem(f"{name}: cell {i} is not a valid notebook cell (needs a cell_type of code, "
                                  "markdown or raw and a text source)")
        metadata = cell.get("metadata") if isinstance(cell.get("metadata"), dict) else {}
        cells.append({"cell_type": cell["cell_type"], "source": source, "metadata": metadata,
                      "attachments": cell.get("attachments") if cell["cell_type"] == "markdown" else None})
    return cells


def _grade_id(cell: dict) -> str | None:
    meta = cell["metadata"].get("nbgrader")
    gid = meta.get("grade_id") if isinstance(meta, dict) else None
    return gid if isinstance(gid, str) else None


def _new_cell(cell_type: str, source: str, metadata: dict, attachments=None) -> nbformat.NotebookNode:
    if cell_type == "code":
        return new_code_cell(source, metadata=metadata)
    if cell_type == "markdown":
        made = new_markdown_cell(source, metadata=metadata)
        if attachments:
            made["attachments"] = attachments
        return made
    return new_raw_cell(source, metadata=metadata)


def _label(cell: dict, after: str | None, index: int) -> str:
    return f"added cell {index} " + (f"(after '{after}')" if after else "(at the top)")


def rebuild(student_cells: list[dict], info: dict) -> Rebuilt:
    """``info``: the assignment notebook as prepared by ``run.prepare_template``: ``cells`` in source order, each
    ``{grade_id, cell_type, locked, grade, solution, source (the gradebook's, hidden tests included), nbgrader}``
    for cells with an nbgrader id, and ``metadata`` (the release notebook's metadata)."""
    known = {c["grade_id"]: c for c in info["cells"] if c.get("grade_id")}
    notes: list[str] = []
    seen: dict[str, dict] = {}
    attached: dict[str | None, list[tuple[str, dict]]] = {None: []}
    last: str | None = None
    for index, cell in enumerate(student_cells, 1):
        gid = _grade_id(cell)
        if gid in known and gid not in seen:
            seen[gid] = cell
            last = gid
            attached.setdefault(gid, [])
            continue
        meta = {k: v for k, v in cell["metadata"].items() if k != "nbgrader"}
        if gid is not None:
            why = "appears twice" if gid in seen else "is not in the assignment"
            notes.append(f"cell {index} claims grade id '{gid}', which {why}: kept as an ungraded cell")
        attached.setdefault(last, []).append((_label(cell, last, index), {**cell, "metadata": meta}))
    cells: list[tuple[str, str, nbformat.NotebookNode]] = []  # (role, label, cell)
    student_code: list[tuple[str, str]] = []
    restored: list[str] = []
    kept: list[tuple[str, dict]] = []  # edits of read-only cells: kept as raw cells, so nothing written is lost

    def add_attached(key: str | None) -> None:
        for label, cell in attached.get(key, []):
            cells.append(("student", label, _new_cell(cell["cell_type"], cell["source"], cell["metadata"],
                                                      cell.get("attachments"))))
            if cell["cell_type"] == "code":
                student_code.append((label, cell["source"]))

    add_attached(None)
    for spec in info["cells"]:
        gid = spec.get("grade_id")
        if not gid:
            continue
        mine = seen.get(gid)
        metadata = {"nbgrader": copy.deepcopy(spec["nbgrader"])}
        if spec["locked"] or not spec["solution"]:
            if mine is None or mine["source"] not in (spec["release_source"], spec["source"]) or \
                    mine["cell_type"] != spec["cell_type"]:
                restored.append(f"'{gid}' ({'deleted' if mine is None else 'edited'})")
                if mine is not None and mine["source"].strip():
                    kept.append((gid, mine))
            role = "test" if spec["grade"] and spec["cell_type"] == "code" else \
                "instructor" if spec["cell_type"] == "code" else "text"
            cells.append((role, gid, _new_cell(spec["cell_type"], spec["source"], metadata)))
            for _, edit in kept[-1:] if kept and kept[-1][0] == gid else []:  # shown, never run
                cells.append(("student", f"the student's edit of '{gid}'",
                              new_raw_cell(f"[grader: the submission changed the read-only cell '{gid}' to the "
                                           f"text below; it was graded with the original]\n{edit['source']}")))
        elif mine is None:
            notes.append(f"answer cell '{gid}' is missing from the submission: graded as unanswered")
            cells.append(("answer", gid, _new_cell(spec["cell_type"], spec["source"], metadata)))
        else:
            if mine["cell_type"] != spec["cell_type"]:
                notes.append(f"answer cell '{gid}' was turned into a {mine['cell_type']} cell: run as "
                             f"{spec['cell_type']}")
            cells.append(("answer", gid, _new_cell(spec["cell_type"], mine["source"], metadata,
                                                   mine.get("attachments"))))
            if spec["cell_type"] == "code":
                student_code.append((f"'{gid}'", mine["source"]))
        add_attached(gid)
    if restored:
        notes.append("instructor cells restored from the source: " + ", ".join(restored))
    nb = new_notebook(metadata=copy.deepcopy(info["metadata"]))
    nb.cells = [c for _, _, c in cells]
    nb["metadata"]["course_grader_roles"] = [[role, label] for role, label, _ in cells]
    return Rebuilt(nb, notes, student_code)


def with_guards(rebuilt: Rebuilt, guard: Guard, ro_roots: list[str], shipped: list[str]) -> tuple[
        nbformat.NotebookNode, list[str], list[str]]:
    """The notebook to execute (prelude first, a guard around every instructor code cell and test, one at the end),
    the labels of its guard cells in execution order, and a label per cell as the student knows it."""
    roles = rebuilt.nb["metadata"].pop("course_grader_roles")
    out = [new_code_cell(guard.prelude(ro_roots, shipped))]
    labels: list[str] = []
    cell_labels = ["the grader's prelude"]

    def add_guard(label: str, **kwargs) -> None:
        labels.append(label)
        out.append(new_code_cell(guard.call(label, **kwargs)))
        cell_labels.append(f"the grader's check {label}")

    helper_chains: list[list[str]] = []  # what the instructor's helpers call (check_close -> math.isclose)
    for (role, label), cell in zip(roles, rebuilt.nb.cells):
        tree = scan.parse(cell.source) if role in ("test", "instructor") else None
        if role == "instructor":
            helper_chains += [c for c in scan.names_used(cell.source)[1] if c not in helper_chains]
        if role == "test":
            names, chains = scan.names_used(cell.source)
            add_guard(f"before {label}", names=names, chains=chains + [c for c in helper_chains if c not in chains],
                      deep=True)
        out.append(cell)
        cell_labels.append(label if role == "student" else f"'{label}'")
        if tree is not None:
            add_guard(f"after {label}", snap=scan.top_level_names(tree))
    add_guard("end", deep=True)
    nb = copy.deepcopy(rebuilt.nb)
    nb.cells = out
    return nb, labels, cell_labels


def strip_guards(nb: nbformat.NotebookNode, guard: Guard) -> nbformat.NotebookNode:
    """The executed notebook without the grader's cells (what the feedback shows)."""
    nb.cells = [c for c in nb.cells if not (c.cell_type == "code" and guard.is_guard_cell(c.source))]
    return nb
