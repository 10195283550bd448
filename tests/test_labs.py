"""The nbgrader labs, graded by nbgrader itself in a temporary copy of the course (the repository is not touched).

- `nbgrader generate_assignment` makes a release with no solution and no hidden test in it;
- `nbgrader autograde` gives the unsolved release 0 on every cell, the committed solution full autograded marks
  (its written answers are left for a person), and a submission that passes only the visible tests less than that;
- `solutions/` is exactly what `nbgrader generate_solution` writes from the source;
- the dataset lab's export is what its generator writes, with every planted problem where the manifest says;
- the fine-tune lab's note checks name what is wrong (a stray number, a stale value, an unknown key).

The three labs are graded in parallel (one course folder each), in the fast profile (COURSE_PROFILE=fast).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest

from course_lib import data, quiz

ROOT = Path(__file__).resolve().parent.parent
LABS = ("dataset_lab", "lora_lab", "finetune_lab")
BIN = Path(sys.executable).parent  # nbgrader, and the `alembic` command it runs, live next to the interpreter
COURSE_ID = "finetune-course"
MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")

# Submissions that pass every visible test but not the hidden ones: grade_id of an answer cell -> (text of the
# solution, what the learner wrote instead). Each replacement must apply exactly once.
VISIBLE_ONLY = {
    "dataset_lab": {
        # every bad line found (via the library), but every problem named "malformed_json"
        "find_bad_lines": ("    schema = jsonschema.Draft202012Validator",
                           "    return {n: 'malformed_json' for n in data.load_jsonl(path, check_target=True)"
                           ".bad_lines}\n    schema = jsonschema.Draft202012Validator"),
        # only the customer's turns checked, not the assistant's
        "find_leftover_pii": ('if message["role"] not in ("user", "assistant"):', 'if message["role"] != "user":'),
        # the defaults (word 3-shingles at 0.8): only the exact copies go
        "dedup": ("data.drop_duplicates(redacted, threshold=data.GREENLEAF_DEDUP_THRESHOLD,\n"
                  "                                             shingle=data.GREENLEAF_SHINGLE)",
                  "data.drop_duplicates(redacted)"),
        # families kept whole, but not merged: the reworded ticket leaks across
        "split": ("threshold=data.GREENLEAF_MERGE_THRESHOLD, shingle=data.GREENLEAF_SHINGLE)", "threshold=None)"),
    },
    "lora_lab": {
        # the right shapes and a zero B, but the update is not scaled by alpha / r
        "lora_layer": ("self.scaling = alpha / r", "self.scaling = 1.0"),
    },
    "finetune_lab": {
        # a LoRA run whose loss falls, but without the replay rows
        "train": ("replay=replay, ", ""),
        # no length check: zip drops the answers (or rows) that have no partner
        "comparison_table": ("if len(predictions) != len(rows):", "if False:"),
        # an interval that ends at 0 read as a real difference
        "real_or_noise": ("if low > 0:", "if low >= 0:"),
        # a number typed from the README instead of taken from this run's table (the note quotes it consistently)
        "note": ('"tuned_mean": tables["tuned"]["mean"]["accuracy"],', '"tuned_mean": 0.55,'),
    },
}
# The cells each visible-only submission must lose (everything else must score full marks).
VISIBLE_ONLY_LOSES = {
    "dataset_lab": {"find_bad_lines_hidden", "pii_hidden", "dedup_hidden", "split_hidden"},
    "lora_lab": {"lora_layer_hidden", "peft_hidden", "merge_hidden"},
    "finetune_lab": {"train_hidden", "table_hidden", "verdict_hidden", "note_hidden"},
}
STUDENTS = ("unsolved", "solution", "visible_only")


def _nbgrader(course: Path, *args: str) -> None:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run([str(BIN / "nbgrader"), *args, "--log-level=WARN"], cwd=course, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"


def _read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def _grade_id(cell) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def _without_markers(source: str) -> str:
    """A solution as the learner would write it: the nbgrader delimiter lines removed."""
    return "\n".join(line for line in source.split("\n") if "### BEGIN SOLUTION" not in line
                     and "### END SOLUTION" not in line)


def _visible_only(release: nbformat.NotebookNode, solution: nbformat.NotebookNode, lab: str):
    """The release with every answer cell filled in from the solution, then the bugs of VISIBLE_ONLY put in."""
    answers = {_grade_id(c): c.source for c in solution.cells if c.metadata.get("nbgrader", {}).get("solution")}
    bugs = dict(VISIBLE_ONLY[lab])
    nb = nbformat.from_dict(json.loads(json.dumps(release)))
    for cell in nb.cells:
        gid = _grade_id(cell)
        if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("solution"):
            source = _without_markers(answers[gid])
            if gid in bugs:
                old, new = bugs.pop(gid)
                assert source.count(old) == 1, f"{lab}/{gid}: the fixture's text {old!r} is not in the solution once"
                source = source.replace(old, new)
            cell.source = source
    assert not bugs, f"answer cells not found: {sorted(bugs)}"
    return nb


def _grade_lab(base: Path, lab: str) -> dict:
    """Copy the course, generate the release and the solution, autograde three submissions, read the gradebook."""
    course = base / lab / "labs"
    (course / "source").mkdir(parents=True)
    shutil.copy(ROOT / "labs" / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "labs" / "source" / lab, course / "source" / lab)
    _nbgrader(course, "generate_assignment", lab)
    _nbgrader(course, "generate_solution", lab)
    release = course / "release" / lab
    committed = ROOT / "solutions" / lab / f"{lab}.ipynb"
    notebooks = {"unsolved": _read(release / f"{lab}.ipynb"), "solution": _read(committed)}
    notebooks["visible_only"] = _visible_only(notebooks["unsolved"], notebooks["solution"], lab)
    for student, nb in notebooks.items():
        folder = course / "submitted" / student / lab
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / f"{lab}.ipynb")
    _nbgrader(course, "autograde", lab)

    from nbgrader.api import Gradebook

    written = _written_answers(lab)
    grades = {}
    with Gradebook(f"sqlite:///{course / 'gradebook' / 'gradebook.db'}", COURSE_ID) as gb:
        for student in STUDENTS:
            submission = gb.find_submission_notebook(lab, lab, student)
            grades[student] = {g.name: {"auto": g.auto_score, "max": g.max_score, "manual": g.needs_manual_grade,
                                        "type": g.cell.cell_type, "written": g.name in written}
                               for g in submission.grades}
    return {"course": course, "release": release, "grades": grades,
            "solution_dir": base / lab / "solutions" / lab}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    base = tmp_path_factory.mktemp("course")
    with ThreadPoolExecutor(max_workers=len(LABS)) as pool:
        futures = {lab: pool.submit(_grade_lab, base, lab) for lab in LABS}
        return {lab: f.result() for lab, f in futures.items()}


def _source(lab: str) -> nbformat.NotebookNode:
    return _read(ROOT / "labs" / "source" / lab / f"{lab}.ipynb")


def _written_answers(lab: str) -> set[str]:
    """Grade ids of the answers graded by hand: a markdown cell, or a code cell (the fine-tune lab's note)."""
    return {_grade_id(c) for c in _source(lab).cells
            if c.metadata.get("nbgrader", {}).get("grade") and c.metadata.get("nbgrader", {}).get("solution")}


def _autograded(grades: dict) -> dict:
    return {k: v for k, v in grades.items() if not v["written"]}


def _manual(grades: dict) -> dict:
    return {k: v for k, v in grades.items() if v["written"]}


# --- the source notebooks ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("lab", LABS)
def test_source_is_an_nbgrader_assignment_without_outputs(lab):
    nb = _source(lab)
    ids = [_grade_id(c) for c in nb.cells if "nbgrader" in c.metadata]
    assert len(ids) == len(set(ids)), "grade ids repeat"
    assert not [c.id for c in nb.cells if c.cell_type == "code" and (c.outputs or c.execution_count)], \
        "commit the source without outputs"
    kinds = {(m.get("grade"), m.get("solution")) for m in (c.metadata.get("nbgrader", {}) for c in nb.cells)}
    assert {(True, False), (False, True), (True, True)} <= kinds, "tests, answers and a written answer"
    hidden = [c for c in nb.cells if "BEGIN HIDDEN TESTS" in c.source]
    assert hidden and all(c.metadata.nbgrader.get("grade") for c in hidden), "hidden tests belong in grade cells"
    quiz = [_grade_id(c) for c in nb.cells if re.fullmatch(r"q\d+_test", _grade_id(c) or "")]
    assert 4 <= len(quiz) <= 6, "a quiz of 4 to 6 graded questions"
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert not re.search(r"course_lib\.lora|from course_lib import [^\n]*\blora\b", code), "the learner writes LoRA"


def _multiple_choice(lab: str) -> list[tuple[str, quiz.Question]]:
    """(question number, the question) for each lettered quiz question of a lab (options A to D, answer letter in the
    next cell)."""
    cells, found = _source(lab).cells, []
    for i, cell in enumerate(cells):
        number = re.match(r"\*\*Q(\d+)\.\*\*", cell.source)
        options = dict(re.findall(r"^- \*\*([A-D])\.\*\* (.*)$", cell.source, re.M))
        if cell.cell_type == "markdown" and number and options:
            right = re.search(r'Q\d+ = "([A-D])"', cells[i + 1].source)
            assert right, f"{lab} Q{number.group(1)}: the next cell must hold its answer"
            letters = sorted(options)
            found.append((number.group(1), quiz.Question(cell.source, tuple(options[k] for k in letters),
                                                         letters.index(right.group(1)), "")))
    return found


@pytest.mark.parametrize("lab", LABS)
def test_quiz_answer_does_not_stand_out_by_length(lab):
    """As for the notebooks' banks (tests/test_quiz.py): the right option may be the strictly longest, or more than
    1.5x the others' mean length, in at most a third of the lab's lettered questions."""
    questions = _multiple_choice(lab)
    assert len(questions) >= 3, "three lettered questions per lab"
    assert all(len(q.options) == 4 for _, q in questions), "four options per question"
    longest = [f"Q{n}" for n, q in questions if quiz.answer_is_longest(q)]
    long = [f"Q{n}" for n, q in questions if quiz.answer_length_ratio(q) > 1.5]
    assert len(longest) <= len(questions) / 3, f"right option strictly longest in {longest}"
    assert len(long) <= len(questions) / 3, f"right option over 1.5x the others' mean length in {long}"
    assert len({q.answer for _, q in questions}) > 1, "the right letters all sit in one slot"


# --- release ----------------------------------------------------------------------------------------------------


def _regions(source: str) -> tuple[set[str], set[str]]:
    """(lines inside solution or hidden-test regions, lines outside them), stripped."""
    inside, outside, in_region = set(), set(), False
    for line in source.split("\n"):
        if "### BEGIN SOLUTION" in line or "### BEGIN HIDDEN TESTS" in line:
            in_region = True
        elif "### END SOLUTION" in line or "### END HIDDEN TESTS" in line:
            in_region = False
        else:
            (inside if in_region else outside).add(line.strip())
    return inside, outside


@pytest.mark.parametrize("lab", LABS)
def test_release_has_no_solution_and_no_hidden_test(graded, lab):
    release = _read(graded[lab]["release"] / f"{lab}.ipynb")
    assert not [m for m in MARKERS if any(m in c.source for c in release.cells)]
    code = "\n".join(c.source for c in release.cells if c.cell_type == "code")  # instructions may quote a line
    secret, public = set(), set()
    for cell in _source(lab).cells:
        inside, outside = _regions(cell.source)
        if cell.cell_type == "markdown" and cell.metadata.get("nbgrader", {}).get("solution"):
            inside, outside = outside, set()  # a written answer's model answer is all secret
        secret |= {line for line in inside if len(line) >= 12}
        public |= outside
    leaked = [line for line in secret - public if line in code]
    assert not leaked, f"solution or hidden-test lines in the release: {leaked[:5]}"
    answers = [c for c in release.cells if c.metadata.get("nbgrader", {}).get("solution")]
    assert all("raise NotImplementedError()" in c.source for c in answers if c.cell_type == "code")
    assert all(c.source.strip() == "YOUR ANSWER HERE" for c in answers if c.cell_type == "markdown")
    shipped = sorted(p.name for p in (ROOT / "labs" / "source" / lab).iterdir() if p.name != ".ipynb_checkpoints")
    assert sorted(p.name for p in graded[lab]["release"].iterdir()) == shipped, "data files travel with the lab"


# --- autograding ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lab", LABS)
def test_unsolved_release_scores_zero(graded, lab):
    grades = graded[lab]["grades"]["unsolved"]
    assert _autograded(grades) and _manual(grades)
    assert {k: v["auto"] for k, v in grades.items() if v["auto"] != 0} == {}
    # nbgrader scores an untouched written answer 0 itself, so nothing is left to grade by hand
    assert not any(v["manual"] for v in grades.values())


@pytest.mark.parametrize("lab", LABS)
def test_solution_scores_full_autograded_marks(graded, lab):
    grades = graded[lab]["grades"]["solution"]
    lost = {k: (v["auto"], v["max"]) for k, v in _autograded(grades).items() if v["auto"] != v["max"]}
    assert not lost, f"the solution lost points: {lost}"
    manual = _manual(grades)
    assert manual and all(v["manual"] and v["auto"] is None for v in manual.values()), "left for a person"


@pytest.mark.parametrize("lab", LABS)
def test_passing_only_the_visible_tests_is_not_full_marks(graded, lab):
    grades = _autograded(graded[lab]["grades"]["visible_only"])
    visible = {k: v for k, v in grades.items() if k.endswith("_visible")}
    assert visible and all(v["auto"] == v["max"] for v in visible.values()), "the fixture must pass the visible tests"
    lost = {k for k, v in grades.items() if v["auto"] != v["max"]}
    assert lost == VISIBLE_ONLY_LOSES[lab]
    score, total = sum(v["auto"] for v in grades.values()), sum(v["max"] for v in grades.values())
    assert score < total


# `course grade` on the real labs: the one command of docs/instructor_guide.md, each kernel in its sandbox, with the
# limits labs/README.md gives for each lab: a setup cell that imports torch and peft can pass the default 30 s on a
# busy machine (here six kernels share the CPU), and the fine-tune lab trains a model (4 GB of address space).
GRADE_LIMITS = {"dataset_lab": ["--cell-timeout", "120"], "lora_lab": ["--cell-timeout", "120"],
                "finetune_lab": ["--cell-timeout", "120", "--memory", "4096"]}


def _course_grade(graded_lab: dict, lab: str, base: Path) -> dict:
    submissions, out = base / lab / "submissions", base / lab / "out"
    for student, path in (("unsolved", graded_lab["release"] / f"{lab}.ipynb"),
                          ("solution", ROOT / "solutions" / lab / f"{lab}.ipynb")):
        (submissions / student).mkdir(parents=True)
        shutil.copy(path, submissions / student / f"{lab}.ipynb")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "COURSE_PROFILE": "fast"}
    result = subprocess.run([str(BIN / "course"), "grade", str(submissions), "--assignment", lab, "--course",
                             str(graded_lab["course"]), "--out", str(out), "--jobs", "2", "--quiet",
                             *GRADE_LIMITS[lab]], env=env, capture_output=True, text=True, timeout=900)
    if result.returncode != 0 and "sandbox" in result.stderr.lower() and os.geteuid() != 0:
        pytest.skip(f"no sandbox for a non-root user here: {result.stderr[-300:]}")
    assert result.returncode == 0, f"course grade failed:\n{result.stdout}\n{result.stderr}"
    import csv

    with open(out / "gradebook.csv", encoding="utf-8") as f:
        return {row["student"]: row for row in csv.DictReader(f)}


