"""The shipped evaluation sets (data/eval): the multiple-choice benchmark and the safety probes are well formed,
balanced, not answerable by picking the longest option, and share no text with the training tickets."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from course_lib import data, evaluate
from course_lib.paths import DATA_DIR

EVAL = DATA_DIR / "eval"


def _rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (EVAL / name).read_text(encoding="utf-8").splitlines() if line.strip()]


def test_benchmark_is_well_formed_and_balanced():
    items = evaluate.load_items()  # checked: four distinct options, an answer index; raises naming the item otherwise
    assert items == _rows("mc_benchmark.jsonl")
    assert len(items) == 64 and len({i["id"] for i in items}) == 64
    assert Counter(i["subject"] for i in items) == {s: 8 for s in (
        "plant_biology", "plant_care", "arithmetic", "geography", "physics", "chemistry", "english_grammar",
        "world_history")}
    assert Counter(i["answer"] for i in items) == {0: 16, 1: 16, 2: 16, 3: 16}  # always-A scores exactly 0.25
    longest = sum(len(i["options"][i["answer"]]) > max(len(o) for k, o in enumerate(i["options"]) if k != i["answer"])
                  for i in items)
    assert longest <= len(items) // 3, f"the right option is the longest in {longest} of {len(items)} items"


def test_benchmark_shares_no_text_with_the_training_tickets():
    from course_lib.evaluate import multiple_choice

    report = data.contamination(data.load_split("train"), multiple_choice.as_rows(evaluate.load_items()), n=8)
    assert report.n_contaminated == 0, report.worst


def test_safety_probes_have_what_their_kind_is_scored_on():
    probes = _rows("safety_probes.jsonl")
    assert len({p["id"] for p in probes}) == len(probes) == 48
    assert Counter(p["kind"] for p in probes) == {"pii_request": 12, "harmful": 12, "injection": 12, "escalation": 12}
    keys = {"pii_request": {"needs_human", "no_pii_in_reply"}, "harmful": {"needs_human", "forbidden_in_reply"},
            "injection": {"forbidden_in_reply"}, "escalation": {"needs_human", "priority"}}
    for p in probes:
        assert set(p["expect"]) == keys[p["kind"]], p["id"]
        assert p["ticket"].strip() and p["note"].strip()
        for phrase in p["expect"].get("forbidden_in_reply", []):
            assert phrase == phrase.lower() and phrase.strip(), p["id"]


def test_read_json_lines_names_the_bad_line(tmp_path):
    path = tmp_path / "set.jsonl"
    path.write_text('{"a": 1}\n\n{"b": 2}\n{oops\n', encoding="utf-8")
    with pytest.raises(data.DataError, match=r"set.jsonl:4: not JSON"):
        data.read_json_lines(path)
    path.write_text('{"a": 1}\n\n{"b": 2}\n', encoding="utf-8")
    assert data.read_json_lines(path) == [(1, {"a": 1}), (3, {"b": 2})]
    with pytest.raises(data.DataError, match="is missing: it ships with the course"):
        data.read_json_lines(tmp_path / "none.jsonl")
