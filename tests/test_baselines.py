"""course_lib.baselines: majority class, TF-IDF + logistic regression, per-field tables and confusion matrices,
on small hand-made chat rows."""

from __future__ import annotations

import json

import pytest
from matplotlib.figure import Figure

from course_lib import baselines, greenleaf, stats

REPLY = f"Thanks for writing to us. {greenleaf.SIGN_OFF}"


def _row(i: int, ticket: str, category: str, priority: str, needs_human: bool, family: str | None = None) -> dict:
    target = greenleaf.format_target(category, priority, needs_human, REPLY)
    return {"id": f"r{i}", "family": family or f"f{i}",
            "messages": greenleaf.messages_for(ticket) + [{"role": "assistant", "content": target}]}


def _answer(category, priority, needs_human) -> str:
    return json.dumps({"category": category, "priority": priority, "needs_human": needs_human, "reply": REPLY})


# ------------------------------------------------------------------------------------------------ majority


def test_majority_picks_the_commonest_label_of_each_field():
    labels = [("billing", "high", True), ("shipping", "high", True), ("billing", "low", False),
              ("billing", "low", False), ("shipping", "medium", True)]
    train = [_row(i, f"ticket {i}", *lab) for i, lab in enumerate(labels)]
    answers = baselines.majority(train, train[:3])
    assert len(answers) == 3 and len(set(answers)) == 1
    # priority: "high" and "low" tie at 2; "high" is seen first, but the tie goes to the first in label order (low)
    assert json.loads(answers[0]) == {"category": "billing", "priority": "low", "needs_human": True}


def test_majority_ties_go_to_the_first_label_in_label_order():
    # every field tied; the data list the later labels first, so the rule (label order), not data order, decides
    labels = [("account", "urgent", True), ("plant_health", "medium", False)]
    answer = json.loads(baselines.majority([_row(i, "t", *lab) for i, lab in enumerate(labels)], [{}])[0])
    assert answer == {"category": "plant_health", "priority": "medium", "needs_human": False}


def test_majority_needs_training_rows():
    with pytest.raises(ValueError, match="needs training rows"):
        baselines.majority([], [_row(0, "t", "billing", "low", False)])


def test_as_answers_writes_json_that_score_answer_reads():
    import numpy as np

    out = baselines.as_answers([{"category": np.str_("billing"), "priority": "low", "needs_human": np.bool_(True)},
                                {"category": "account", "priority": "urgent", "needs_human": 0}])
    assert out == ['{"category": "billing", "priority": "low", "needs_human": true}',
                   '{"category": "account", "priority": "urgent", "needs_human": false}']


# --------------------------------------------------------------------------------------------------- TF-IDF

REFUND = ["I want a refund for the pot I sent back", "Please refund my money, the planter was not what I ordered",
          "Refund request: I returned the soil bag last week", "How do I get a refund for my cactus order",
          "Still waiting for my refund after the return", "I need a refund, I sent the fern back",
          "Can you refund the lamp I returned", "Where is my refund for order 1234",
          "Refund please, I do not want the orchid", "I returned everything, please refund me"]
PLANT = ["My fern has yellow leaves, how often should I water it", "Brown spots on my monstera leaves",
         "My basil is wilting in the sun", "Tiny bugs on the leaves of my ficus",
         "How much light does my snake plant need", "The leaves of my orchid are drooping",
         "Should I repot my pothos, the roots are showing", "White fuzz on the soil of my succulent",
         "My calathea leaves are curling", "Overwatered my aloe, the leaves are soft"]
SHIPPING = ["Where is my order, the tracking shows no update", "My package has not arrived yet",
            "Tracking number says delivered but nothing came", "When will my parcel ship",
            "The delivery is late by a week", "Can I change the delivery address of my order",
            "My order is stuck in transit", "The courier lost my package",
            "How long does shipping take to Leeds", "No tracking email for my shipment"]
TRAIN = ([_row(i, t, "returns_refunds", "high", True) for i, t in enumerate(REFUND)]
         + [_row(10 + i, t, "plant_health", "low", False) for i, t in enumerate(PLANT)]
         + [_row(20 + i, t, "shipping", "medium", False) for i, t in enumerate(SHIPPING)])
HELD_OUT = [_row(100, "Please refund my money for the broken pot", "returns_refunds", "high", True),
            _row(101, "The leaves on my fern are turning yellow", "plant_health", "low", False),
            _row(102, "My package tracking has not updated, where is my order", "shipping", "medium", False)]


def test_tfidf_predicts_the_obvious_held_out_cases():
    answers = baselines.tfidf(TRAIN, HELD_OUT)
    assert [json.loads(a) for a in answers] == [
        {"category": "returns_refunds", "priority": "high", "needs_human": True},
        {"category": "plant_health", "priority": "low", "needs_human": False},
        {"category": "shipping", "priority": "medium", "needs_human": False}]
    table = baselines.field_table(answers, HELD_OUT)
    assert all(table[f]["accuracy"] == 1.0 for f in (*baselines.FIELDS, "mean"))