@pytest.fixture(scope="module")
def course_graded(graded, tmp_path_factory):
    base = tmp_path_factory.mktemp("course_grade")
    with ThreadPoolExecutor(max_workers=len(LABS)) as pool:
        futures = {lab: pool.submit(_course_grade, graded[lab], lab, base) for lab in LABS}
        return {lab: f.result() for lab, f in futures.items()}


@pytest.mark.parametrize("lab", LABS)
def test_course_grade_gives_the_release_zero_and_the_solution_full_marks(course_graded, lab):
    rows = course_graded[lab]
    assert set(rows) == {"unsolved", "solution"}
    unsolved, solution = rows["unsolved"], rows["solution"]
    assert (unsolved["status"], float(unsolved["total"])) == ("graded", 0), unsolved
    assert solution["status"] == "graded" and float(solution["total"]) == float(solution["max"]) > 0, solution
    written = [column for column in solution if column.endswith("(manual)")]
    assert written and all(solution[c] == "" for c in written), "written answers are left for a person"
    assert all(unsolved[c] == "0" for c in written), "an untouched written answer scores 0"
    assert "to grade by hand" in solution["reason"] and "memory" not in solution["reason"], solution["reason"]


@pytest.mark.parametrize("lab", LABS)
def test_committed_solutions_are_what_generate_solution_writes(graded, lab):
    fresh, committed = graded[lab]["solution_dir"], ROOT / "solutions" / lab
    names = lambda folder: sorted(p.name for p in folder.iterdir() if p.name != ".ipynb_checkpoints")  # noqa: E731
    assert names(fresh) == names(committed)
    for path in fresh.iterdir():
        if path.suffix == ".ipynb":
            assert _read(path) == _read(committed / path.name), \
                f"solutions/{lab}/{path.name} is stale: see solutions/README.md to regenerate it"
        else:
            assert path.read_bytes() == (committed / path.name).read_bytes(), f"solutions/{lab}/{path.name} is stale"


