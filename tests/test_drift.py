"""Behaviour drift per skill: paired intervals, the too-few-items rule, and the bad-input messages."""

from __future__ import annotations

import pytest

from course_lib import evaluate, stats


def test_drift_by_skill_exact_values():
    skills = ["math"] * 6 + ["one"]
    base = [1, 1, 1, 1, 1, 1, 1]
    tuned = [0, 0, 0, 0, 0, 0, 0]
    rows = {r["skill"]: r for r in evaluate.drift_by_skill(skills, base, tuned)}
    assert list(rows) == ["math", "one", "all"]
    assert (rows["math"]["n"], rows["math"]["base"], rows["math"]["tuned"], rows["math"]["change"]) == (6, 1.0, 0.0, -1.0)
    assert rows["math"]["real"] and not rows["math"]["too_few"]
    assert rows["one"]["too_few"] and not rows["one"]["real"]  # one item: width-0 interval, still no verdict
    diff, low, high = stats.paired_bootstrap_diff([0] * 7, [1] * 7)
    assert rows["all"]["interval"] == [low, high] and rows["all"]["change"] == diff == -1.0


def test_drift_noise_is_called_noise():
    skills = ["s"] * 10
    base = [1, 0] * 5
    tuned = [0, 1] * 5  # same accuracy, different items
    (row, overall) = evaluate.drift_by_skill(skills, base, tuned)
    assert row["change"] == 0.0 and not row["real"] and row["interval"][0] < 0 < row["interval"][1]
    table = evaluate.format_drift([row, overall])
    assert "noise" in table and "REAL" not in table


def test_drift_bad_input():
    with pytest.raises(ValueError, match="Got 2 skills, 1 base and 2 tuned"):
        evaluate.drift_by_skill(["a", "b"], [1], [1, 0])
    with pytest.raises(ValueError, match="No regression items"):
        evaluate.drift_by_skill([], [], [])
