"""`course grade` on the fixture course (tests/fixtures/grading/): honest and hostile submissions graded in one
batch, through the function the CLI calls. Each hostile submission gets its status and reason; the honest grades are
exact; nothing leaks or is planted; re-running resumes. Small limits keep it to about a minute on 2 cores."""

from __future__ import annotations

import csv
import hashlib
import html
import json
import os
import sys
import re
import shutil

import pytest

from course_lib import grading
from course_lib.grading import batch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
FIXTURES = os.path.join(HERE, "fixtures", "grading")
COURSE = os.path.join(FIXTURES, "course")
# students whose static-scan findings are waived, so that the in-kernel guard has to catch them at run time
TRUSTED = ("setattr_isclose", "patch_numpy_testing", "builtins_assertion", "kernel_patch")

GRADED, REJECTED = "graded", "rejected"
FULL, NONE = {"test_add": 1.0, "test_mean": 2.0}, {"test_add": 0.0, "test_mean": 0.0}
EXPECTED = {  # student: (status, scores when graded, words the reason must contain)
    "honest_full": (GRADED, FULL, ["to grade by hand: 'explain' (2 pts)"]),
    "honest_partial": (GRADED, {"test_add": 1.0, "test_mean": 0.0}, ["to grade by hand"]),
    "renamed": (GRADED, FULL, ["graded fixture_lab (1).ipynb as fixture_lab.ipynb"]),
    "infinite_loop": (GRADED, {"test_add": 0.0, "test_mean": 2.0}, ["'test_add'", "interrupted at the 5 s cell time"]),
    "memory_hog": (GRADED, FULL, ["added cell 5 (after 'add') ran out of its memory limit"]),
    "network": (GRADED, FULL, ["added cell 5 (after 'add') tried to reach the network",
                               "added cell 9 (after 'mean') tried to reach the network"]),
    "big_file": (GRADED, FULL, ["hit the file size limit"]),
    "read_secrets": (GRADED, FULL, []),
    "sys_exit": (GRADED, FULL, ["called sys.exit()"]),
    "ipython_exit": (GRADED, FULL, []),  # IPython's exit() only asks the front-end to stop: nbclient ignores it
    "systemexit_in_test": (GRADED, {"test_add": 0.0, "test_mean": 2.0}, ["'test_add' called sys.exit()"]),
    "tests_edited": (GRADED, NONE, ["restored from the source: 'test_add' (edited), 'test_mean' (edited)"]),
    "tests_deleted": (GRADED, NONE, ["restored from the source: 'test_add' (deleted), 'test_mean' (deleted)"]),
    "tests_disguised": (GRADED, NONE, ["restored from the source: 'test_add' (edited), 'test_mean' (deleted)"]),
    "tmp_writer": (GRADED, FULL, []),
    "tmp_reader": (GRADED, {"test_add": 0.0, "test_mean": 2.0}, []),  # no state from another student's /tmp
    "fake_output": (GRADED, NONE, []),  # printing nbgrader's log or a guard report changes nothing
    "numpy_shadow": (GRADED, NONE, ["not graded: numpy.py"]),  # the fake numpy.py never reaches the kernel
    "corrupt_notebook": (REJECTED, None, ["fixture_lab.ipynb is not a notebook (not UTF-8 text"]),
    "not_a_notebook": (REJECTED, None, ["is not a notebook (JSON without a list of cells"]),
    "corrupt_zip": (REJECTED, None, ["corrupt_zip.zip is not a valid zip archive"]),
    "missing_notebook": (REJECTED, None, ["missing fixture_lab.ipynb", "not graded: answers.py"]),
    "symlink_to_source": (REJECTED, None, ["is a symbolic link"]),
    "symlink_inside": (REJECTED, None, ["fixture_lab.ipynb is a symbolic link"]),
    "twice": (REJECTED, None, ["2 submissions for twice (twice/, twice.zip)"]),
    "bad name!": (REJECTED, None, ["may only use letters, digits"]),
    "os_exit": (REJECTED, None, ["the kernel stopped (exit code 0) while running added cell 5 (after 'add')"]),
    "giant_output": (REJECTED, None, ["printed more than 8 MB of output", "the kernel was stopped"]),
    "huge_print": (REJECTED, None, ["printed more than 8 MB of output"]),
    "many_prints": (GRADED, FULL, ["printed more than the per-cell output limit (cut)"]),
    "ignore_interrupt": (REJECTED, None, ["'test_add'", "ignored the interrupt for 2 s"]),
    "redefine_helper": (REJECTED, None, ["`check_close`, defined by the instructor's cell, was redefined"]),
    "shadow_isinstance": (REJECTED, None, ["rebinds the builtin `isinstance`, which the tests use"]),
    "patch_isclose": (REJECTED, None, ["tampering with the grading", "replaces `math.isclose`"]),
    "eq_cheat": (REJECTED, None, ["defines `__eq__` that ignores its argument"]),
    "history_leak": (REJECTED, None, ["`In` reads the notebook's history"]),
    # trusted (static findings waived): the guard inside the kernel rejects them while they run
    "setattr_isclose": (REJECTED, None, ["tampering found while it ran", "`math.isclose`"]),
    "patch_numpy_testing": (REJECTED, None, ["tampering found while it ran", "assert_allclose"]),
    "builtins_assertion": (REJECTED, None, ["tampering found while it ran", "the builtin `AssertionError`"]),
    "kernel_patch": (REJECTED, None, ["reply never arrived", "tampers with the kernel's messages"]),
}


