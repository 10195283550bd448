"""course_lib.evaluate.text: exact match of the whole answer and ROUGE-L of the reply, against hand-computed values."""

from __future__ import annotations

import json

import pytest

from course_lib import evaluate
from course_lib.evaluate import text


def _answer(reply="Sorry about that. Happy growing!", **fields) -> str:
    obj = {"category": "shipping", "priority": "low", "needs_human": False, "reply": reply, **fields}
    return json.dumps(obj)


REF = _answer()


def test_exact_match():
    preds = [_answer(), _answer(reply="Sorry  about that.\nHappy growing!"), _answer(needs_human=0),
             _answer(reply="Sorry about this. Happy growing!"), "not json", "{\"category\": \"shipping\"}"]
    assert text.exact_match(preds, [REF] * 6) == pytest.approx(2 / 6)  # spacing aside; 0 is not false


def test_rouge_l_by_hand():
    # reference words: sorry about that happy growing (5); prediction: sorry that was late happy growing (6)
    # longest common subsequence: sorry that happy growing = 4; P = 4/6, R = 4/5, F1 = 2PR/(P+R) = 8/11
    result = text.reply_rouge_l([_answer(reply="Sorry, that was late. Happy growing!")], [REF])
    assert result["per_row"] == [pytest.approx(8 / 11)]
    same = text.reply_rouge_l([REF, "no json here", _answer(reply="")], [REF] * 3)
    assert same["per_row"] == [1.0, 0.0, 0.0]
    assert same["missing"] == 2 and same["mean"] == pytest.approx(1 / 3)


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match="Got 1 predictions for 2 references"):
        text.reply_rouge_l([REF], [REF, REF])
    with pytest.raises(ValueError, match="No predictions to score"):
        text.exact_match([], [])
    with pytest.raises(ValueError, match=r"Reference 0 \('plain text'\) is not triage JSON with a reply"):
        text.reply_rouge_l([REF], ["plain text"])