def test_fit_tfidf_uses_tuned_c_unless_overridden():
    fitted = baselines.fit_tfidf(TRAIN, tune=False)
    assert set(fitted) == set(baselines.FIELDS)
    assert {f: fitted[f][-1].C for f in baselines.FIELDS} == baselines.TUNED_C
    override = {"category": 0.5, "priority": 2.0, "needs_human": 7.0}
    fitted = baselines.fit_tfidf(TRAIN, C=dict(override))
    assert {f: fitted[f][-1].C for f in baselines.FIELDS} == override
    assert baselines.TUNED_C == {"category": 10.0, "priority": 30.0, "needs_human": 30.0}  # not changed in place
    assert fitted["needs_human"].predict(["refund my order please"]).tolist() == [True]


def test_fit_tfidf_refuses_a_field_with_one_label():
    rows = [_row(i, t, "billing" if i % 2 else "account", "low", False) for i, t in enumerate(REFUND)]
    with pytest.raises(ValueError, match=r"Every training row has the same 'priority' \('low'\)"):
        baselines.fit_tfidf(rows)


# ---------------------------------------------------------------------------------------------- field_table

ROWS = [_row(0, "a", "billing", "low", False), _row(1, "b", "shipping", "high", True),
        _row(2, "c", "account", "medium", False), _row(3, "d", "billing", "urgent", True)]
PREDICTIONS = [_answer("billing", "low", False),  # all right
               _answer("shipping", "low", "true"),  # category right; priority wrong; needs_human a string: wrong
               "I think this is about an account.",  # not JSON: wrong on every field
               'Sure! {"category": "billing", "priority": "urgent", "needs_human": false}']  # 2 of 3, text around


def test_field_table_exact_accuracies_correct_lists_and_intervals():
    table = baselines.field_table(PREDICTIONS, ROWS)
    assert list(table) == ["category", "priority", "needs_human", "mean"]
    assert table["category"]["correct"] == [True, True, False, True]
    assert table["priority"]["correct"] == [True, False, False, True]
    assert table["needs_human"]["correct"] == [True, False, False, False]
    assert table["mean"]["correct"] == pytest.approx([1.0, 1 / 3, 0.0, 2 / 3])
    assert table["category"]["accuracy"] == 0.75
    assert table["priority"]["accuracy"] == 0.5
    assert table["needs_human"]["accuracy"] == 0.25
    assert table["mean"]["accuracy"] == pytest.approx(0.5)
    for f in table:
        assert table[f]["interval"] == list(stats.bootstrap_ci(table[f]["correct"]))
        low, high = table[f]["interval"]
        assert low <= table[f]["accuracy"] <= high


def test_an_unparseable_answer_is_wrong_on_every_field():
    table = baselines.field_table(["", "not json at all", "{broken", None], ROWS)
    for f in baselines.FIELDS:
        assert table[f]["correct"] == [False] * 4 and table[f]["accuracy"] == 0.0
    assert table["mean"]["interval"] == [0.0, 0.0]


def test_field_table_needs_one_answer_per_row():
    with pytest.raises(ValueError, match="3 predictions for 4 rows: give one answer per row"):
        baselines.field_table(PREDICTIONS[:3], ROWS)


def test_compare_and_format_table():
    tables = baselines.compare({"majority": baselines.majority(TRAIN, ROWS), "ours": PREDICTIONS}, ROWS)
    assert list(tables) == ["majority", "ours"]
    text = baselines.format_table(tables)
    lines = text.splitlines()
    assert len(lines) == 3 and lines[2].startswith("ours")
    assert stats.format_score(0.75, tables["ours"]["category"]["interval"]) in lines[2]
    with pytest.raises(ValueError, match="Nothing to compare"):
        baselines.compare({}, ROWS)


# ------------------------------------------------------------------------------------------------ confusion


def test_confusion_exact_matrix_with_the_invalid_column():
    labels, matrix = baselines.confusion(PREDICTIONS, ROWS, "needs_human")
    assert labels == [False, True, "(invalid)"]
    # truth False: row 0 answered false, row 2 not JSON; truth True: row 1 answered "true" (a string), row 3 false
    assert matrix == [[1, 0, 1], [1, 0, 1]]
    labels, matrix = baselines.confusion(PREDICTIONS, ROWS, "category")
    assert labels == [*greenleaf.CATEGORIES, "(invalid)"]
    expected = [[0] * 8 for _ in range(7)]
    billing, shipping, account = (greenleaf.CATEGORIES.index(c) for c in ("billing", "shipping", "account"))
    expected[billing][billing] = 2
    expected[shipping][shipping] = 1
    expected[account][7] = 1
    assert matrix == expected
    labels, matrix = baselines.confusion(PREDICTIONS, ROWS, "priority")
    assert labels == ["low", "medium", "high", "urgent", "(invalid)"]
    assert matrix == [[1, 0, 0, 0, 0], [0, 0, 0, 0, 1], [1, 0, 0, 0, 0], [0, 0, 0, 1, 0]]
    assert sum(map(sum, matrix)) == len(ROWS)


