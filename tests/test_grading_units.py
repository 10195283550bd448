"""Units of course_lib.grading: collecting submissions, rebuilding notebooks, the static scan, the guard's
signatures, the sandbox's command line and limits, the CSV. The whole batch runs in tests/test_grading.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from course_lib.grading import collect, guard, notebook, report, sandbox, scan, verdict

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "fixtures", "grading")
SUBMISSIONS = os.path.join(FIXTURES, "submissions")
NB = "fixture_lab.ipynb"


def _notebook_bytes(student: str = "honest_full") -> bytes:
    with open(os.path.join(SUBMISSIONS, student, NB), "rb") as f:
        return f.read()


# --- collect ---------------------------------------------------------------------------------------------------


def test_collect_folder_zip_and_bare_notebook(tmp_path):
    (tmp_path / "alice").mkdir()
    (tmp_path / "alice" / NB).write_bytes(_notebook_bytes())
    (tmp_path / "alice" / "notes.txt").write_text("scratch")
    with zipfile.ZipFile(tmp_path / "bob.zip", "w") as z:
        z.writestr("bob/fixture_lab/" + NB, _notebook_bytes())
        z.writestr("__MACOSX/bob/._" + NB, b"\x00")
    (tmp_path / "carol.ipynb").write_bytes(_notebook_bytes())
    (tmp_path / "notes.pdf").write_bytes(b"%PDF")
    subs, skipped = collect.collect(str(tmp_path), "fixture_lab", [NB])
    by = {s.student: s for s in subs}
    assert sorted(by) == ["alice", "bob", "carol"]
    assert [s.kind for s in (by["alice"], by["bob"], by["carol"])] == ["folder", "zip", "notebook"]
    assert all(not s.problems for s in subs)
    assert by["alice"].notes == ["not graded: notes.txt"]  # listed, never silently dropped
    assert by["bob"].members[NB] == "bob/fixture_lab/" + NB and not by["bob"].notes
    assert skipped == ["notes.pdf (not a folder, a .zip or a notebook)"]
    assert collect.read_member(by["bob"], NB, 10**7) == _notebook_bytes()
    assert by["alice"].input_hash != by["carol"].input_hash  # same bytes, another student


def test_collect_nbgrader_submitted_layout(tmp_path):
    folder = tmp_path / "course" / "submitted" / "dave" / "fixture_lab"
    folder.mkdir(parents=True)
    (folder / NB).write_bytes(_notebook_bytes())
    (folder / "timestamp.txt").write_text("2026-01-01 10:00:00")
    for given in (tmp_path / "course", tmp_path / "course" / "submitted"):
        subs, _ = collect.collect(str(given), "fixture_lab", [NB])
        assert [(s.student, s.kind, s.problems) for s in subs] == [("dave", "submitted", [])]
        assert subs[0].notes == ["not graded: timestamp.txt"]


def test_collect_problems_corrupt_zip_symlinks_duplicates_and_ids(tmp_path):
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04 cut short")
    (tmp_path / "linked").mkdir()
    os.symlink("/etc/hostname", tmp_path / "linked" / NB)
    (tmp_path / "twice").mkdir()
    (tmp_path / "twice" / NB).write_bytes(_notebook_bytes())
    with zipfile.ZipFile(tmp_path / "twice.zip", "w") as z:
        z.writestr(NB, _notebook_bytes())
    (tmp_path / "bad id").mkdir()
    (tmp_path / "bad id" / NB).write_bytes(_notebook_bytes())
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "answers.py").write_text("x = 1")
    (tmp_path / "many").mkdir()
    for name in ("a.ipynb", "b.ipynb"):
        (tmp_path / "many" / name).write_bytes(_notebook_bytes())
    problems = {s.student: " ".join(s.problems) for s in collect.collect(str(tmp_path), "fixture_lab", [NB])[0]}
    assert "not a valid zip archive" in problems["broken"]
    assert "symbolic link" in problems["linked"]
    assert "2 submissions for twice" in problems["twice"]
    assert "may only use letters" in problems["bad id"]
    assert "missing fixture_lab.ipynb" in problems["empty"] and "no notebook at all" in problems["empty"]
    assert "missing fixture_lab.ipynb" in problems["many"] and "a.ipynb" in problems["many"]


def test_collect_renamed_notebook_is_graded_with_a_note(tmp_path):
    (tmp_path / "erin").mkdir()
    (tmp_path / "erin" / "Copy of fixture_lab.ipynb").write_bytes(_notebook_bytes())
    sub = collect.collect(str(tmp_path), "fixture_lab", [NB])[0][0]
    assert not sub.problems and sub.members[NB].endswith("Copy of fixture_lab.ipynb")
    assert "graded Copy of fixture_lab.ipynb as fixture_lab.ipynb" in sub.notes[0]


def test_collect_missing_folder_says_what_to_pass(tmp_path):
    with pytest.raises(FileNotFoundError, match="one folder or zip per student"):
        collect.collect(str(tmp_path / "nope"), "fixture_lab", [NB])


# --- reading and rebuilding notebooks ------------------------------------------------------------------------------


@pytest.mark.parametrize("data, message", [
    (b"\xff\xfe\x00garbage", "not UTF-8"), (b"{not json", "not JSON: Expecting property name"),
    (b'{"hello": 1}', "JSON without a list of cells"), (b'{"cells": [{"cell_type": "code"}]}', "cell 1"),
    (b"x" * 3_000_000, "over the 2 MB limit"),
])
def test_read_notebook_rejects_what_is_not_a_notebook(data, message):
    with pytest.raises(notebook.NotebookProblem, match=message):
        notebook.read_notebook(data, NB, max_mb=2)


def _info() -> dict:
    """The assignment info ``template.prepare`` builds, made here without nbgrader: the source notebook gives the
    gradebook's sources (hidden tests included), the fixture generator's student version the release."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_submissions", os.path.join(FIXTURES, "make_submissions.py"))
    maker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(maker)
    release = {c["metadata"]["nbgrader"]["grade_id"]: c["source"] for c in maker.student_version()["cells"]}
    with open(os.path.join(FIXTURES, "course", "source", "fixture_lab", NB)) as f:
        source = json.load(f)
    cells = []
    for cell in source["cells"]:
        meta = cell["metadata"]["nbgrader"]
        gid = meta["grade_id"]
        cells.append({"grade_id": gid, "cell_type": cell["cell_type"], "locked": meta["locked"], "grade": meta["grade"],
                      "solution": meta["solution"], "points": meta.get("points"), "nbgrader": meta,
                      "release_source": release[gid],
                      "source": "".join(cell["source"]) if meta["locked"] else release[gid]})
    return {"cells": cells, "metadata": source["metadata"]}


