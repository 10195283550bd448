"""Whole-answer and free-text metrics: exact match of the triage answer, and ROUGE-L of the reply.

ROUGE-L (from the maintained ``rouge-score`` package) is the longest common subsequence of words between the
model's reply and the reference reply, as an F1 score: 1 when they are the same words in the same order, 0 when
they share none. It rewards wording close to the reference, not a helpful or correct reply: two good replies in
different words score low. Read it as "how close to our house style", next to the decisions' accuracy.
"""

from __future__ import annotations

from typing import Sequence

from course_lib import greenleaf


def _check_pairs(predictions: Sequence[str], references: Sequence[str]) -> None:
    if len(predictions) != len(references):
        raise ValueError(f"Got {len(predictions)} predictions for {len(references)} references: give one answer "
                         "per reference, in the same order.")
    if not predictions:
        raise ValueError("No predictions to score: pass at least one answer and its reference.")


def _reference(reference: str, i: int) -> dict:
    target = greenleaf.parse_triage(reference)
    if not isinstance(target, dict) or not isinstance(target.get("reply"), str):
        raise ValueError(f"Reference {i} ({reference[:60]!r}) is not triage JSON with a reply: references must be "
                         "the target answers from the data.")
    return target


def _normalise(value):
    return " ".join(value.split()) if isinstance(value, str) else value


def exact_match(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Fraction of answers whose JSON equals the reference's on every key: the three decisions of the same type
    (``1`` is not ``true``) and the reply word for word (spacing aside). Stricter than field accuracy: one
    different word in the reply makes the answer a miss."""
    _check_pairs(predictions, references)
    hits = 0
    for i, (prediction, reference) in enumerate(zip(predictions, references)):
        target = _reference(reference, i)
        answer = greenleaf.parse_triage(prediction or "")
        if isinstance(answer, dict) and set(answer) == set(target):
            hits += all(type(answer[k]) is type(target[k]) and _normalise(answer[k]) == _normalise(target[k])
                        for k in target)
    return hits / len(predictions)


def reply_rouge_l(predictions: Sequence[str], references: Sequence[str]) -> dict:
    """ROUGE-L F1 of each answer's ``reply`` against the reference reply (``rouge_score``, no stemming). An answer
    with no reply to read (not JSON, or no ``reply`` string) scores 0 and is counted in ``missing``, so the mean
    is over every answer. Returns ``{"mean", "per_row", "missing"}``."""
    from rouge_score import rouge_scorer

    _check_pairs(predictions, references)
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    per_row, missing = [], 0
    for i, (prediction, reference) in enumerate(zip(predictions, references)):
        target = _reference(reference, i)
        answer = greenleaf.parse_triage(prediction or "")
        reply = answer.get("reply") if isinstance(answer, dict) else None
        if not isinstance(reply, str) or not reply.strip():
            missing += 1
            per_row.append(0.0)
            continue
        per_row.append(scorer.score(target["reply"], reply)["rougeL"].fmeasure)
    return {"mean": sum(per_row) / len(per_row), "per_row": per_row, "missing": missing}