def test_confusion_an_unknown_label_or_wrong_type_is_invalid():
    odd = [_answer("plants", "low", 0), _answer("shipping", "HIGH", 1), None, _answer("billing", "urgent", True)]
    _, matrix = baselines.confusion(odd, ROWS, "needs_human")
    assert matrix == [[0, 0, 2], [0, 1, 1]]  # 0 and 1 are not booleans
    _, matrix = baselines.confusion(odd, ROWS, "priority")
    assert [row[-1] for row in matrix] == [0, 1, 1, 0]  # "HIGH" and the missing answer


def test_confusion_refuses_an_unknown_field():
    with pytest.raises(ValueError, match=r"field='reply': use one of \('category', 'priority', 'needs_human'\)"):
        baselines.confusion(PREDICTIONS, ROWS, "reply")


def test_confusion_refuses_mismatched_lengths():
    with pytest.raises(ValueError, match="3 predictions for 4 rows"):
        baselines.confusion(PREDICTIONS[:3], ROWS, "category")


# -------------------------------------------------------------------------------------------------- plots


def test_plot_confusions_and_plot_comparison_return_figures():
    fig = baselines.plot_confusions(PREDICTIONS, ROWS, title="hand-made")
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 3
    assert [ax.get_title() for ax in fig.axes] == list(baselines.FIELDS)
    assert fig._suptitle.get_text() == "hand-made"
    tables = baselines.compare({"majority": baselines.majority(TRAIN, ROWS), "ours": PREDICTIONS}, ROWS)
    fig = baselines.plot_comparison(tables)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 1
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["majority", "ours"]


# ---------------------------------------------------------------------------------------------- bad input


def test_rows_without_an_assistant_message_are_named():
    rows = [_row(0, "a", "billing", "low", False), {"id": "lost", "messages": greenleaf.messages_for("b")}]
    with pytest.raises(ValueError, match=r"Row 1 \(id 'lost'\) has no 'assistant' message"):
        baselines.majority(rows, rows)
    with pytest.raises(ValueError, match=r"Row 1 \(id 'lost'\) has no 'assistant' message"):
        baselines.field_table(["{}", "{}"], rows)
    with pytest.raises(ValueError, match=r"Row 0 \(id 'r7'\) has no 'user' message"):
        baselines.tfidf(TRAIN, [{"id": "r7", "messages": [{"role": "assistant", "content": "{}"}]}])


@pytest.mark.parametrize("content", ["Happy to help! Happy growing!", '{"category": "billing", "priority": "low"}'])
def test_a_target_that_is_not_triage_json_is_named(content):
    rows = [_row(0, "a", "billing", "low", False), _row(1, "b", "shipping", "high", True)]
    rows[1]["messages"][-1]["content"] = content
    with pytest.raises(ValueError, match=r"Row 1 \(id 'r1'\): the assistant message is not triage JSON"):
        baselines.majority(rows, rows)
    with pytest.raises(ValueError, match=r"Row 1 \(id 'r1'\): the assistant message is not triage JSON"):
        baselines.confusion(["{}", "{}"], rows, "category")


@pytest.mark.parametrize("content", ["Happy to help! Happy growing!", '{"category": "billing", "priority": "low"}'])
def test_field_table_names_the_row_whose_target_is_not_triage_json(content):
    rows = [_row(0, "a", "billing", "low", False), _row(1, "b", "shipping", "high", True)]
    rows[1]["messages"][-1]["content"] = content
    with pytest.raises(ValueError, match=r"Row 1 \(id 'r1'\): the assistant message is not triage JSON"):
        baselines.field_table(["{}", "{}"], rows)


def test_nearest_answers_copies_the_most_similar_training_answer():
    train = [_row(0, "my fern leaves are brown and crispy", "plant_health", "low", False),
             _row(1, "parcel tracking says delivered but nothing arrived", "shipping", "medium", True),
             _row(2, "charged twice for one order", "billing", "high", True)]
    rows = [_row(9, "the tracking says delivered, parcel never arrived", "shipping", "low", False),
            _row(8, "why are the fern leaves brown", "plant_health", "low", False)]
    answers = baselines.nearest_answers(train, rows)
    assert answers == [train[1]["messages"][-1]["content"], train[0]["messages"][-1]["content"]]
    with pytest.raises(ValueError, match="needs training rows"):
        baselines.nearest_answers([], rows)