def test_rebuild_restores_edited_deleted_and_disguised_tests():
    info = _info()
    for student, word in (("tests_edited", "edited"), ("tests_deleted", "deleted"), ("tests_disguised", "edited")):
        rebuilt = notebook.rebuild(notebook.read_notebook(_notebook_bytes(student), NB, 20), info)
        sources = {c.metadata.get("nbgrader", {}).get("grade_id"): c.source for c in rebuilt.nb.cells}
        assert "BEGIN HIDDEN TESTS" in sources["test_mean"] and sources["test_add"].startswith("assert add(1, 2)")
        assert rebuilt.nb.cells[-1].metadata["nbgrader"]["grade_id"] == "explain"  # source order
        assert any(f"'test_add' ({word})" in n for n in rebuilt.notes), rebuilt.notes
    disguised = notebook.rebuild(notebook.read_notebook(_notebook_bytes("tests_disguised"), NB, 20), info)
    points = [c.metadata["nbgrader"].get("points") for c in disguised.nb.cells if "nbgrader" in c.metadata]
    assert 100 not in points  # the decoy's 100 points did not survive
    cells = notebook.read_notebook(_notebook_bytes(), NB, 20)
    twin = dict(cells[4], source="pass")
    bogus = dict(cells[4], source="x = 1", metadata={"nbgrader": {"grade_id": "made_up", "grade": True}})
    rebuilt = notebook.rebuild(cells + [twin, bogus], info)
    assert any("claims grade id 'test_add', which appears twice" in n for n in rebuilt.notes)
    assert any("claims grade id 'made_up', which is not in the assignment" in n for n in rebuilt.notes)
    assert [c.source for c in rebuilt.nb.cells[-2:]] == ["pass", "x = 1"]  # kept, as ungraded cells
    assert all("nbgrader" not in c.metadata for c in rebuilt.nb.cells[-2:])


