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
    with pytest.warns(UserWarning, match=r"1 of 4 answers are empty \(rows 3\)"):
        m = evaluate.task_metrics([REF, "nope", _answer(priority="urgent"), ""], [REF] * 4)
    assert m["empty_rows"] == [3] and m["not_json_rows"] == [1]
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
    references = [r["messages"][2]["content"] for r in ROWS]
    assert zero.metrics == evaluate.task_metrics(zero.predictions, references[:2])  # scored against the targets
    nothing = {"json_valid": 0.0, "schema_valid": 0.0, "field_accuracy_mean": 0.0, "sign_off": 0.0,
               "field_accuracy": {"category": 0.0, "priority": 0.0, "needs_human": 0.0}}
    assert zero.metrics == {"n": 2, **nothing, "empty_rows": [0, 1], "not_json_rows": []}  # random weights: nothing
    few = evaluate.score_task(model, tok, ROWS[2:], examples=ROWS[:2], shots=2, max_new_tokens=8, batch_size=1,
                              progress=False)
    assert few.metrics == evaluate.task_metrics(few.predictions, references[2:])
    assert {k: v for k, v in few.metrics.items() if not k.endswith("_rows")} == {"n": 1, **nothing}
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


# Real outputs recorded in benchmarks/results (cpu_lesson.json and cpu_lesson_no_replay.json, "forgotten": the LoRA
# model's answers the old first-number rule marked wrong) and the base model's own (fp32 and bf16, 32 new tokens).
RECORDED = [
    # (output, answer, check, right): the first four were marked wrong by the first-number rule
    ("4 is a positive integer, and 4 + 4 equals 8.", "8", "number", True),
    ("A day is approximately 86,400 seconds, which is roughly 24 hours.", "24", "number", True),
    ("A triangle has three sides, which are equal in length.", "3", "number", True),
    ('"A triangle has three sides, which are straight lines. The triangle is also a right triangle, meaning it has '
     'a right angle. Happy growing!"', "3", "number", True),
    ("A hexagon is a polygon with six sides. In geometry, a hexagon is also a hexagon with opposite sides being "
     "equal.", "6", "number", True),  # base model in bf16
    ("The number twelve is a special number that can be expressed as 12 × 13 + 1.", "12", "number", True),
    ("The answer to this classic problem is 3. A triangle has three sides, which is a fundamental concept in "
     "geometry.", "3", "number", True),
    ("A kilogram is a unit of mass, and one gram is equal to 1000 milliliters.", "1000", "number", True),
    ("A minute is equivalent to 60 seconds. To convert it to a human-readable format, you would multiply 60 by 60, "
     "which", "60", "number", True),
    ("The boiling point of water is approximately 100.0 degrees Celsius.", "100", "number", True),
    ("The English alphabet consists of 26 letters, but there are also additional letters that are part of the "
     "alphabet", "26", "number", True),
    # recorded wrong answers that must stay wrong
    ('"A day is approximately 8 hours, with 24 hours in the evening. Happy growing!"', "24", "number", False),
    ('"A week is approximately 72 hours, while a month is 30 days. Happy growing!"', "7", "number", False),
    ("A kilogram is a unit of mass, and one gram is equal to 1 cubic centimeter.", "1000", "number", False),
    ("The answer to this classic question is 8. An insect has 8 legs.", "6", "number", False),
    ('"Boiling point is a measure of the temperature at which a liquid changes from a liquid to a gas. Water at 212 '
     'degrees Celsius is called', "100", "number", False),
    ("\"That's a simple answer, but it's not the one you're looking for. A number is added to another number to "
     "make it a sum, not", "8", "number", False),  # "the one" is a pronoun, not 1
    # the final answer rules: the base model in bf16 says 26, then 27 of something else (a known cost of the rule)
    ("The English alphabet consists of 26 letters, but there are 27 vowels (a, e, i, u, o, u, e,", "26", "number",
     False),
    ("The opposite of light is darkness. Light is a form of electromagnetic radiation", "dark", "contains", True),
    ("The currency of the United Kingdom is the Pound Sterling.", "pound", "contains", True),
    ("The capital of Australia is Sydney.", "Canberra", "contains", False),
    ('"Our home star is called Sol, which is located in the inner part of the solar system', "Sun", "contains",
     False),
    ("I'm sorry for any confusion, but as a chatbot, I don't have the ability to reply with the word \"OK\".", "ok",
     "exact", False),
]