def _options(out: str, **changes) -> grading.Options:
    options = grading.Options(cell_timeout=5, notebook_timeout=20, interrupt_grace=2, output_kill_mb=8, jobs=4,
                              memory_mb=1024, trust=TRUSTED, progress=False,
                              env={"GRADING_FIXTURE_COURSE": COURSE, "GRADING_FIXTURE_OUT": out})
    for key, value in changes.items():
        setattr(options, key, value)
    return options


def _tree_hash(folder: str) -> str:
    digest = hashlib.sha256()
    for root, _, files in sorted(os.walk(folder)):
        for name in sorted(files):
            with open(os.path.join(root, name), "rb") as f:
                digest.update(name.encode() + f.read())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    base = tmp_path_factory.mktemp("grading")
    submissions, out = str(base / "submissions"), str(base / "out")
    shutil.copytree(os.path.join(FIXTURES, "submissions"), submissions, symlinks=True)
    before = _tree_hash(COURSE)
    try:
        done = grading.grade_batch(submissions, COURSE, "fixture_lab", out, _options(out), "pytest")
    except grading.SandboxUnavailable as err:
        if os.geteuid() == 0:
            raise
        pytest.skip(f"no sandbox for a non-root user here: {err}")
    assert _tree_hash(COURSE) == before, "grading changed the course's source"
    return {"done": done, "out": out, "submissions": submissions,
            "results": {r["student"]: r for r in done["results"]}}


def test_every_submission_is_accounted_for(graded):
    assert sorted(graded["results"]) == sorted([*EXPECTED, "fork_bomb"])
    assert graded["done"]["run"]["graded_now"] == len(EXPECTED) + 1


@pytest.mark.parametrize("student", sorted(EXPECTED))
def test_status_reason_and_scores(graded, student):
    status, scores, words = EXPECTED[student]
    result = graded["results"][student]
    assert result["status"] == status, result["reason"]
    for word in words:
        assert word in result["reason"], result["reason"]
    if status == GRADED:
        assert result["scores"]["fixture_lab.ipynb"] == {**scores, "explain": None}  # written answer: by hand
        assert result["total"] == sum(scores.values()) and result["max"] == 3.0
    else:
        assert result["scores"] == {} and result["total"] is None  # never a zero


def test_fork_bomb_is_contained(graded):
    """Which process meets the limit first decides: the kernel survives it (graded, with the limit noted), or forked
    copies of the kernel keep answering in its place (rejected). Never a score from a corrupted run."""
    result = graded["results"]["fork_bomb"]
    if result["status"] == GRADED:
        assert "hit the process limit" in result["reason"] and result["total"] == 3.0
    else:
        # or the grader's own check could not start a thread inside the exhausted sandbox (rejected as tampering),
        # or the forked copies starved the kernel of CPU until the notebook's time limit (a busy machine, CI)
        assert result["status"] == REJECTED and any(
            words in result["reason"] for words in ("fork bomb?", "can't start new thread", "s time limit")), \
            result["reason"]
        assert result["total"] is None


def test_gradebook_csv_has_exact_honest_rows_and_no_scores_for_rejected(graded):
    with open(os.path.join(graded["out"], "gradebook.csv")) as f:
        rows = {r["student"]: r for r in csv.DictReader(f)}
    assert list(next(iter(rows.values()))) == ["student", "lab", "test_add", "test_mean", "explain (manual)", "total",
                                                "max", "status", "reason"]
    assert {k: rows["honest_full"][k] for k in ("test_add", "test_mean", "explain (manual)", "total", "max")} == \
        {"test_add": "1", "test_mean": "2", "explain (manual)": "", "total": "3", "max": "3"}
    assert (rows["honest_partial"]["test_add"], rows["honest_partial"]["test_mean"]) == ("1", "0")
    for student, (status, _, _) in EXPECTED.items():
        assert rows[student]["status"] == status
        if status != GRADED:
            assert rows[student]["test_add"] == rows[student]["total"] == ""


def test_feedback_hides_hidden_tests_and_grader_cells(graded):
    feedback = os.path.join(graded["out"], "feedback")
    with open(os.path.join(feedback, "honest_full.html")) as f:
        page = html.unescape(re.sub(r"<[^>]+>", "", f.read()))  # the text, without the syntax highlighting
    assert "mean([1, 2, 3])" in page and "BEGIN HIDDEN TESTS" not in page and "mean([2.5])" not in page
    assert "Sums of floats are rounded" in page  # the written answer, for the student to see
    assert "_course_guard" not in page and "x-course-guard" not in page
    with open(os.path.join(feedback, "corrupt_zip.html")) as f:
        assert "not a valid zip archive" in f.read()
    assert not os.path.exists(os.path.join(feedback, "bad name!.html"))
    with open(os.path.join(graded["out"], "autograded", "tests_edited", "fixture_lab.ipynb")) as f:
        sources = ["".join(c["source"]) for c in json.load(f)["cells"]]
    assert any("the student emptied this test" in s and s.startswith("[grader:") for s in sources)


