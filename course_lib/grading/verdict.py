"""From what happened during a run to a status and a reason a person can act on.

* ``graded``: every cell ran, the guard reported genuinely at every check and found nothing; the scores are
  nbgrader's. The reason lists what the student should know (a cell interrupted at the time limit, a memory or
  process limit hit, a network attempt, restored test cells, files not graded).
* ``rejected``: the submission could not be graded *because of what it is or does*: not a notebook, missing,
  tampering found by the scan or the guard, the kernel stopped by the notebook's own code or killed for a limit.
* ``error``: the grader or the machine failed (sandbox would not start, nbgrader crashed); re-running retries it.

A rejected or errored submission never carries a score: ``scores`` stays empty and ``total`` is None.
"""

from __future__ import annotations

import os
import stat

from .execute import exit_description
from .guard import Guard, check_guard_cell

OUT_OF_MEMORY = "ran out of its memory limit (--memory raises it)"
SIGNATURES = [  # (error name or message fragment, note): what a limit or a blocked access looks like from inside
    ("MemoryError", OUT_OF_MEMORY),
    ("can't allocate memory", OUT_OF_MEMORY),  # torch's CPU allocator
    ("Cannot allocate memory", OUT_OF_MEMORY),  # errno 12 (ENOMEM)
    ("Resource temporarily unavailable", "hit the process limit"),
    ("BlockingIOError", "hit the process limit"),
    ("Network is unreachable", "tried to reach the network (the sandbox has none)"),
    ("Temporary failure in name resolution", "tried to reach the network (the sandbox has none)"),
    ("gaierror", "tried to reach the network (the sandbox has none)"),
    ("Read-only file system", "tried to write outside its working folder"),
    ("PermissionError", "tried to open a file it may not"),
    ("File too large", "hit the file size limit"),
    ("SystemExit", "called sys.exit() or raised SystemExit (counted as an error)"),
]


def auto_max(info: dict) -> float:
    return sum(g["max"] for nb in info["notebooks"].values() for g in nb["grades"].values() if not g["manual"])


def new_result(sub, info: dict) -> dict:
    return {"student": sub.student, "lab": info["assignment"], "origin": sub.origin, "status": "error",
            "reason": "", "notes": list(sub.notes), "scores": {}, "total": None, "max": auto_max(info),
            "input_hash": sub.input_hash, "detail": ""}


def _with_notes(reason: str, result: dict) -> str:
    return "; ".join([reason] + [n for n in result["notes"] if n not in reason])


def reject(result: dict, reason: str) -> None:
    result.update(status="rejected", reason=_with_notes(reason, result), scores={}, total=None)
    return None


def error(result: dict, reason: str, detail: str = "") -> None:
    result.update(status="error", reason=_with_notes(reason, result), scores={}, total=None, detail=detail[-4000:])
    return None


def _where(cell: dict | None, labels: list[str] | None = None) -> str:
    """A cell as the student knows it: its grade id, or "added cell 5 (after 'add')", and its first line."""
    if not cell:
        return "before the first cell"
    if cell.get("grade_id"):
        name = f"'{cell['grade_id']}'"
    elif labels and cell["index"] < len(labels) and labels[cell["index"]]:
        name = labels[cell["index"]]
    else:
        name = f"cell {cell['index']}"
    return f"{name} (`{cell['first_line']}`)" if cell.get("first_line") else name


def _incident(state: dict, kind: str) -> dict | None:
    return next((i for i in state["incidents"] if i["kind"] == kind), None)


def output_notes(nb, guard: Guard, labels: list[str]) -> list[str]:
    """What the errors and stderr in an executed notebook say about limits and blocked accesses."""
    notes: list[str] = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or guard.is_guard_cell(cell.source):
            continue
        meta = cell.metadata.get("nbgrader", {})
        label = f"'{meta['grade_id']}'" if meta.get("grade_id") else \
            (labels[index] if index < len(labels) else f"cell {index}")
        for out in cell.get("outputs", []):
            text = f"{out.get('ename', '')}: {out.get('evalue', '')}" if out.output_type == "error" else ""
            for fragment, note in SIGNATURES:
                if fragment and fragment in text and f"{label} {note}" not in notes:
                    notes.append(f"{label} {note}")
            if out.output_type == "stream" and out.get("name") == "stderr" and meta.get("grade") \
                    and not meta.get("solution"):
                notes.append(f"test {label} wrote to stderr, which nbgrader counts as a failure")
    return list(dict.fromkeys(notes))