@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="not a git checkout")
def test_generated_folders_are_ignored_by_git():
    for path in ("labs/release/x/x.ipynb", "labs/submitted/s/x/x.ipynb", "labs/autograded/s/x/x.ipynb",
                 "labs/feedback/s/x/x.html", "labs/gradebook/gradebook.db"):
        result = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT)
        assert result.returncode == 0, f"{path} is not ignored by git"


# --- the dataset lab's data -------------------------------------------------------------------------------------

LAB_TICKETS = ROOT / "labs" / "source" / "dataset_lab" / "tickets.jsonl"
MANIFEST = ROOT / "data" / "labs" / "dataset_lab_planted.json"
BROKEN = ("malformed_json", "wrong_roles", "empty_answer", "bad_target")


@pytest.fixture(scope="module")
def manifest():
    return json.loads(MANIFEST.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def lines():
    return LAB_TICKETS.read_text(encoding="utf-8").split("\n")[:-1]  # the file ends with a newline


def test_lab_data_regenerates_byte_identical(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "data" / "generate_lab_tickets.py"), "--out", str(tmp_path)],
                   check=True, capture_output=True)
    assert (tmp_path / LAB_TICKETS.name).read_bytes() == LAB_TICKETS.read_bytes()
    assert (tmp_path / MANIFEST.name).read_bytes() == MANIFEST.read_bytes()


