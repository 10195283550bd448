"""course_lib.evaluate.perplexity: perplexity over answer tokens only, checked by hand; the padding mistake shown."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib import data, evaluate


def _row(i: int, ticket: str, answer: str) -> dict:
    return {"id": f"p{i}", "messages": [{"role": "system", "content": "Triage."}, {"role": "user", "content": ticket},
                                        {"role": "assistant", "content": answer}]}


ROWS = [_row(0, "My fern is brown.", '{"category": "plant_health"}'),
        _row(1, "Where is my parcel? It was due on Monday and nothing came, please help me find it.",
             '{"category": "shipping", "reply": "We are on it. Happy growing!"}'),
        _row(2, "Refund?", "Yes.")]


def _by_hand(model, tok, rows) -> tuple[float, int]:
    """Sum of -log p(answer token) over every answer token, one row at a time, no padding anywhere."""
    total, count = 0.0, 0
    for row in rows:
        enc = data.tokenize_sft(row["messages"], tok, 1024, pad=False)
        ids = torch.tensor([enc["input_ids"]])
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=ids).logits.float()[0], dim=-1)
        for t in range(1, len(enc["labels"])):
            if enc["labels"][t] != data.IGNORE_INDEX:
                total -= float(logp[t - 1, enc["labels"][t]])
                count += 1
    return total, count


def test_answer_perplexity_is_exp_of_the_mean_answer_token_loss(tiny_model):
    model, tok = tiny_model
    total, count = _by_hand(model, tok, ROWS)
    result = evaluate.answer_perplexity(model, tok, ROWS, batch_size=3)
    assert result["tokens"] == count
    assert result["mean_nll"] == pytest.approx(total / count, rel=1e-5)
    assert result["perplexity"] == pytest.approx(math.exp(total / count), rel=1e-5)
    assert [r["id"] for r in result["per_row"]] == ["p0", "p1", "p2"]
    assert sum(r["tokens"] for r in result["per_row"]) == count


def test_padding_changes_the_naive_perplexity_and_not_ours(tiny_model):
    model, tok = tiny_model
    alone = [evaluate.answer_perplexity(model, tok, [row], batch_size=1)["per_row"][0]["mean_nll"] for row in ROWS]
    batched = [r["mean_nll"] for r in evaluate.answer_perplexity(model, tok, ROWS, batch_size=3)["per_row"]]
    assert batched == pytest.approx(alone, rel=1e-5)  # rows 0 and 2 were padded to row 1's length: no change
    texts = [tok.apply_chat_template(r["messages"], tokenize=False) for r in ROWS]
    longest = max(len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts)
    tight, padded = evaluate.naive_perplexity(model, tok, texts), evaluate.naive_perplexity(model, tok, texts, longest + 40)
    # same model, same texts: the number moved because of padding (on this random-weight model a pad token is as
    # hard to predict as any other, so it moves little; the real model never learned to predict pads, so each pad
    # adds a large loss and it climbs steeply: notebook 06 shows that)
    assert abs(padded - tight) / tight > 1e-3


def test_answer_perplexity_bad_rows(tiny_model):
    model, tok = tiny_model
    with pytest.raises(ValueError, match="no rows"):
        evaluate.answer_perplexity(model, tok, [])
    no_answer = {"id": "x9", "messages": [{"role": "user", "content": "hi"}]}
    with pytest.raises(ValueError, match=r"Row 1 \(id 'x9'\) does not end with a non-empty assistant answer"):
        evaluate.answer_perplexity(model, tok, [ROWS[0], no_answer])
