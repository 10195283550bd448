"""course_lib.evaluate: task metrics (edge cases), few-shot prompts, scoring on the tiny model, the plot."""

from __future__ import annotations

import json

import pytest

from course_lib import evaluate, greenleaf

REF = greenleaf.format_target("shipping", "medium", False, "Sorry for the wait, we are on it. Happy growing!")


def _answer(**changes) -> str:
    obj = json.loads(REF)
    obj.update(changes)
    return json.dumps(obj)


def _row(i: int, category: str, ticket: str) -> dict:
    target = greenleaf.format_target(category, "low", False, f"Thanks for writing ({i}). Happy growing!")
    return {"id": f"t{i}", "family": f"f{i}", "messages": greenleaf.messages_for(ticket)
            + [{"role": "assistant", "content": target}]}


ROWS = [_row(0, "shipping", "Where is my order #123?"), _row(1, "plant_health", "My fern has brown tips."),
        _row(2, "billing", "I was charged twice for one pot.")]


def test_perfect_answer_scores_one():
    m = evaluate.task_metrics([REF], [REF])
    assert m["n"] == 1
    assert m["json_valid"] == m["schema_valid"] == m["field_accuracy_mean"] == m["sign_off"] == 1.0
    assert m["field_accuracy"] == {"category": 1.0, "priority": 1.0, "needs_human": 1.0}


@pytest.mark.parametrize("prediction", ["", "   ", "I cannot help with that.", '{"category": "shipping"', "[1, 2]"])
def test_unparseable_answer_scores_zero_everywhere(prediction):
    m = evaluate.task_metrics([prediction], [REF])
    assert m["json_valid"] == m["schema_valid"] == m["field_accuracy_mean"] == m["sign_off"] == 0.0


def test_json_with_extra_text_parses_but_keeps_field_scores():
    m = evaluate.task_metrics([f"Sure! Here is the triage:\n```json\n{REF}\n```\nAnything else?"], [REF])
    assert m["json_valid"] == 1.0 and m["schema_valid"] == 1.0 and m["field_accuracy_mean"] == 1.0


def test_wrong_types_are_wrong():
    pred = _answer(needs_human="false", priority=["medium"])
    m = evaluate.task_metrics([pred], [REF])
    assert m["json_valid"] == 1.0 and m["schema_valid"] == 0.0
    assert m["field_accuracy"] == {"category": 1.0, "priority": 0.0, "needs_human": 0.0}


def test_one_is_not_true():
    ref = greenleaf.format_target("billing", "high", True, "We will fix it. Happy growing!")
    obj = json.loads(ref)
    obj["needs_human"] = 1  # Python says 1 == True; the schema and the metric do not
    m = evaluate.task_metrics([json.dumps(obj)], [ref])
    assert m["field_accuracy"]["needs_human"] == 0.0 and m["schema_valid"] == 0.0


def test_unknown_category_and_extra_key_fail_schema():
    m = evaluate.task_metrics([_answer(category="plants"), _answer(mood="happy")], [REF, REF])
    assert m["json_valid"] == 1.0 and m["schema_valid"] == 0.0
    assert m["field_accuracy"]["category"] == 0.5


def test_missing_field_and_sign_off():
    obj = json.loads(REF)
    del obj["priority"]
    obj["reply"] = "Sorry for the wait."
    m = evaluate.task_metrics([json.dumps(obj)], [REF])
    assert m["schema_valid"] == 0.0 and m["field_accuracy"]["priority"] == 0.0 and m["sign_off"] == 0.0
    assert m["field_accuracy"]["category"] == 1.0


def test_fractions_average_over_answers():
    m = evaluate.task_metrics([REF, "nope", _answer(priority="urgent"), ""], [REF] * 4)
    assert m["n"] == 4 and m["json_valid"] == 0.5 and m["field_accuracy"]["priority"] == 0.25
    assert m["field_accuracy_mean"] == pytest.approx((0.5 + 0.25 + 0.5) / 3)


def test_bad_inputs():
    with pytest.raises(ValueError, match="one answer per reference"):
        evaluate.task_metrics(["a", "b"], [REF])
    with pytest.raises(ValueError, match="No predictions"):
        evaluate.task_metrics([], [])
    with pytest.raises(ValueError, match="not triage JSON"):
        evaluate.task_metrics([REF], ["not json"])


def test_few_shot_messages_shape():
    zero = evaluate.few_shot_messages("Help!", ROWS, 0)
    assert zero == greenleaf.messages_for("Help!")
    three = evaluate.few_shot_messages("Help!", ROWS, 3)
    assert [m["role"] for m in three] == ["system"] + ["user", "assistant"] * 3 + ["user"]
    assert three[1]["content"] == ROWS[0]["messages"][1]["content"]
    assert three[2]["content"] == ROWS[0]["messages"][2]["content"]
    assert three[-1] == {"role": "user", "content": "Help!"}
    with pytest.raises(ValueError, match="only 3 given"):
        evaluate.few_shot_messages("Help!", ROWS, 4)
    with pytest.raises(ValueError, match="negative"):
        evaluate.few_shot_messages("Help!", ROWS, -1)
    with pytest.raises(ValueError, match="no 'assistant' message"):
        evaluate.few_shot_messages("Help!", [{"id": "x", "messages": [{"role": "user", "content": "hi"}]}], 1)