def _user(line: str) -> str:
    return json.loads(line)["messages"][1]["content"]


def _sim(a: str, b: str, shingle: str) -> float:
    return data.jaccard(data.shingles(a, shingle), data.shingles(b, shingle))


def test_planted_problems_are_where_the_manifest_says(manifest, lines):
    problems = manifest["problems"]
    by_line = {p["line"]: p for p in problems}
    heldout = set(manifest["heldout_families"])
    assert len(lines) == 75 and [i for i, line in enumerate(lines, 1) if not line.strip()] == [38]
    for p in problems:
        line, kind = lines[p["line"] - 1], p["problem"]
        assert p["id"] in line, p
        if kind == "malformed_json":
            with pytest.raises(json.JSONDecodeError):
                json.loads(line)
            continue
        row = json.loads(line)
        roles = [m["role"] for m in row["messages"]]
        if kind == "wrong_roles":
            assert roles != ["system", "user", "assistant"], p
            continue
        assert roles == ["system", "user", "assistant"], p
        answer = row["messages"][2]["content"]
        if kind == "empty_answer":
            assert not answer.strip(), p
        elif kind == "bad_target":
            assert answer.strip() and data.check_target(answer), p
        elif kind == "pii":
            assert all(v["text"] in _user(line) for v in p["values"]), p
        else:  # copies of an earlier row
            original = lines[p["original"]["line"] - 1]
            assert p["original"]["line"] < p["line"] and p["original"]["id"] in original
            assert json.loads(original)["messages"][2] == row["messages"][2], "a copy keeps its original's answer"
            char5 = _sim(_user(line), _user(original), "char5")
            if kind == "exact_duplicate":
                assert data.exact_key(row) == data.exact_key(json.loads(original)), p
            elif kind == "near_duplicate":
                assert 0.8 <= char5 < 1 and row["family"] != json.loads(original)["family"], (p, char5)
            else:
                assert kind == "leak", p
                assert 0.5 <= char5 < 0.7 and _sim(_user(line), _user(original), "word3") >= 0.3, (p, char5)
                assert row["family"] in heldout and json.loads(original)["family"] not in heldout, p
    # every other line is a clean row, and the library's loader rejects exactly the broken ones
    for number, line in enumerate(lines, 1):
        if line.strip() and by_line.get(number, {}).get("problem") not in BROKEN:
            assert not data.check_target(json.loads(line)["messages"][2]["content"]), number
    broken = sorted(p["line"] for p in problems if p["problem"] in BROKEN)
    assert data.load_jsonl(LAB_TICKETS, check_target=True).bad_lines == broken
    ids = [re.search(r"TK-\d{3}", line).group() for line in lines if line.strip()]
    assert len(ids) == len(set(ids)) == 74
    assert all(value in LAB_TICKETS.read_text(encoding="utf-8") for value in manifest["look_alikes"])


