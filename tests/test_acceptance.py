"""course_lib.acceptance: the decision note's test as data (thresholds, save/load, measure, run, report)."""

from __future__ import annotations

import json

import pytest

from course_lib import acceptance, stats
from course_lib.acceptance import AcceptanceTest, Check

STRONGEST = {"category": 0.71234, "priority": 0.5, "needs_human": 0.8}


def test_greenleaf_test_thresholds_exactly():
    test = acceptance.greenleaf_test(STRONGEST, n_heldout=136)
    assert test.test_set == "the 136 held-out tickets and the regression set"
    assert [(c.metric, c.op, c.threshold) for c in test.checks] == [
        ("json_valid", ">=", 0.95), ("schema_valid", ">=", 0.95), ("sign_off", ">=", 0.90),
        ("category", ">", 0.712), ("priority", ">", 0.5), ("needs_human", ">", 0.8),
        ("mean", ">=", 0.80), ("regression_drop", "<=", 0.05)]
    assert all(c.why for c in test.checks)
    custom = acceptance.greenleaf_test(STRONGEST, 10, target_mean=0.7, max_regression_drop=0.1)
    assert {c.metric: c.threshold for c in custom.checks}["mean"] == 0.7
    assert {c.metric: c.threshold for c in custom.checks}["regression_drop"] == 0.1


def test_greenleaf_test_needs_every_field():
    with pytest.raises(ValueError, match=r"strongest lacks \['needs_human'\]: pass the best baseline accuracy"):
        acceptance.greenleaf_test({"category": 0.7, "priority": 0.5}, 136)


def test_to_markdown():
    test = AcceptanceTest("8 tickets", [Check("json_valid", ">=", 0.95, "parses"),
                                        Check("category", ">", 0.71234, "baseline")])
    assert test.to_markdown() == ("On 8 tickets, every line must hold:\n"
                                  "- json_valid >= 0.950 (parses)\n"
                                  "- category > 0.712 (baseline)")


def test_save_load_round_trip(tmp_path):
    test = acceptance.greenleaf_test(STRONGEST, 136)
    path = acceptance.save(test, tmp_path / "notes" / "acceptance.json")  # makes the folder
    assert path == tmp_path / "notes" / "acceptance.json" and path.is_file()
    assert acceptance.load(path) == test
    assert acceptance.load(str(path)) == test
    assert json.loads(path.read_text())["checks"][3] == {"metric": "category", "op": ">", "threshold": 0.712,
                                                        "why": "strongest baseline on this field"}


def test_load_a_missing_file_says_how_to_make_one(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"No saved test at .*nowhere\.json: run notebook 01 to the end"):
        acceptance.load(tmp_path / "nowhere.json")


@pytest.mark.parametrize("content", ['{"checks": []}', '{"test_set": "x", "checks": [{"metric": "mean"}]}',
                                     '["not", "a", "test"]', '{"test_set": "x", "checks": [{"bogus": 1}]}'])
def test_load_a_malformed_file_says_so(tmp_path, content):
    path = tmp_path / "acceptance.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=r"acceptance\.json is not a saved acceptance test .*acceptance\.save\(\)"):
        acceptance.load(path)


def test_load_a_check_with_an_unknown_op_raises(tmp_path):
    path = tmp_path / "acceptance.json"
    path.write_text(json.dumps({"test_set": "x", "checks": [{"metric": "mean", "op": "==", "threshold": 1,
                                                            "why": ""}]}))
    with pytest.raises(ValueError, match=r"op '==' is not one of"):
        acceptance.load(path)


@pytest.mark.parametrize("content", ['{"test_set": "x", "checks": [', "", "not json"])
def test_load_a_file_that_is_not_json_names_it(tmp_path, content):
    path = tmp_path / "acceptance.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=r"acceptance\.json is not a saved acceptance test"):
        acceptance.load(path)


def test_an_unknown_op_raises():
    with pytest.raises(ValueError, match=r"Check 'mean': op '==' is not one of \('>=', '>', '<='\)"):
        Check("mean", "==", 0.8, "typo")
    with pytest.raises(ValueError, match="op '<' is not one of"):
        Check("mean", "<", 0.8, "not allowed")


# ----------------------------------------------------------------------------------------------- measure

BASE = [1, 1, 1, 0, 1, 1, 1, 1, 0, 1, 1, 1]  # regression set before tuning: 10 of 12
TUNED = [0, 1, 0, 0, 1, 0, 1, 0, 0, 1, 0, 0]  # after: 4 of 12
METRICS = {"n": 4, "json_valid": 1.0, "schema_valid": 0.75, "sign_off": 0.5,
           "field_accuracy": {"category": 0.75, "priority": 0.5, "needs_human": 0.25}, "field_accuracy_mean": 0.5}
TABLE = {"category": {"accuracy": 0.75, "interval": [0.25, 1.0], "correct": [True, True, False, True]},
         "priority": {"accuracy": 0.5, "interval": [0.0, 1.0], "correct": [True, False, False, True]},
         "needs_human": {"accuracy": 0.25, "interval": [0.0, 0.75], "correct": [True, False, False, False]},
         "mean": {"accuracy": 0.5, "interval": [0.1, 0.9], "correct": [1.0, 1 / 3, 0.0, 2 / 3]}}


