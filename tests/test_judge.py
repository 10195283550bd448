"""course_lib.evaluate.judge: verdicts read off next-token probabilities, written verdicts parsed or refused, and
the judge's limits (labels, position, length, human agreement) as exact numbers on hand-built verdicts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from course_lib import greenleaf, stats
from course_lib.evaluate import judge

TICKET = "My monstera has yellow leaves since I moved it. What should I do?"
GOOD = "Yellow leaves after a move are usually stress from new light. Keep it out of direct sun. Happy growing!"
PAIRS = [
    {"id": "p1", "ticket": TICKET, "a": GOOD, "b": "Please check your tracking link. Happy growing!"},
    {"id": "p2", "ticket": "Where is my order GL-48213?", "a": "It left our depot today. Happy growing!",
     "b": "It left our depot today and should reach you within three working days, weather allowing. Happy growing!"},
    {"id": "p3", "ticket": "Hi", "a": "Hello! How can we help? Happy growing!", "b": "Hi there."},
]


def _v(*verdicts: str, prefix: str = "p") -> list[dict]:
    return [{"id": f"{prefix}{k}", "verdict": v} for k, v in enumerate(verdicts)]


@pytest.fixture(scope="module")
def heldout():
    from course_lib import data

    return data.load_split("heldout")


def test_answer_tokens_are_the_ones_the_assistant_turn_starts_with(tokenizer):
    a, b = judge.answer_token_ids(tokenizer, ("A", "B"))
    assert (tokenizer.decode(a), tokenizer.decode(b)) == ("A", "B")  # no leading space: the header ends in "\n"
    assert a != tokenizer(" A", add_special_tokens=False)["input_ids"][0]
    assert [tokenizer.decode(t) for t in judge.answer_token_ids(tokenizer, tuple(judge.DIGITS))] == list("12345")


def test_judge_pairs_matches_a_forward_pass_by_hand(tiny_model):
    model, tok = tiny_model
    [result] = judge.judge_pairs(model, tok, PAIRS[:1])
    text = tok.apply_chat_template(judge.pair_messages(TICKET, PAIRS[0]["a"], PAIRS[0]["b"]), tokenize=False,
                                   add_generation_prompt=True)
    assert "Reply A:" in text and text.rstrip().endswith("assistant") and judge.RUBRIC.splitlines()[0] in text
    ids = tok(text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits.float()[0, -1], -1)
    a, b = judge.answer_token_ids(tok, ("A", "B"))
    p_a = float(torch.softmax(logp[[a, b]], -1)[0])
    assert result["id"] == "p1" and result["p_a"] == pytest.approx(p_a, abs=1e-5)
    assert result["mass"] == pytest.approx(float(logp[a].exp() + logp[b].exp()), abs=1e-6)
    assert result["verdict"] == ("A" if p_a >= 0.5 else "B")


def test_batching_and_left_padding_change_nothing(tiny_model):
    model, tok = tiny_model
    one = judge.judge_pairs(model, tok, PAIRS, batch_size=1)
    batched = judge.judge_pairs(model, tok, PAIRS, batch_size=3)  # three lengths: two rows are padded
    assert [r["id"] for r in batched] == ["p1", "p2", "p3"]
    assert [r["verdict"] for r in batched] == [r["verdict"] for r in one]
    assert [r["p_a"] for r in batched] == pytest.approx([r["p_a"] for r in one], abs=1e-5)
    assert not model.training


def test_judge_scores_are_a_distribution_over_five_digits(tiny_model):
    model, tok = tiny_model
    items = [{"id": p["id"], "ticket": p["ticket"], "reply": p["a"]} for p in PAIRS]
    scores = judge.judge_scores(model, tok, items, batch_size=2)
    for s in scores:
        assert sum(s["probs"]) == pytest.approx(1.0, abs=1e-6)
        assert s["expected"] == pytest.approx(sum(k * p for k, p in enumerate(s["probs"], 1)), abs=1e-6)
        assert s["argmax"] == 1 + int(np.argmax(s["probs"])) and 1 <= s["expected"] <= 5
    assert [s["expected"] for s in judge.judge_scores(model, tok, items, batch_size=1)] == pytest.approx(
        [s["expected"] for s in scores], abs=1e-5)


def test_model_functions_name_a_malformed_pair(tiny_model):
    with pytest.raises(ValueError, match=r"pair 1 \(id 'x'\) has no usable \['b'\]"):
        judge.judge_pairs(*tiny_model, [PAIRS[0], {"id": "x", "ticket": "t", "a": "y", "b": " "}])


@pytest.mark.parametrize("text, verdict", [
    ("A", "A"), ("B", "B"), ("Reply B", "B"), ("**B**", "B"), ("The better reply is A.", "A"),
    ("Answer: A", "A"), ("Reply A is better.", "A"), ("A better reply is B.", "B"), ("(B) because it helps", "B"),
    ("  'A'\n", "A"),
])
def test_parse_verdict_reads_the_letter(text, verdict):
    assert judge.parse_verdict(text, "GL-1") == verdict


@pytest.mark.parametrize("text, names", [
    ("", "neither"), ("Neither reply is good.", "neither"), ("a", "neither"),
    ("Reply A is better than Reply B.", "both"), ("A/B", "both"),
])
def test_parse_verdict_refuses_to_guess(text, names):
    with pytest.raises(judge.JudgeError) as caught:
        judge.parse_verdict(text, "GL-7")
    assert str(caught.value).startswith(f"Row 'GL-7': the judge's answer names {names}")
    assert repr(text) in str(caught.value) and isinstance(caught.value, ValueError)


def test_label_pairs_are_deterministic_balanced_and_really_worse(heldout):
    pairs = judge.make_label_pairs(heldout, seed=0, n=16)
    assert pairs == judge.make_label_pairs(heldout, seed=0, n=16)
    assert pairs != judge.make_label_pairs(heldout, seed=1, n=16)
    assert sum(p["better"] == "A" for p in pairs) == 8
    for flaw in judge.FLAWS:
        assert sorted(p["better"] for p in pairs if p["flaw"] == flaw) == ["A", "A", "B", "B"]
    references = {r["id"]: greenleaf.parse_triage(r["messages"][-1]["content"]) for r in heldout}
    for p in pairs:
        good, worse = (p["a"], p["b"]) if p["better"] == "A" else (p["b"], p["a"])
        assert good == references[p["id"]]["reply"] and worse != good
        if p["flaw"] == "no_sign_off":
            assert not worse.endswith(greenleaf.SIGN_OFF) and good.startswith(worse)
        elif p["flaw"] == "exact_refund":
            assert "We will refund £" in worse and worse.endswith(greenleaf.SIGN_OFF)
        elif p["flaw"] == "guarantee":
            assert judge.GUARANTEE in worse
        else:
            other = [r for r in references.values() if r["reply"] == worse]
            assert other and all(r["category"] != references[p["id"]]["category"] for r in other)
    with pytest.raises(ValueError, match="n=999"):
        judge.make_label_pairs(heldout, n=999)
    broken = {"id": "bad", "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "{}"}]}
    with pytest.raises(ValueError, match=r"Row 1 \(id 'bad'\) is not a GreenLeaf chat row"):
        judge.make_label_pairs([heldout[0], broken])


def test_length_pairs_differ_only_by_filler(heldout):
    pairs = judge.make_length_pairs(heldout, seed=3, n=6)
    assert pairs == judge.make_length_pairs(heldout, seed=3, n=6)
    assert [p["longer"] for p in pairs] == ["A", "B"] * 3
    for p in pairs:
        long, short = (p["a"], p["b"]) if p["longer"] == "A" else (p["b"], p["a"])
        body = short.removesuffix(greenleaf.SIGN_OFF).strip()
        assert long.startswith(body) and long.endswith(greenleaf.SIGN_OFF) and len(long) > len(short)
        assert sum(f in long for f in judge.FILLERS) == 2


def test_swap_pairs_flips_replies_and_labels():
    pairs = [{"id": 1, "ticket": "t", "a": "x", "b": "y", "better": "A", "longer": "B"}]
    assert judge.swap_pairs(pairs) == [{"id": 1, "ticket": "t", "a": "y", "b": "x", "better": "B", "longer": "A"}]
    assert judge.swap_pairs(judge.swap_pairs(pairs)) == pairs


def test_agreement_with_labels_exact():
    pairs = [{"id": f"p{k}", "better": b, "flaw": f} for k, (b, f) in
             enumerate([("A", "off_topic"), ("B", "off_topic"), ("A", "guarantee"), ("B", "guarantee")])]
    result = judge.agreement_with_labels(_v("A", "B", "A", "A"), pairs)
    assert result["n"] == 4 and result["accuracy"] == 0.75
    assert result["per_flaw"] == {"off_topic": 1.0, "guarantee": 0.5}
    assert result["interval"] == list(stats.bootstrap_ci([1, 1, 1, 0]))
    with pytest.raises(ValueError, match="verdict 1 is for id 'p1' but pair 1 is 'q'"):
        judge.agreement_with_labels(_v("A", "B"), [pairs[0], {"id": "q", "better": "A"}])
    with pytest.raises(ValueError, match=r"1 verdicts for 4 pairs"):
        judge.agreement_with_labels(_v("A"), pairs)
    with pytest.raises(ValueError, match=r"verdict 0 \(id 'p0'\) is 'C'"):
        judge.agreement_with_labels(_v("C", "B", "A", "A"), pairs)


def test_a_judge_that_always_says_a_is_fully_position_biased():
    result = judge.position_bias(_v("A", "A", "A", "A"), _v("A", "A", "A", "A"))
    assert (result["consistency"], result["a_rate"]) == (0.0, 1.0)
    assert (result["consistency_interval"], result["a_rate_interval"]) == ([0.0, 0.0], [1.0, 1.0])


def test_position_bias_exact():
    result = judge.position_bias(_v("A", "B", "A", "B"), _v("B", "A", "A", "A"))
    assert result["n"] == 4 and result["consistency"] == 0.75  # pairs 0, 1 and 3 kept their reply; 2 said A twice
    assert result["a_rate"] == 5 / 8
    assert result["a_rate_interval"] == list(stats.bootstrap_ci([0.5, 0.5, 1.0, 0.5]))
    with pytest.raises(ValueError, match="keep verdicts in the order"):
        judge.position_bias(_v("A", "B"), _v("A", "B")[::-1])


def test_length_bias_exact():
    pairs = [{"id": f"p{k}", "longer": x} for k, x in enumerate("ABAB")]
    result = judge.length_bias(_v("A", "B", "B", "B"), pairs)
    assert (result["n"], result["longer_wins"]) == (4, 0.75)
    assert result["interval"] == list(stats.bootstrap_ci([1, 1, 0, 1]))
    with pytest.raises(ValueError, match="needs 'longer'"):
        judge.length_bias(_v("A"), [{"id": "p0"}])


def _quadratic_kappa(a, b):
    observed = np.zeros((5, 5))
    for x, y in zip(a, b):
        observed[x - 1, y - 1] += 1
    expected = np.outer(observed.sum(1), observed.sum(0)) / len(a)
    weights = np.subtract.outer(np.arange(5), np.arange(5)) ** 2
    return 1 - (weights * observed).sum() / (weights * expected).sum()


def test_judge_human_agreement_exact():
    judge_r, human_r = [1, 2, 3, 4, 5, 5], [1, 2, 3, 4, 4, 2]
    result = judge.judge_human_agreement(judge_r, human_r)
    assert (result["n"], result["exact"], result["within_one"]) == (6, 4 / 6, 5 / 6)
    assert result["kappa_quadratic"] == pytest.approx(_quadratic_kappa(human_r, judge_r), abs=1e-12)
    assert result["exact_interval"] == list(stats.bootstrap_ci([1, 1, 1, 1, 0, 0]))
    assert "6 items" in result["note"] and "wide" in result["note"]
    by_id = judge.judge_human_agreement({"x": 3, "y": 5}, {"y": 5, "x": 3})
    assert (by_id["exact"], by_id["kappa_quadratic"]) == (1.0, 1.0)
    assert judge.judge_human_agreement([4, 4], [4, 4])["kappa_quadratic"] is None  # undefined, not a number


@pytest.mark.parametrize("judge_r, human_r, message", [
    ([1, 2], [1, 2, 3], "2 judge ratings for 3 human ratings"),
    ({"a": 1, "b": 2, "c": 3}, {"a": 1, "b": None, "c": None},
     r"Human ratings are missing for 2 item\(s\): \['b', 'c'\]"),
    ([None, 2], [1, 2], r"Judge ratings are missing for 1 item\(s\): \[0\]"),
    ([1, 6], [1, 2], "Judge rating of item 1 is 6"),
    ([3.4, 2], [1, 2], "item 0 is 3.4.*pass 'argmax'"),
    ({"a": 1}, {"b": 1}, r"rated items \['a'\] that the person did not"),
    ({"a": 1}, [1], "not one of each"),
])
def test_judge_human_agreement_errors(judge_r, human_r, message):
    with pytest.raises(ValueError, match=message):
        judge.judge_human_agreement(judge_r, human_r)


def test_rating_widget_records_clicks():
    import ipywidgets as widgets

    items = [{"id": f"T{k}", "ticket": f"ticket <{k}>", "reply": f"reply {k}"} for k in range(3)]
    form, ratings = judge.rating_widget(items)
    buttons = [c for c in form.children if isinstance(c, widgets.ToggleButtons)]
    assert len(buttons) == 3 and ratings == {"T0": None, "T1": None, "T2": None}
    assert [b.value for b in buttons] == [None] * 3 and [o[1] for o in buttons[0].options] == [1, 2, 3, 4, 5]
    assert "Happy growing!" in form.children[0].value and "&lt;1&gt;" in form.children[4].value
    buttons[0].value, buttons[2].value = 4, 1
    buttons[2].value = 2
    assert ratings == {"T0": 4, "T1": None, "T2": 2}
    assert form.children[1].value == "2 of 3 rated"
    with pytest.raises(ValueError, match=r"Human ratings are missing for 1 item\(s\): \['T1'\]"):
        judge.judge_human_agreement({"T0": 4, "T1": 3, "T2": 2}, ratings)
    with pytest.raises(ValueError, match=r"ids repeat \(\['T0'\]\)"):
        judge.rating_widget(items + items[:1])