def test_rebuild_keeps_student_cells_and_edits_and_reports_missing_answers():
    info = _info()
    cells = notebook.read_notebook(_notebook_bytes("network"), NB, 20)
    rebuilt = notebook.rebuild(cells, info)
    labels = [label for label, _ in rebuilt.student_code]
    assert labels == ["'add'", "added cell 5 (after 'add')", "'mean'", "added cell 9 (after 'mean')"]
    edited = notebook.read_notebook(_notebook_bytes("tests_edited"), NB, 20)
    raw = [c.source for c in notebook.rebuild(edited, info).nb.cells if c.cell_type == "raw"]
    assert raw and "pass  # the student emptied this test" in raw[0]  # shown in the feedback, never run
    no_answer = [c for c in cells if c["metadata"].get("nbgrader", {}).get("grade_id") != "mean"]
    assert any("answer cell 'mean' is missing" in n for n in notebook.rebuild(no_answer, info).notes)


def test_with_guards_wraps_every_test_and_strip_guards_removes_them():
    rebuilt = notebook.rebuild(notebook.read_notebook(_notebook_bytes(), NB, 20), _info())
    g = guard.Guard()
    nb, labels, cell_labels = notebook.with_guards(rebuilt, g, ["/usr"], [])
    assert labels == ["after setup", "before test_add", "after test_add", "before test_mean", "after test_mean", "end"]
    assert len(cell_labels) == len(nb.cells) and g.token in nb.cells[0].source
    assert len(notebook.strip_guards(nb, g).cells) == len(rebuilt.nb.cells)


# --- static scan ---------------------------------------------------------------------------------------------------

TEST_ATTRS = {"isclose", "assert_allclose", "testing"}


@pytest.mark.parametrize("source, expected", [
    ("def add(a, b):\n    return a + b\n", None),
    ("%matplotlib inline\nimport numpy as np\n!ls\nx = np.arange(3)\n", None),
    ("import torch\ntorch.backends.cudnn.benchmark = True\n", None),
    ("class A:\n    def __init__(self):\n        self.f = lambda: 1\n", None),
    ("import math\nmath.isclose = lambda *a, **k: True\n", "replaces `math.isclose`"),
    ("import numpy as np\nnp.testing.assert_allclose = print\n", "replaces `np.testing.assert_allclose`"),
    ("import numpy as np\nu = np.testing\ndef f(*a):\n    pass\nu.other = f\n", "puts a function in place"),
    ("__builtins__.AssertionError = Exception\n", "`__builtins__`"),
    ("AssertionError = KeyError\n", "rebinds the exception class `AssertionError`"),
    ("import builtins\n", "imports `builtins`"),
    ("class A(float):\n    def __eq__(self, o):\n        return True\n", "defines `__eq__` that ignores"),
    ("class A:\n    def __array_ufunc__(self, *a, **k):\n        return 1\n", "defines `__array_ufunc__`"),
    ("get_ipython().set_custom_exc((Exception,), print)\n", "reaches into IPython"),
    ("import IPython.display\nIPython.get_ipython()\n", "reaches into IPython"),
    ("import sys\nsys.stdout.session.send = print\n", "replaces `sys.stdout.session.send`"),
    ("import math\nm = math\nm.__dict__['isclose'] = print\n", "`.__dict__`"),
    ("print(In[-2])\n", "`In` reads the notebook's history"),
    ("import linecache\n", "imports `linecache`"),
    ("import inspect\n", "imports `inspect`"),
    ("import traceback\nline = traceback.extract_stack()[-2].line\n", "`.extract_stack`"),
    ("import sys\nframe = sys._getframe(1)\n", "`._getframe`"),
    ("import sys\nsys.modules['math'] = None\n", "`sys.modules`"),
    ("exec('x = 1')\n", "`exec` runs code built from strings"),
    ("%load_ext mymodule\n", "%load_ext magic"),
    ("import pickle\n", "imports `pickle`"),
    ("import asyncio, math\nawait asyncio.sleep(0)\nmath.isclose = print\n", "replaces `math.isclose`"),
])
def test_scan_rejects_tampering_and_passes_honest_code(source, expected):
    found = scan.scan_cell(source, "'x'", imported={"np", "math", "torch", "sys", "builtins"}, test_attrs=TEST_ATTRS)
    rejects = [str(f) for f in found if f.severity == scan.REJECT]
    if expected is None:
        assert rejects == []
    else:
        assert any(expected in r for r in rejects), rejects