@pytest.mark.parametrize("output, answer, check, expected", RECORDED)
def test_regression_rule_on_recorded_outputs(output, answer, check, expected):
    assert evaluate.check_regression_answer(output, answer, check) is expected


@pytest.mark.parametrize("output, answer, expected", [
    ("The answer is 4.", "4", True),
    ("It is 1,200 apples", 1200, True),  # thousands separators; an int answer
    ("-3.5 degrees", "-3.5", True),
    ("There are 7 days in a week, so 2 weeks have 14 days", "14", True),  # the last stated value is the answer
    ("There are 7 days in a week, so 2 weeks have 14 days", "7", False),
    ("There are 24 hours in a day, or 1440 minutes.", "24", True),  # a marked answer beats a later aside
    ("twelve", "12", True),
    ("Twenty-four.", "24", True),
    ("twenty four hours", "24", True),
    ("A century has one hundred years.", "100", True),
    ("a hundred and five", "105", True),
    ("two thousand five hundred", "2500", True),
    ("It's about 24 hours.", "24", True),
    ("4 + 4 = 8", "8", True),
    ("8 = 4 + 4", "8", True),
    ("Answer: eight", "8", True),
    ("The answer is 8, and 8 is even.", "8", True),  # the same value again is not a hedge
    ("Zero.", "0", True),
    # must stay wrong: hedges, lists, ranges, operands, negations, other numbers
    ("3 or 4", "4", False),
    ("3 or 4", "3", False),
    ("1, 2, 3, 4, 5, 6, 7, 8", "8", False),
    ("Insects have 6, 8 or 10 legs.", "8", False),
    ("between 7 and 8 days", "8", False),
    ("7-8 days", "8", False),
    ("The answer is 3, or perhaps 4.", "4", False),
    ("The answer is 4 + 4.", "4", False),  # an operand is not an answer
    ("The answer is 4 + 4.", "8", False),  # nor is an expression left unevaluated
    ("It is not 8.", "8", False),
    ("It isn't 8.", "8", False),
    ("four hundred", "4", False),
    ("hundreds of years", "100", False),
    ("86,400", "86", False),
    ("86,400", "400", False),
    ("no digits here", "4", False),
    ("", "4", False),
])
def test_number_check_reads_the_final_answer(output, answer, expected):
    assert evaluate.check_regression_answer(output, answer, "number") is expected


@pytest.mark.parametrize("output, answer, check, expected", [
    ("It's PARIS, of course", "Paris", "contains", True),
    ("Lyon", "Paris", "contains", False),
    ("Plants take in carbon\ndioxide.", "carbon dioxide", "contains", True),  # line breaks are spaces
    ("The river is juvenile.", "Nile", "contains", False),  # inside another word: not the answer
    ("In Lima's climate", "Lima", "contains", True),
    ("  Yes \n", "yes", "exact", True),
    ("OK.", "ok", "exact", True),  # a trailing full stop is not part of the answer
    ('"OK!"', "ok", "exact", True),
    ("**OK**", "ok", "exact", True),
    ("Yes, it is.", "yes", "exact", False),
    ("Okay", "ok", "exact", False),
    ("OK. Anything else?", "ok", "exact", False),
])
def test_contains_and_exact_checks(output, answer, check, expected):
    assert evaluate.check_regression_answer(output, answer, check) is expected


def test_one_output_is_right_for_one_number_only():
    from course_lib.regression_rules import find_numbers

    outputs = [o for o, _, c, _ in RECORDED if c == "number"] + ["3 or 4", "1, 2, 3, 4, 5, 6, 7, 8, 9, 10"]
    for output in outputs:
        right = {n.value for n in find_numbers(output) if evaluate.check_regression_answer(output, n.value, "number")}
        assert len(right) <= 1, (output, right)