def test_other_tickets_are_not_near_copies(manifest, lines):
    """Only the planted pairs look alike: any other pair would change what the lab's dedup and split should do."""
    planted = {p["line"] for p in manifest["problems"]}
    clean = [_user(line) for n, line in enumerate(lines, 1) if line.strip() and n not in planted]
    worst = max(_sim(a, b, "char5") for i, a in enumerate(clean) for b in clean[i + 1:])
    assert worst < 0.5, worst


def test_hidden_tests_agree_with_the_manifest(manifest):
    """The dataset lab's hidden tests name the planted problems: they must match the data file."""
    hidden = "\n".join(c.source for c in _source("dataset_lab").cells if "BEGIN HIDDEN TESTS" in c.source)
    for p in manifest["problems"]:
        if p["problem"] in BROKEN:
            assert f'{p["line"]}: "{p["problem"]}"' in hidden, p
        for value in p.get("values", []):
            value = value["text"].split(",")[0]  # an address is checked up to its first comma
            assert repr(value).replace("'", '"') in hidden, value
        if p["problem"] in ("exact_duplicate", "near_duplicate"):
            assert f'"{p["id"]}"' in hidden, p


# --- the fine-tune lab's note checks ----------------------------------------------------------------------------


def _cells(lab: str) -> dict[str, str]:
    return {_grade_id(c): c.source for c in _source(lab).cells if _grade_id(c)}