def test_scan_review_findings_do_not_reject():
    found = scan.scan_cell("import signal\nsignal.signal(2, 1)\n", "'x'", imported={"signal"}, test_attrs=set())
    assert [f.severity for f in found] == [scan.REVIEW] and "imports `signal`" in found[0].message
    lora = ("def inject(model, name, layer):\n    parent, child = name.rsplit('.', 1)\n"
            "    setattr(parent, child, layer)\n")
    found = scan.scan_cell(lora, "'x'", imported={"torch"}, test_attrs=TEST_ATTRS)  # LoRA injection is the lesson
    assert [f.severity for f in found] == [scan.REVIEW] and "`setattr` with an attribute name computed" in str(found[0])


def test_names_used_sees_test_names_and_chains_through_modules():
    names, chains = scan.names_used("import math\nassert isinstance(mean([1]), float)\ncheck(math.isclose(1, 1))")
    assert names == ["check", "float", "isinstance", "mean"]
    assert chains == [["math", "isclose"]]


# --- guard reports ----------------------------------------------------------------------------------------------


def _report(g: guard.Guard, seq: int, label: str, problems: list[str], mac: str | None = None) -> list[dict]:
    mac = mac or guard.report_mac(g.token, seq, label, problems)
    return [{"output_type": "display_data", "metadata": {},
             "data": {guard.MIME: {"label": label, "seq": seq, "problems": problems, "mac": mac}}}]


def test_guard_reports_must_be_genuine_in_order_and_alone():
    g = guard.Guard()
    assert guard.check_guard_cell(g, 0, "end", _report(g, 0, "end", [])) == []
    assert guard.check_guard_cell(g, 0, "end", _report(g, 0, "end", ["x was replaced"])) == ["x was replaced"]
    assert "forged" in guard.check_guard_cell(g, 0, "end", _report(g, 0, "end", [], mac="0" * 64))[0]
    assert "forged or replayed" in guard.check_guard_cell(g, 1, "end", _report(g, 0, "end", []))[0]
    assert "did not report" in guard.check_guard_cell(g, 0, "end", [])[0]
    assert "did not report" in guard.check_guard_cell(g, 0, "end", _report(g, 0, "end", []) * 2)[0]
    error = [{"output_type": "error", "ename": "NameError", "evalue": "name '_course_guard_x' is not defined"}]
    assert "failed to run: NameError" in guard.check_guard_cell(g, 0, "end", error)[0]


# --- sandbox -----------------------------------------------------------------------------------------------------


def _spec(tmp_path, mode: str = "root") -> dict:
    uid = sandbox.sandbox_uid(os.getpid(), 1)
    sandbox.write_etc(str(tmp_path / "etc"), uid)
    program = sandbox.seccomp_program()
    seccomp = None
    if program:
        seccomp = str(tmp_path / "seccomp.bpf")
        with open(seccomp, "wb") as f:
            f.write(program)
    return sandbox.make_spec(mode=mode, uid=uid, python=sys.executable, ro_roots=sandbox.read_only_roots(),
                             ipc_dir=str(tmp_path / "ipc"), etc_dir=str(tmp_path / "etc"),
                             limits=sandbox.default_limits(5, 20, 1024), seccomp_file=seccomp)


def test_bwrap_command_line_isolates_and_limits(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "data.csv").write_text("a,b")
    (work / NB).write_text("{}")
    args = sandbox.bwrap_args(_spec(tmp_path), str(work), str(tmp_path / "c.json"), ["python"], 5)
    joined = " ".join(args)
    for flag in ("--unshare-net", "--unshare-pid", "--die-with-parent", "--new-session", "--remount-ro /",
                 "--clearenv", "--seccomp 5", "--no-new-privs", "--nproc=64", "--tmpfs /home/student/work"):
        assert flag in joined
    assert f"{work}/data.csv /home/student/work/data.csv" in joined and NB not in joined  # notebooks not bound
    assert args[-1] == "python"
    user = sandbox.bwrap_args(_spec(tmp_path, "user"), str(work), str(tmp_path / "c.json"), ["python"], None)
    assert "--unshare-user" in user and "--disable-userns" in user and "setpriv" not in user


