"""Finding the submissions of a batch and reading their notebooks, without trusting them.

A batch folder holds one entry per student: a folder (``alice/``, its notebook anywhere up to three levels down),
a zip (``alice.zip``), a bare notebook (``alice.ipynb``, for one-notebook assignments), or nbgrader's layout
(``submitted/<student>/<assignment>/``, given either as the course folder or as ``submitted/``). Only the
assignment's notebooks are read; every other file is listed in the notes (nothing is silently dropped, nothing
else is graded: a ``numpy.py`` next to the notebook never reaches the kernel). Symbolic links are refused (one
pointing at the instructor's source notebook would otherwise be graded as the student's answer); zip members are
read in memory with a size cap, never extracted, so ``../`` names and zip bombs cannot do harm.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import zipfile
from dataclasses import dataclass, field

STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,99}$")
IGNORED_PARTS = ("__MACOSX", ".ipynb_checkpoints", ".DS_Store", "__pycache__")
MAX_DEPTH = 3
MAX_MEMBERS = 10_000


@dataclass
class Submission:
    student: str
    origin: str  # the folder, zip or file as found in the batch folder
    kind: str  # "folder", "zip", "notebook", "submitted" or "link"
    path: str = ""  # the entry's absolute path
    members: dict[str, str] = field(default_factory=dict)  # assignment notebook name -> path or zip member
    problems: list[str] = field(default_factory=list)  # any problem: rejected before grading
    notes: list[str] = field(default_factory=list)  # graded anyway, but said in the reason
    input_hash: str = ""


def _ignored(path: str) -> bool:
    return any(part in IGNORED_PARTS or part.startswith("._") for part in path.replace("\\", "/").split("/"))


def _choose(sub: Submission, notebooks: list[str], candidates: dict[str, list[str]], others: list[str]) -> None:
    """Map each assignment notebook to one candidate file (exact name; else the only notebook there is)."""
    for name in notebooks:
        found = candidates.get(name, [])
        if len(found) == 1:
            sub.members[name] = found[0]
        elif len(found) > 1:
            sub.problems.append(f"{len(found)} files named {name} in {sub.origin} ({', '.join(found[:4])}): "
                                "keep one")
    unused = sorted(p for name, paths in candidates.items() if name not in notebooks for p in paths)
    missing = [n for n in notebooks if n not in sub.members and not any(n in p for p in sub.problems)]
    if missing and len(notebooks) == 1 and len(unused) == 1:
        sub.members[notebooks[0]] = unused[0]
        sub.notes.append(f"graded {os.path.basename(unused[0])} as {notebooks[0]} (the only notebook submitted)")
        unused = []
    elif missing:
        seen = ", ".join(os.path.basename(p) for p in unused[:5]) or "no notebook at all"
        sub.problems.append(f"missing {', '.join(missing)} in {sub.origin} (found: {seen})")
    extra = sorted(unused + others)
    if extra:
        sub.notes.append(f"not graded: {', '.join(extra[:8])}" + (f" (+{len(extra) - 8} more)" if len(extra) > 8
                                                                  else ""))


def _scan_folder(sub: Submission, root: str, notebooks: list[str]) -> None:
    candidates: dict[str, list[str]] = {}
    others: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        depth = os.path.relpath(dirpath, root).count(os.sep) + (dirpath != root)
        dirnames[:] = sorted(d for d in dirnames if not _ignored(d) and depth < MAX_DEPTH)
        for name in sorted(filenames + [d for d in os.listdir(dirpath) if os.path.islink(os.path.join(dirpath, d))
                                        and d not in filenames]):
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            if _ignored(rel):
                continue
            if os.path.islink(path):
                sub.problems.append(f"{rel} is a symbolic link (to {os.readlink(path)}): submit the file itself")
            elif name.endswith(".ipynb"):
                candidates.setdefault(name, []).append(path)
            else:
                others.append(rel)
    _choose(sub, notebooks, candidates, others)


def _scan_zip(sub: Submission, path: str, notebooks: list[str]) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        sub.problems.append(f"{sub.origin} is not a valid zip archive ({err})")
        return
    if len(infos) > MAX_MEMBERS:
        sub.problems.append(f"{sub.origin} has {len(infos)} entries, over the limit of {MAX_MEMBERS}")
        return
    candidates: dict[str, list[str]] = {}
    others: list[str] = []
    for info in infos:
        if info.is_dir() or _ignored(info.filename):
            continue
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            sub.problems.append(f"{info.filename} in {sub.origin} is a symbolic link: submit the file itself")
        elif info.flag_bits & 0x1:
            sub.problems.append(f"{info.filename} in {sub.origin} is encrypted: submit it without a password")
        elif info.filename.endswith(".ipynb"):
            candidates.setdefault(os.path.basename(info.filename), []).append(info.filename)
        else:
            others.append(info.filename)
    _choose(sub, notebooks, candidates, others)


def _entry_student(name: str) -> str:
    for suffix in (".zip", ".ipynb"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def collect(folder: str, assignment: str, notebooks: list[str]) -> tuple[list[Submission], list[str]]:
    """The submissions in ``folder`` (sorted by student) and the entries that are not submissions (with why)."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"no submissions folder {folder}: pass the folder holding one folder or zip per "
                                "student, or nbgrader's submitted/ folder")
    folder = os.path.abspath(folder)
    if os.path.isdir(os.path.join(folder, "submitted")):
        folder = os.path.join(folder, "submitted")
    subs: dict[str, list[Submission]] = {}
    skipped: list[str] = []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if _ignored(name) or name.startswith("."):
            continue
        student = _entry_student(name)
        if os.path.islink(path):
            sub = Submission(student, name, "link", path, problems=[f"{name} is a symbolic link: copy the submission "
                                                              "into the batch folder"])
        elif os.path.isdir(path):
            nested = os.path.join(path, assignment)
            layout = os.path.isdir(nested) and not os.path.islink(nested)
            sub = Submission(student, name + "/", "submitted" if layout else "folder", path)
            _scan_folder(sub, nested if layout else path, notebooks)
        elif name.lower().endswith(".zip"):
            sub = Submission(student, name, "zip", path)
            _scan_zip(sub, path, notebooks)
        elif name.endswith(".ipynb") and len(notebooks) == 1:
            sub = Submission(student, name, "notebook", path, members={notebooks[0]: path})
        else:
            skipped.append(f"{name} (not a folder, a .zip or a notebook)")
            continue
        if not STUDENT_ID.match(student):
            sub.problems.insert(0, f"student id {student!r} (from {name}) may only use letters, digits and ._@+-: "
                                   "rename it")
        subs.setdefault(student, []).append(sub)
    out: list[Submission] = []
    for student, found in sorted(subs.items()):
        if len(found) > 1:
            origins = ", ".join(s.origin for s in found)
            found[0].problems.insert(0, f"{len(found)} submissions for {student} ({origins}): keep one")
            found[0].origin = origins
        sub = found[0]
        sub.input_hash = input_hash(sub)
        out.append(sub)
    return out, skipped


def read_member(sub: Submission, name: str, max_bytes: int) -> bytes:
    """The bytes of one assignment notebook of a submission (at most ``max_bytes`` + 1, so a caller sees "too big")."""
    member = sub.members[name]
    if sub.kind == "zip":
        with zipfile.ZipFile(sub.path) as archive, archive.open(member) as f:
            return f.read(max_bytes + 1)
    fd = os.open(member, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise OSError(f"{member} is not a regular file")
        return f.read(max_bytes + 1)


def input_hash(sub: Submission, max_bytes: int = 200 * 1024 * 1024) -> str:
    """What resuming compares: the notebooks' bytes and the problems found (a fixed zip hashes differently)."""
    digest = hashlib.sha256(sub.student.encode())
    for problem in sub.problems:
        digest.update(problem.encode())
    for name in sorted(sub.members):
        digest.update(name.encode())
        try:
            digest.update(hashlib.sha256(read_member(sub, name, max_bytes)).digest())
        except (OSError, KeyError, zipfile.BadZipFile, RuntimeError, ValueError) as err:
            digest.update(repr(err).encode())
    return digest.hexdigest()