@pytest.fixture(scope="module")
def note_scope():
    """The fine-tune lab's parts 2 to 4 (solution, note, checks) run on hand-made answers: no model, no training."""
    from types import SimpleNamespace

    from course_lib import baselines, decide, evaluate, stats

    cells = _cells("finetune_lab")
    rows = data.load_split("heldout")[:12]
    refs = [r["messages"][-1]["content"] for r in rows]
    wrong = [json.dumps({**t, "category": "billing" if t["category"] != "billing" else "shipping"})
             for t in baselines.targets(rows)]
    answers = {"majority": baselines.majority(data.load_split("train"), rows), "tfidf": refs[:8] + wrong[8:],
               "base": [""] * 12, "tuned": wrong[:4] + refs[4:10] + ["not JSON", ""]}
    valid = [evaluate.score_answer(p, r)["json_valid"] for p, r in zip(answers["tuned"], refs)]
    scope = {"baselines": baselines, "decide": decide, "evaluate": evaluate, "stats": stats, "heldout": rows,
             "answers": answers, "STEPS": 60, "tuned_task": SimpleNamespace(metrics={"json_valid": sum(valid) / 12})}
    exec(cells["comparison_table"], scope)
    exec(cells["real_or_noise"], scope)
    exec("tables = comparison_table(answers, heldout)", scope)
    for gid in ("paired", "note", "note_helpers"):
        exec(cells[gid], scope)
    return scope