def test_pick_examples_spreads_categories_and_avoids_placeholders():
    redacted = _row(3, "account", "Please delete my data. I am <PERSON>, <EMAIL>.")
    rows = [redacted, ROWS[0], ROWS[0] | {"id": "dup"}, ROWS[1], ROWS[2]]
    picked = evaluate.pick_examples(rows, 3)
    assert {json.loads(r["messages"][2]["content"])["category"] for r in picked} == {"shipping", "plant_health",
                                                                                       "billing"}
    assert evaluate.pick_examples(rows, 3) == picked  # seeded: the same every time
    assert evaluate.pick_examples(rows, 5)[-1]["id"] == "t3"  # placeholder rows come last
    with pytest.raises(ValueError, match="only 5 rows"):
        evaluate.pick_examples(rows, 6)


def test_score_task_on_tiny_model(tiny_model):
    model, tok = tiny_model
    zero = evaluate.score_task(model, tok, ROWS[:2], max_new_tokens=8, progress=False)
    assert len(zero.predictions) == 2 and zero.ids == ["t0", "t1"]
    assert zero.metrics["n"] == 2 and 0.0 <= zero.metrics["json_valid"] <= 1.0
    few = evaluate.score_task(model, tok, ROWS[2:], examples=ROWS[:2], shots=2, max_new_tokens=8, batch_size=1,
                              progress=False)
    assert few.metrics["n"] == 1
    with pytest.raises(ValueError, match="needs example rows"):
        evaluate.score_task(model, tok, ROWS, shots=3)


def test_score_task_keeps_row_order(tiny_model, monkeypatch):
    from course_lib import models

    # echo each ticket back, so the order of answers is visible
    monkeypatch.setattr(models, "generate", lambda m, t, convs, **kw: [c[-1]["content"] for c in convs])
    rows = [_row(0, "shipping", "a much longer ticket than the others"), _row(1, "billing", "short"),
            _row(2, "account", "medium one")]
    score = evaluate.score_task(*tiny_model, rows, progress=False)
    assert score.predictions == ["a much longer ticket than the others", "short", "medium one"]


REGRESSION = [
    {"id": "r1", "skill": "arithmetic", "prompt": "What is 2 + 2?", "answer": "4", "check": "number"},
    {"id": "r2", "skill": "capitals", "prompt": "Capital of France?", "answer": "Paris", "check": "contains"},
    {"id": "r3", "skill": "yes_no", "prompt": "Is water wet? Answer yes or no.", "answer": "yes", "check": "exact"},
]


@pytest.mark.parametrize("output, answer, check, expected", [
    ("The answer is 4.", "4", "number", True),
    ("It is 1,200 apples", 1200, "number", True),
    ("-3.5 degrees", "-3.5", "number", True),
    ("3 or 4", "4", "number", False),  # the first number counts
    ("no digits here", "4", "number", False),
    ("It's PARIS, of course", "Paris", "contains", True),
    ("Lyon", "Paris", "contains", False),
    ("  Yes \n", "yes", "exact", True),
    ("Yes, it is.", "yes", "exact", False),
])
def test_regression_checks(output, answer, check, expected):
    assert evaluate.check_regression_answer(output, answer, check) is expected


def test_unknown_regression_check():
    with pytest.raises(ValueError, match="contains"):
        evaluate.check_regression_answer("x", "x", "fuzzy")


def test_score_regression_on_tiny_model(tiny_model):
    result = evaluate.score_regression(*tiny_model, REGRESSION, max_new_tokens=4)
    assert set(result) == {"accuracy", "per_skill", "items"}
    assert set(result["per_skill"]) == {"arithmetic", "capitals", "yes_no"}
    assert [i["id"] for i in result["items"]] == ["r1", "r2", "r3"]
    assert 0.0 <= result["accuracy"] <= 1.0


def test_score_regression_sends_a_plain_user_message(tiny_model, monkeypatch):
    from course_lib import models

    seen = []
    monkeypatch.setattr(models, "generate", lambda m, t, convs, **kw: seen.extend(convs) or ["4", "paris", "no"])
    result = evaluate.score_regression(*tiny_model, REGRESSION)
    assert seen[0] == [{"role": "user", "content": "What is 2 + 2?"}]
    assert result["accuracy"] == pytest.approx(2 / 3)
    assert result["per_skill"] == {"arithmetic": 1.0, "capitals": 1.0, "yes_no": 0.0}


def test_score_regression_bad_rows(tiny_model):
    with pytest.raises(ValueError, match="lacks field"):
        evaluate.score_regression(*tiny_model, [{"id": "x", "prompt": "hi"}])
    with pytest.raises(ValueError, match="is not one of"):
        evaluate.score_regression(*tiny_model, [REGRESSION[0] | {"check": "fuzzy"}])


def test_plot_task_scores():
    from matplotlib.figure import Figure

    m0 = evaluate.task_metrics(["nope", REF], [REF, REF])
    m3 = evaluate.task_metrics([REF, REF], [REF, REF])
    fig = evaluate.plot_task_scores({"zero-shot": m0, "3-shot": m3})
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert len(ax.patches) == 2 * len(evaluate.PLOT_METRICS)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["zero-shot", "3-shot"]
    with pytest.raises(ValueError, match="Nothing to plot"):
        evaluate.plot_task_scores({})


def test_plot_regression():
    base = {"accuracy": 0.75, "per_skill": {"arithmetic": 1.0, "capital": 0.5}}
    tuned = {"accuracy": 0.5, "per_skill": {"arithmetic": 0.5, "capital": 0.5, "spelling": 0.0}}
    ax = evaluate.plot_regression({"base": base, "LoRA": tuned}).axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["arithmetic", "capital", "spelling"]
    widths = [p.get_width() for p in ax.patches]
    assert widths == [1.0, 0.5, 0.0, 0.5, 0.5, 0.0]  # a skill a run lacks shows as 0, not as a missing bar
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["base (overall 0.75)", "LoRA (overall 0.50)"]
    with pytest.raises(ValueError, match="Nothing to plot"):
        evaluate.plot_regression({})
