"""course_lib.evaluate.multiple_choice: items checked, options scored by log-likelihood, the letter shortcut shown."""

from __future__ import annotations

import pytest
import torch

from course_lib import evaluate


def _item(i: int, answer: int, options=("red", "green", "blue", "yellow")) -> dict:
    return {"id": f"M{i}", "subject": "colours" if i % 2 else "shapes", "question": f"Question {i}?",
            "options": list(options), "answer": answer}


BALANCED = [_item(i, i % 4) for i in range(8)]


@pytest.mark.parametrize("item, message", [
    ({**_item(0, 0), "options": ["a", "b", "c"]}, r"must have exactly 4 options, it has 3"),
    ({**_item(0, 0), "options": ["a", "b", "", "d"]}, "empty or non-text option"),
    ({**_item(0, 0), "options": ["a", "b", "A", "d"]}, "repeats an option"),
    ({**_item(0, 0), "answer": 4}, r"answer=4: use the index \(0-3\)"),
    ({**_item(0, 0), "answer": True}, "answer=True"),
    ({**_item(0, 0), "question": " "}, "has no question"),
])
def test_check_items_names_the_bad_item(item, message):
    with pytest.raises(ValueError, match=r"item 1 \(id 'M0'\) .*" + message):
        evaluate.check_items([_item(5, 1), item])
    with pytest.raises(ValueError, match="No benchmark items"):
        evaluate.check_items([])


def test_option_scores_match_a_forward_pass_by_hand(tiny_model):
    model, tok = tiny_model
    item = _item(0, 2, ("a fern", "two cacti in a pot", "moss", "the orchid"))
    scored = evaluate.option_logprobs(model, tok, item)
    prompt = tok("Question: Question 0?\nAnswer:", add_special_tokens=False)["input_ids"]
    for option, (logprob, n) in zip(item["options"], scored):
        ids = tok(" " + option, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=torch.tensor([prompt + ids])).logits.float()[0], -1)
        by_hand = sum(float(logp[len(prompt) + k - 1, t]) for k, t in enumerate(ids))
        assert n == len(ids)
        assert logprob == pytest.approx(by_hand, rel=1e-5, abs=1e-5)
    result = evaluate.score_multiple_choice(model, tok, [item])
    assert result["items"][0]["pick"] == max(range(4), key=lambda k: scored[k][0])
    normalised = evaluate.score_multiple_choice(model, tok, [item], length_normalised=True)
    assert normalised["items"][0]["scores"] == pytest.approx([lp / n for lp, n in scored])


class _Uniform(torch.nn.Module):
    """A 'model' with no opinion: the same logits for every token, so every option is equally likely per token."""

    def __init__(self, vocab: int):
        super().__init__()
        self.vocab, self.weight = vocab, torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, attention_mask=None):
        return type("Out", (), {"logits": torch.zeros(*input_ids.shape, self.vocab)})()


def test_a_model_without_knowledge_scores_chance_not_more(tokenizer):
    items = [_item(i, i % 4, ("cat", "dog", "cow", "pig")) for i in range(8)]  # one token each: exact ties
    result = evaluate.score_multiple_choice(_Uniform(len(tokenizer)), tokenizer, items)
    assert result["accuracy"] == 0.25  # ties go to the first option: right only where the answer is A
    assert result["picks_per_position"] == [8, 0, 0, 0]


def test_the_letter_shortcut_gives_credit_for_saying_nothing():
    always_a = ["A"] * len(BALANCED)
    silent = [""] * len(BALANCED)
    assert evaluate.letter_accuracy(always_a, BALANCED) == {"accuracy": 0.25, "unparsed": 0}
    assert evaluate.letter_accuracy(silent, BALANCED) == {"accuracy": 0.25, "unparsed": 8}  # the flaw
    assert evaluate.letter_accuracy(silent, BALANCED, default=None) == {"accuracy": 0.0, "unparsed": 8}
    assert evaluate.letter_in_response("I think (C) is right") == "C"
    assert evaluate.letter_in_response("A plant needs light") == "A"  # the article 'A' reads as an answer too
    with pytest.raises(ValueError, match="3 outputs for 8 items"):
        evaluate.letter_accuracy(["A"] * 3, BALANCED)


def test_score_multiple_choice_shape(tiny_model):
    result = evaluate.score_multiple_choice(*tiny_model, BALANCED)
    assert set(result) == {"accuracy", "interval", "per_subject", "picks_per_position", "items"}
    assert sum(result["picks_per_position"]) == 8
    assert set(result["per_subject"]) == {"colours", "shapes"}
    assert result["accuracy"] == sum(r["correct"] for r in result["items"]) / 8
