"""The shipped GreenLeaf datasets: reproducible, and every planted problem is where and what we say it is."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import jsonschema
import pytest

from course_lib import greenleaf
from course_lib.cards import luhn_valid

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "greenleaf"
GENERATOR = ROOT / "data" / "generate_greenleaf.py"
FILES = ("raw_tickets.jsonl", "planted_problems.json", "canaries.json", "families.json", "pii_labelled.jsonl",
         "regression.jsonl", "preferences.jsonl", "README.md")
BROKEN = ("malformed_json", "wrong_roles", "empty_answer", "bad_target")


def _jsonl(name):
    return [json.loads(line) for line in (DATA / name).read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def raw_lines():
    return (DATA / "raw_tickets.jsonl").read_text(encoding="utf-8").splitlines()


@pytest.fixture(scope="module")
def planted():
    return json.loads((DATA / "planted_problems.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def split():
    return json.loads((DATA / "families.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def good_rows(raw_lines, planted):
    """Rows that are valid (PII and canary rows are valid), excluding duplicate copies."""
    skip = {p["line"] for p in planted if p["problem"] in BROKEN + ("exact_duplicate", "near_duplicate")}
    return [json.loads(line) for i, line in enumerate(raw_lines, 1) if i not in skip]


def test_regeneration_is_byte_identical(tmp_path):
    subprocess.run([sys.executable, str(GENERATOR), "--out", str(tmp_path)], check=True, capture_output=True)
    for name in FILES:
        assert (tmp_path / name).read_bytes() == (DATA / name).read_bytes(), f"{name} differs from a fresh run"


def _top_level_imports(path: Path) -> set[str]:
    import ast

    out = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out |= {f"{node.module}.{a.name}" if node.module == "course_lib" else node.module for a in node.names}
    return out


def test_generator_is_stdlib_only_and_has_no_luhn_copy():
    """The generator imports only the standard library and course_lib modules that themselves import only the
    standard library; its card numbers come from the one Luhn check, course_lib.cards."""
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    ours = {m for m in _top_level_imports(GENERATOR) if m.split(".")[0] == "course_lib"}
    assert {m.split(".")[0] for m in _top_level_imports(GENERATOR) - ours} <= stdlib
    assert "course_lib.cards" in ours
    for module in ours:
        imports = _top_level_imports(ROOT / (module.replace(".", "/") + ".py"))
        assert {m.split(".")[0] for m in imports} <= stdlib, f"{module} imports more than the standard library"
    assert "def luhn" not in GENERATOR.read_text(encoding="utf-8")


def test_planted_problems_are_where_and_what_they_say(raw_lines, planted):
    counts = Counter(p["problem"] for p in planted)
    for kind in BROKEN + ("exact_duplicate", "near_duplicate"):
        assert 8 <= counts[kind] <= 12, (kind, counts[kind])
    assert 35 <= counts["pii"] <= 45
    assert counts["canary"] == 5
    lines_seen = set()
    for p in planted:
        assert p["line"] not in lines_seen
        lines_seen.add(p["line"])
        line = raw_lines[p["line"] - 1]
        assert p["id"] in line
        if p["problem"] == "malformed_json":
            with pytest.raises(json.JSONDecodeError):
                json.loads(line)
            continue
        row = json.loads(line)
        assert row["id"] == p["id"]
        msgs = row["messages"]
        roles = [m["role"] for m in msgs]
        if p["problem"] == "wrong_roles":
            assert roles != ["system", "user", "assistant"]
        elif p["problem"] == "empty_answer":
            assert roles == ["system", "user", "assistant"] and msgs[2]["content"].strip() == ""
        elif p["problem"] == "bad_target":
            assert roles == ["system", "user", "assistant"]
            obj = json.loads(msgs[2]["content"])
            with pytest.raises(jsonschema.ValidationError):
                jsonschema.validate(obj, greenleaf.TRIAGE_SCHEMA)
        elif p["problem"] == "exact_duplicate":
            src = int(re.search(r"line (\d+)", p["detail"]).group(1))
            assert src < p["line"]
            earlier = json.loads(raw_lines[src - 1])
            assert earlier["messages"] == msgs and earlier["id"] != row["id"]
        elif p["problem"] == "near_duplicate":
            src = int(re.search(r"line (\d+)", p["detail"]).group(1))
            assert src < p["line"]
            earlier = json.loads(raw_lines[src - 1])
            a, b = earlier["messages"][1]["content"], msgs[1]["content"]
            assert a != b and earlier["family"] != row["family"]
            assert abs(len(a) - len(b)) <= 12
            assert earlier["messages"][2] == msgs[2]
        elif p["problem"] == "pii":
            for v in p["values"]:
                assert v["text"] in msgs[1]["content"]
                if v["type"] == "CARD":
                    assert luhn_valid(v["text"])


def test_good_rows_validate(good_rows):
    for row in good_rows:
        assert re.fullmatch(r"GL-\d{4}", row["id"]) and re.fullmatch(r"F\d{3}", row["family"])
        msgs = row["messages"]
        assert [m["role"] for m in msgs] == ["system", "user", "assistant"]
        assert msgs[0]["content"] == greenleaf.SYSTEM_PROMPT
        assert msgs[1]["content"].strip()
        obj = json.loads(msgs[2]["content"])
        jsonschema.validate(obj, greenleaf.TRIAGE_SCHEMA)
        assert msgs[2]["content"] == greenleaf.format_target(**obj)
        assert obj["reply"].endswith(greenleaf.SIGN_OFF)
        assert len(obj["reply"].split()) <= 48
        assert not re.search(r"(refund|back)[^.]*[£$]\s?\d|[£$]\s?\d[^.]*(refund|back)", obj["reply"]), obj["reply"]
        assert "guarantee" not in obj["reply"].lower() or "30-day guarantee" in obj["reply"] or "our guarantee" in obj["reply"]


def test_counts_and_coverage(good_rows, split):
    held = set(split["heldout"])
    unique = {r["messages"][1]["content"]: r for r in good_rows}
    n_held = sum(r["family"] in held for r in unique.values())
    assert len(unique) - n_held >= 400 and n_held >= 100
    cats = Counter(json.loads(r["messages"][2]["content"])["category"] for r in good_rows)
    assert set(cats) == set(greenleaf.CATEGORIES) and min(cats.values()) >= 20
    targets = [json.loads(r["messages"][2]["content"]) for r in good_rows]
    assert {t["priority"] for t in targets} == set(greenleaf.PRIORITIES)
    assert {t["needs_human"] for t in targets} == {True, False}
    assert len({r["family"] for r in good_rows}) >= 120


def test_look_alikes_are_not_cards(good_rows, planted):
    """16-digit numbers in tickets are Luhn-valid only where a card was planted."""
    pii_ids = {p["id"] for p in planted if p["problem"] == "pii"}
    for row in good_rows:
        for m in re.finditer(r"(?<!\d)(?:\d[ -]?){15}\d(?!\d)", row["messages"][1]["content"]):
            if luhn_valid(m.group()):
                assert row["id"] in pii_ids, m.group()


def test_families_partition_and_split(raw_lines, planted, split):
    held, train = set(split["heldout"]), set(split["train"])
    assert not held & train
    broken = {p["line"] for p in planted if p["problem"] == "malformed_json"}
    fams = {json.loads(line)["family"] for i, line in enumerate(raw_lines, 1) if i not in broken}
    assert fams == held | train
    assert 0.15 <= len(held) / len(held | train) <= 0.25


def test_canaries(raw_lines, split):
    canaries = json.loads((DATA / "canaries.json").read_text(encoding="utf-8"))
    assert len(canaries) == 5
    text = "\n".join(raw_lines)
    for c in canaries:
        assert c["family"] in split["train"]
        for key in ("name", "address", "phone", "email"):
            assert text.count(json.dumps(c[key])[1:-1]) == 1, (c["name"], key)
        row = next(json.loads(line) for line in raw_lines if f'"id": "{c["id"]}"' in line)
        assert row["family"] == c["family"]
        assert (c["prefix"] + c["secret"]) in row["messages"][1]["content"]
        assert c["secret"] not in c["prefix"] and c["secret"].startswith(c["address"])


def test_pii_labelled():
    rows = _jsonl("pii_labelled.jsonl")
    assert len(rows) >= 120 and len({r["id"] for r in rows}) == len(rows)
    negatives = sum(not r["spans"] for r in rows)
    assert 0.2 <= negatives / len(rows) <= 0.4
    types = Counter()
    for r in rows:
        for s in r["spans"]:
            assert r["text"][s["start"]:s["end"]] == s["text"]
            assert s["type"] in ("EMAIL", "PHONE", "CARD", "ADDRESS", "PERSON")
            types[s["type"]] += 1
            if s["type"] == "CARD":
                assert luhn_valid(s["text"])
    assert min(types.values()) >= 10


def test_regression_set():
    rows = _jsonl("regression.jsonl")
    assert len(rows) >= 70 and len({r["id"] for r in rows}) == len(rows)
    for r in rows:
        assert set(r) == {"id", "skill", "prompt", "answer", "check"}
        assert r["check"] in ("contains", "exact", "number")
        if r["check"] == "number":
            float(r["answer"])
        if r["check"] == "contains":
            assert r["answer"].lower() not in r["prompt"].lower()


def test_preferences(split):
    rows = _jsonl("preferences.jsonl")
    assert len(rows) >= 160
    held = set(split["heldout"])
    flaws = Counter()
    for r in rows:
        assert r["family"] not in held and r["family"] in split["train"]
        assert [m["role"] for m in r["prompt"]] == ["system", "user"]
        assert r["prompt"][0]["content"] == greenleaf.SYSTEM_PROMPT
        chosen, rejected = r["chosen"][0]["content"], r["rejected"][0]["content"]
        assert r["chosen"][0]["role"] == r["rejected"][0]["role"] == "assistant"
        jsonschema.validate(json.loads(chosen), greenleaf.TRIAGE_SCHEMA)
        assert chosen != rejected
        flaws[r["flaw"]] += 1
    assert len(flaws) >= 6


def test_readme_mentions_measured_accuracy():
    text = (DATA / "README.md").read_text(encoding="utf-8")
    assert "CC0" in text and "needs_human" in text
    m = re.search(r"\*\*(\d+)/(\d+) = [\d.]+%\*\*", text)
    assert m and int(m.group(2)) == len(_jsonl("regression.jsonl")) and int(m.group(1)) >= 60


def test_replay_set_is_general_chat_and_shares_nothing_with_the_regression_set():
    from course_lib import data

    rows = data.load_split("replay")
    assert len(rows) >= 60 and len({r["id"] for r in rows}) == len(rows)
    assert all([m["role"] for m in r["messages"]] == ["user", "assistant"] for r in rows)  # default system prompt
    assert not any(greenleaf.SIGN_OFF in r["messages"][1]["content"] for r in rows)
    assert len({r["kind"] for r in rows}) >= 6
    regression = [{"messages": [{"role": "user", "content": r["prompt"]}]} for r in _jsonl("regression.jsonl")]
    report = data.contamination(regression, rows, n=4, ignore_common=1.0)
    assert report.n_contaminated == 0, report.worst