def test_nothing_leaked_or_planted(graded):
    with open(os.path.join(graded["out"], "autograded", "read_secrets", "fixture_lab.ipynb")) as f:
        outputs = "".join("".join(o.get("text", "")) for c in json.load(f)["cells"] for o in c.get("outputs", []))
    assert "blocked:" in outputs and "WROTE-OUTSIDE" not in outputs
    leaked = [line for line in outputs.splitlines() if line.startswith("LEAKED")]
    # the only readable files are the kernel's own connection file, bound in read-only for it, and the read-only
    # code, venv, data and model cache every kernel needs (they show up here when the checkout lives under /tmp)
    from course_lib.paths import cache_dir

    public = tuple(os.path.realpath(p) + os.sep for p in (REPO, sys.prefix, sys.base_prefix, str(cache_dir())))
    assert all((line.split()[1].endswith(".json") and "/tmp/tmp" in line)
               or os.path.realpath(line.split()[1]).startswith(public) for line in leaked), leaked
    for planted in ("/tmp/planted_in_sandbox_tmp", "/tmp/shared_state", "/work/PLANTED",
                    os.path.join(graded["out"], "PLANTED"), os.path.join(COURSE, "gradebook.db")):
        assert not os.path.exists(planted), planted


def test_summary_states_isolation_and_statistics(graded):
    with open(os.path.join(graded["out"], "summary.md")) as f:
        summary = f.read()
    counts = [sum(r["status"] == status for r in graded["results"].values()) for status in (GRADED, REJECTED)]
    assert f"{len(EXPECTED) + 1} submissions: {counts[0]} graded, {counts[1]} rejected, 0 errors" in summary
    for words in ("## Isolation", "bubblewrap sandbox", "no network", "cell time 5 s", "notebook time 20 s",
                  "memory 1024 MB", "| test_mean |", "## Not graded"):
        assert words in summary
    assert os.path.getsize(os.path.join(graded["out"], "summary.png")) > 5000


def test_rerun_resumes_and_regrades_only_changed_submissions(graded):
    out, submissions = graded["out"], graded["submissions"]
    again = grading.grade_batch(submissions, COURSE, "fixture_lab", out, _options(out), "pytest")
    assert again["run"]["graded_now"] == 0 and again["run"]["reused"] == len(EXPECTED) + 1
    assert {r["student"]: r["status"] for r in again["results"]} == \
        {s: r["status"] for s, r in graded["results"].items()}
    path = os.path.join(submissions, "honest_full", "fixture_lab.ipynb")
    with open(path) as f:
        nb = json.load(f)
    nb["cells"][3]["source"] = "def add(a, b):\n    return a - b\n"  # the student resubmits, worse
    with open(path, "w") as f:
        json.dump(nb, f)
    changed = grading.grade_batch(submissions, COURSE, "fixture_lab", out, _options(out), "pytest")
    assert changed["run"]["graded_now"] == 1
    result = {r["student"]: r for r in changed["results"]}["honest_full"]
    assert (result["status"], result["total"]) == (GRADED, 2.0)


def test_a_crashed_regrade_never_leaves_a_stale_score(graded, monkeypatch):
    out, submissions = graded["out"], graded["submissions"]
    monkeypatch.setattr(batch, "START_SLACK_S", -19.5)  # the grading process is killed after 0.5 s
    crashed = grading.grade_batch(submissions, COURSE, "fixture_lab", out,
                                  _options(out, students=("honest_partial",), force=True), "pytest")
    result = {r["student"]: r for r in crashed["results"]}["honest_partial"]
    assert result["status"] == "error" and "was stopped" in result["reason"] and result["total"] is None
    with open(os.path.join(out, "gradebook.csv")) as f:
        row = next(r for r in csv.DictReader(f) if r["student"] == "honest_partial")
    assert (row["status"], row["total"], row["test_add"]) == ("error", "", "")
    monkeypatch.undo()
    retried = grading.grade_batch(submissions, COURSE, "fixture_lab", out, _options(out), "pytest")
    assert retried["run"]["graded_now"] == 1  # errors are retried, the rest reused
    result = {r["student"]: r for r in retried["results"]}["honest_partial"]
    assert (result["status"], result["total"]) == (GRADED, 1.0)


def test_refuses_without_a_sandbox_unless_told(tmp_path, monkeypatch):
    monkeypatch.setattr(grading.sandbox, "find_bwrap", lambda: None)
    with pytest.raises(grading.SandboxUnavailable, match="--no-sandbox-i-understand"):
        grading.grade_batch(os.path.join(FIXTURES, "submissions"), COURSE, "fixture_lab", str(tmp_path / "out"),
                            _options(str(tmp_path)))


def test_cli_help_names_the_options():
    from course_lib.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["grade", "--help"])
    assert exit_.value.code == 0