def decide(result: dict, outcome: dict, state: dict, guard: Guard, guard_cells: dict, executed: dict,
           ipc_dir: str, opts: dict, *, labels: list[str]) -> bool:
    """Set ``result`` to rejected/error when the run cannot be graded; True when the scores may be read.
    ``labels``: the executed notebook's cells as the student knows them (one notebook; else empty)."""
    def where(inc: dict) -> str:
        return _where(inc["cell"], labels)

    if (inc := _incident(state, "notebook_timeout")) is not None:
        return reject(result, f"the notebook ran past its {opts['notebook_timeout']:g} s time limit (in "
                              f"{where(inc)}) and was stopped") or False
    if (inc := _incident(state, "output_flood")) is not None:
        return reject(result, f"printed more than {opts['output_kill_mb']:g} MB of output (in {where(inc)}); the "
                              "kernel was stopped") or False
    if (inc := _incident(state, "reply_missing")) is not None:
        return reject(result, f"the kernel finished {where(inc)} but its reply never arrived: the notebook tampers "
                              "with the kernel's messages (a dropped error?); the kernel was stopped") or False
    if (inc := _incident(state, "unresponsive")) is not None:
        why = (f"{inc['processes']} processes were running (limit {opts['processes']}: a fork bomb?)"
               if inc.get("processes", 0) >= opts["processes"] // 2 else "a SIGINT handler, or code that blocks "
                                                                           "signals?")
        return reject(result, f"{where(inc)} ran past the {opts['cell_timeout']:g} s cell limit and ignored the "
                              f"interrupt for {opts['interrupt_grace']:g} s ({why}); the kernel was stopped, so "
                              "later cells could not run") or False
    if not outcome.get("success"):
        text = (outcome.get("error") or outcome.get("log") or "").strip()
        if not state["ready"]:
            return error(result, "the sandboxed kernel did not start (the result file's detail has nbgrader's log)",
                         text) or False
        how = exit_description(state["kernel"])
        if how != "still running":
            return reject(result, f"the kernel stopped ({how}) while running {_where(state['cell'], labels)}: the "
                                  "notebook's code ended the Python process (os._exit, a crash, or the CPU or memory "
                                  "limit), so later cells could not run") or False
        last = text.splitlines()[-1] if text else "no message"
        return error(result, f"nbgrader autograde failed: {last}", text) or False
    problems: list[str] = []
    for name, cells in guard_cells.items():
        nb = executed.get(name)
        if nb is None:
            return error(result, f"nbgrader wrote no autograded {name}") or False
        prelude_errors = [o for o in nb.cells[0].get("outputs", []) if o.output_type == "error"]
        if prelude_errors:
            return error(result, f"the grader's prelude cell failed: {prelude_errors[0].get('ename')}: "
                                 f"{prelude_errors[0].get('evalue')}") or False
        for seq, (index, label) in enumerate(cells):
            problems += check_guard_cell(guard, seq, label, [dict(o) for o in nb.cells[index].get("outputs", [])])
    problems = list(dict.fromkeys(problems))
    flooded = [n for nb in executed.values() for n in output_notes(nb, guard, labels) if "process limit" in n]
    if problems and flooded:  # forked copies of the kernel answer in its place: the run cannot be trusted
        return reject(result, f"{flooded[0]} (a fork bomb?): copies of the kernel kept running and answered in its "
                              "place, so the run cannot be graded") or False
    if problems:
        return reject(result, "tampering found while it ran: " + "; ".join(problems[:4]) +
                      (f" (+{len(problems) - 4} more)" if len(problems) > 4 else "")) or False
    junk = [e for e in os.listdir(ipc_dir) if not stat.S_ISSOCK(os.lstat(os.path.join(ipc_dir, e)).st_mode)]
    if junk:
        return reject(result, f"created files in the kernel's socket folder ({', '.join(sorted(junk)[:3])})") or False
    for kind, text in (("cell_timeout", "was interrupted at the {s:g} s cell time limit"),
                       ("output_truncated", "printed more than the per-cell output limit (cut)")):
        for inc in state["incidents"]:
            if inc["kind"] == kind:
                result["notes"].append(f"{where(inc)} " + text.format(s=opts["cell_timeout"]))
    for nb in executed.values():
        result["notes"] += output_notes(nb, guard, labels)
    return True


def finish(result: dict, info: dict) -> None:
    """Totals over the autograded cells, the written answers waiting for a person, and the status."""
    total = maximum = 0.0
    pending = []
    for name, nb in info["notebooks"].items():
        for gid, spec in nb["grades"].items():
            score = result["scores"].get(name, {}).get(gid)
            if spec["manual"]:
                if score is None:
                    where = f"{nb['stem']}:" if len(info["notebooks"]) > 1 else ""
                    pending.append(f"'{where}{gid}' ({spec['max']:g} pts)")
                continue
            maximum += spec["max"]
            total += score or 0.0
    if pending:
        result["notes"].append("to grade by hand: " + ", ".join(pending))
    result.update(status="graded", total=round(total, 4), max=round(maximum, 4))
    result["notes"] = list(dict.fromkeys(result["notes"]))
    result["reason"] = "; ".join(result["notes"])