def test_seccomp_program_and_secret_paths(tmp_path):
    program = sandbox.seccomp_program("x86_64")
    assert len(program) % 8 == 0 and len(program) // 8 < 100
    assert sandbox.seccomp_program("sparc") is None
    roots = ["/work/main/.venv", "/work/main/course_lib"]
    assert sandbox.leaks(roots, ["/work/main/labs", "/tmp/out"]) == []
    assert sandbox.leaks(roots, ["/work/main/course_lib/x"]) == \
        ["/work/main/course_lib/x (inside /work/main/course_lib)"]


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed (make test installs it as root)")
def test_sandbox_really_isolates(tmp_path):
    """A python inside the sandbox: no network, no view of this test's files, its own uid, no nested namespaces."""
    spec = _spec(tmp_path, "root" if os.geteuid() == 0 else "user")
    ok, why = sandbox.probe(spec, str(tmp_path))
    if not ok and os.geteuid() != 0:
        pytest.skip(f"unprivileged bubblewrap does not work here: {why}")
    assert ok, why
    secret = tmp_path / "secret.txt"
    secret.write_text("hidden tests")
    work = tmp_path / "w"
    work.mkdir()
    code = (f"import os, socket, subprocess\nprint(os.path.exists({str(secret)!r}))\n"
            "try:\n    socket.create_connection(('1.1.1.1', 53), timeout=2)\n    print('net')\n"
            "except OSError as e:\n    print('no-net')\n"
            "print(subprocess.run(['unshare', '-U', 'true']).returncode != 0)\n"
            "open('/tmp/x', 'w').write('ok'); print(os.getuid())\n")
    fd = os.open(spec["seccomp_file"], os.O_RDONLY) if spec["seccomp_file"] else None
    connection = tmp_path / "c.json"
    connection.write_text("{}")
    os.makedirs(spec["ipc_dir"], exist_ok=True)
    if spec["mode"] == "root":
        os.chown(spec["ipc_dir"], spec["uid"], spec["uid"])
    done = subprocess.run(sandbox.bwrap_args(spec, str(work), str(connection), [sys.executable, "-c", code], fd),
                          capture_output=True, text=True, timeout=60, pass_fds=[fd] if fd else [])
    assert done.returncode == 0, done.stderr
    lines = done.stdout.split()
    assert lines[:3] == ["False", "no-net", "True"]
    if spec["mode"] == "root":
        assert lines[3] == str(spec["uid"])


def test_isolation_statement_names_every_limit(tmp_path):
    text = sandbox.describe(_spec(tmp_path), cell_timeout=5, notebook_timeout=20, output_mb=1)
    for words in ("no network", "no access to the course source", "cell time 5 s", "notebook time 20 s",
                  "memory 1024 MB", "64 processes", "files up to 64 MB", "seccomp"):
        assert words in text
    assert "NO SANDBOX" in sandbox.describe(_spec(tmp_path, "none"), cell_timeout=5, notebook_timeout=20, output_mb=1)


# --- verdict and report ------------------------------------------------------------------------------------------


def test_output_notes_explain_limits_from_errors():
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    nb = new_notebook(cells=[new_code_cell("x", outputs=[new_output("error", ename="MemoryError", evalue="",
                                                                    traceback=[])]),
                             new_code_cell("y", outputs=[new_output("error", ename="BlockingIOError",
                                                                    evalue="[Errno 11] Resource temporarily "
                                                                           "unavailable", traceback=[])]),
                             new_code_cell("z", outputs=[new_output(  # torch's CPU allocator, as a training cell hits it
                                 "error", ename="RuntimeError", evalue="[enforce fail at alloc_cpu.cpp:127] err == 0. "
                                 "DefaultCPUAllocator: can't allocate memory: you tried to allocate 53739520 bytes. "
                                 "Error code 12 (Cannot allocate memory)", traceback=[])])])
    nbformat.validate(nb)
    notes = verdict.output_notes(nb, guard.Guard(), ["first cell", "second cell", "third cell"])
    assert notes == ["first cell ran out of its memory limit (--memory raises it)", "second cell hit the process limit",
                     "third cell ran out of its memory limit (--memory raises it)"]


def test_csv_leaves_scores_of_rejected_rows_empty(tmp_path):
    columns = [(NB, "test_add", "test_add"), (NB, "explain", "explain (manual)")]
    results = [{"student": "a", "lab": "l", "status": "graded", "reason": "", "total": 1.0, "max": 1.0,
                "scores": {NB: {"test_add": 1.0, "explain": None}}},
               {"student": "b", "lab": "l", "status": "rejected", "reason": "not a notebook", "total": None,
                "max": 1.0, "scores": {NB: {"test_add": 0.0}}}]
    path = tmp_path / "gradebook.csv"
    report.write_csv(str(path), columns, results)
    lines = path.read_text().splitlines()
    assert lines == ["student,lab,test_add,explain (manual),total,max,status,reason", "a,l,1,,1,1,graded,",
                     "b,l,,,,1,rejected,not a notebook"]