def _note_check(scope: dict, gid: str, **changed) -> str | None:
    """Run one of the note's test cells with some of the learner's variables changed: its message, or None."""
    try:
        exec(_cells("finetune_lab")[gid], {**scope, **changed})
    except AssertionError as error:
        return str(error)
    return None


def test_finetune_note_checks_pass_the_model_answer(note_scope):
    assert _note_check(note_scope, "note_visible") is None
    assert _note_check(note_scope, "note_hidden") is None
    rounded = {k: round(v, 2) for k, v in note_scope["quoted"].items()}  # typed to two decimals is close enough
    assert _note_check(note_scope, "note_hidden", quoted=rounded) is None


def test_finetune_note_checks_name_what_is_wrong(note_scope):
    note, quoted, thresholds = note_scope["note"], note_scope["quoted"], note_scope["thresholds"]
    in_note = set(note_scope["decimals"](note))
    measured = note_scope["measured_values"](note_scope["answers"], note_scope["heldout"])
    absent = next(k for k, v in measured.items() if k not in quoted and f"{abs(v):.2f}" not in in_note)
    stray = next(f"0.{n:02d}" for n in range(1, 100) if f"0.{n:02d}" not in in_note)
    unchosen = next(x for x in (0.9, 0.85, 0.8, 0.75) if f"{x:.2f}" not in in_note)
    cases = {  # cell, the learner's variables changed, what the message must name
        "a number that is neither quoted nor chosen": ("note_visible", {"note": f"{note}\nAbout {stray} of them.\n"},
                                                       stray),
        "a quoted value the note does not write": ("note_visible", {"quoted": {**quoted, absent: measured[absent]}},
                                                   absent),
        "a chosen number the note does not write": ("note_visible", {"thresholds": [*thresholds, unchosen]},
                                                    "thresholds[1]"),
        "a key no measurement has": ("note_visible", {"quoted": {**quoted, "tuned_accuracy": 0.5}}, "tuned_accuracy"),
        "a required number left out": ("note_visible", {"quoted": {k: v for k, v in quoted.items()
                                                                   if k != "base_mean"}}, "base_mean"),
        "a note the validator rejects": ("note_visible", {"note": note.split("## Decision")[0]}, "'## Decision'"),
        "a value this run did not measure": ("note_hidden", {"quoted": {**quoted, "tfidf_priority":
                                                                        quoted["tfidf_priority"] + 0.1}},
                                             "tfidf_priority"),
    }
    for case, (gid, changed, named) in cases.items():
        message = _note_check(note_scope, gid, **changed)
        assert message is not None and named in message, (case, message)