def test_measure_exact_values():
    out = acceptance.measure(METRICS, TABLE, BASE, TUNED)
    assert set(out) == {"json_valid", "schema_valid", "sign_off", "category", "priority", "needs_human", "mean",
                        "regression_drop"}
    assert out["json_valid"] == (1.0, None)
    assert out["schema_valid"] == (0.75, None)
    assert out["sign_off"] == (0.5, None)
    assert out["category"] == (0.75, (0.25, 1.0))
    assert out["needs_human"] == (0.25, (0.0, 0.75))
    assert out["mean"] == (0.5, (0.1, 0.9))
    drop, (low, high) = out["regression_drop"]
    assert drop == pytest.approx(10 / 12 - 4 / 12)  # base minus tuned: positive when tuning lost skills
    assert (drop, low, high) == stats.paired_bootstrap_diff(BASE, TUNED)
    assert (low, high) == pytest.approx((0.25, 0.75))


def test_measure_regression_drop_is_negative_when_tuning_helps():
    drop, (low, high) = acceptance.measure(METRICS, TABLE, TUNED, BASE)["regression_drop"]
    assert drop == pytest.approx(-0.5) and high < 0


def test_measure_needs_the_same_regression_items():
    with pytest.raises(ValueError, match="must score the same regression items"):
        acceptance.measure(METRICS, TABLE, BASE, TUNED[:-1])


# --------------------------------------------------------------------------------------------------- run

SMALL = AcceptanceTest("4 tickets", [Check("json_valid", ">=", 0.95, "x"), Check("category", ">", 0.7, "y"),
                                     Check("regression_drop", "<=", 0.05, "z"), Check("mean", ">=", 0.8, "w")])
MEASURED = {"json_valid": (1.0, None), "category": (0.75, (0.5, 1.0)), "regression_drop": (0.25, (0.0, 0.5)),
            "mean": (0.9, (0.85, 0.95))}


def test_run_pass_fail_and_clear():
    results = acceptance.run(SMALL, MEASURED)
    assert [r["check"] for r in results] == SMALL.checks
    assert [(r["passed"], r["clear"]) for r in results] == [(True, True), (True, False), (False, False),
                                                           (True, True)]
    assert results[1]["value"] == 0.75 and results[1]["interval"] == (0.5, 1.0)


@pytest.mark.parametrize("op, value, passed", [(">=", 0.8, True), (">", 0.8, False), ("<=", 0.8, True),
                                               (">=", 0.79, False), (">", 0.81, True), ("<=", 0.81, False)])
def test_run_each_op_at_and_around_the_threshold(op, value, passed):
    [result] = acceptance.run(AcceptanceTest("t", [Check("m", op, 0.8, "")]), {"m": (value, None)})
    assert result["passed"] is passed and result["clear"] is True


@pytest.mark.parametrize("interval, clear", [((0.81, 0.9), True), ((0.7, 0.79), True), ((0.8, 0.9), False),
                                             ((0.7, 0.8), False), ((0.7, 0.9), False)])
def test_clear_is_false_when_the_interval_reaches_the_threshold(interval, clear):
    [result] = acceptance.run(AcceptanceTest("t", [Check("m", ">=", 0.8, "")]), {"m": (0.85, interval)})
    assert result["clear"] is clear


def test_run_names_a_missing_measurement():
    with pytest.raises(KeyError, match="No measurement for 'sign_off'"):
        acceptance.run(AcceptanceTest("t", [Check("sign_off", ">=", 0.9, "")]), MEASURED)


def test_run_on_measure_output_for_the_greenleaf_test():
    results = acceptance.run(acceptance.greenleaf_test(STRONGEST, 4), acceptance.measure(METRICS, TABLE, BASE, TUNED))
    assert [r["passed"] for r in results] == [True, False, False, True, False, False, False, False]


def test_format_results_exact_text():
    text = acceptance.format_results(acceptance.run(SMALL, MEASURED))
    assert text.splitlines() == [
        "PASS  json_valid       1.000                    needs >= 0.950",
        "PASS  category         0.750 [0.500, 1.000]     needs > 0.700   (interval crosses the threshold: within "
        "noise)",
        "FAIL  regression_drop  0.250 [0.000, 0.500]     needs <= 0.050   (interval crosses the threshold: within "
        "noise)",
        "PASS  mean             0.900 [0.850, 0.950]     needs >= 0.800",
        "3 of 4 lines pass.",
    ]
    passing = acceptance.format_results(acceptance.run(AcceptanceTest("t", SMALL.checks[:1]), MEASURED))
    assert passing.splitlines()[-1] == "1 of 1 lines pass: the test passes."


def test_saved_test_path_is_per_profile(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path))
    assert acceptance.saved_test_path("fast") == tmp_path / "notes" / "01_test-fast.json"
    assert acceptance.saved_test_path("full") == tmp_path / "notes" / "01_test-full.json"


def test_note_path_is_per_profile_and_lines_in_note():
    assert acceptance.saved_note_path("fast").name == "01_decision_note-fast.md"
    assert acceptance.saved_note_path("fast").parent == acceptance.saved_test_path("fast").parent
    assert acceptance.saved_note_path("fast") != acceptance.saved_note_path("full")
    test = acceptance.AcceptanceTest("8 tickets", [acceptance.Check("category", ">", 0.5, "strongest baseline")])
    note = "## The test\n" + test.to_markdown() + "\n"
    assert acceptance.lines_in_note(test, note) == []
    other = acceptance.AcceptanceTest("8 tickets", [acceptance.Check("category", ">", 0.7, "strongest baseline")])
    assert acceptance.lines_in_note(other, note) == ["- category > 0.700 (strongest baseline)"]