def test_number_words_and_separators_are_read():
    from course_lib.regression_rules import find_numbers

    text = "twenty-four, 86,400, one hundred and five, a thousand, 3.5, -2 and the one you want"
    assert [n.value for n in find_numbers(text)] == [24, 86400, 105, 1000, 3.5, -2]


def test_unknown_regression_check_and_bad_answer():
    with pytest.raises(ValueError, match="contains"):
        evaluate.check_regression_answer("x", "x", "fuzzy")
    with pytest.raises(ValueError, match="not one number"):
        evaluate.check_regression_answer("8", "eight or nine", "number")


def test_the_generator_scores_with_the_same_rule():
    import importlib.util
    from pathlib import Path

    from course_lib import regression_rules

    path = Path(__file__).resolve().parent.parent / "data" / "generate_greenleaf.py"
    spec = importlib.util.spec_from_file_location("generate_greenleaf", path)
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    assert evaluate.check_regression_answer is regression_rules.check_regression_answer
    for output, answer, check, expected in RECORDED:
        assert generator.score_regression(output, answer, check) is expected


def test_score_regression_on_tiny_model(tiny_model):
    result = evaluate.score_regression(*tiny_model, REGRESSION, max_new_tokens=4)
    assert set(result) == {"accuracy", "interval", "per_skill", "items"}
    assert [i["id"] for i in result["items"]] == ["r1", "r2", "r3"]
    for item, row in zip(result["items"], REGRESSION):  # each item scored by the rule
        assert item["correct"] is evaluate.check_regression_answer(item["output"], row["answer"], row["check"])
    # random weights answer nothing right: the accuracy and its interval are exactly 0
    assert result["accuracy"] == 0.0 and result["interval"] == [0.0, 0.0]
    assert result["per_skill"] == {"arithmetic": 0.0, "capitals": 0.0, "yes_no": 0.0}


def test_score_regression_sends_a_plain_user_message(tiny_model, monkeypatch):
    from course_lib import models, stats

    seen = []
    monkeypatch.setattr(models, "generate", lambda m, t, convs, **kw: seen.extend(convs) or ["4", "paris", "no"])
    result = evaluate.score_regression(*tiny_model, REGRESSION)
    assert seen[0] == [{"role": "user", "content": "What is 2 + 2?"}]
    assert result["accuracy"] == pytest.approx(2 / 3)
    assert result["per_skill"] == {"arithmetic": 1.0, "capitals": 1.0, "yes_no": 0.0}
    assert result["interval"] == list(stats.bootstrap_ci([True, True, False]))  # over the items' right/wrong
    low, high = result["interval"]
    assert low < 2 / 3 < high


def test_score_regression_interval_on_80_items(tiny_model, monkeypatch):
    from course_lib import models, stats

    rows = [REGRESSION[0] | {"id": f"r{i}"} for i in range(80)]
    answers = ["4" if i % 4 else "5" for i in range(80)]  # 60 of 80 right
    monkeypatch.setattr(models, "generate", lambda m, t, convs, **kw: answers)
    result = evaluate.score_regression(*tiny_model, rows)
    assert result["accuracy"] == 0.75
    assert result["interval"] == list(stats.bootstrap_ci([i % 4 != 0 for i in range(80)]))
    low, high = result["interval"]
    assert high - low == pytest.approx(2 * 1.96 * (0.75 * 0.25 / 80) ** 0.5, abs=0.03)  # the normal approximation


def test_score_regression_bad_rows(tiny_model):
    with pytest.raises(ValueError, match="lacks field"):
        evaluate.score_regression(*tiny_model, [{"id": "x", "prompt": "hi"}])
    with pytest.raises(ValueError, match="is not one of"):
        evaluate.score_regression(*tiny_model, [REGRESSION[0] | {"check": "fuzzy"}])
    with pytest.raises(ValueError, match="'r1'.*not one number"):  # refused before any generation
        evaluate.score_regression(*tiny_model, [REGRESSION[0] | {"answer": "4 or 5"}])


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
