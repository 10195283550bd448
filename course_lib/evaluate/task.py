"""Task metrics: how well a model does the GreenLeaf task. ``task_metrics`` scores answers against the target JSON;
``score_task`` generates the answers (zero-shot or few-shot, batched, stopping once the JSON closes) and scores
them; ``few_shot_messages`` and ``pick_examples`` build the prompts.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field

from course_lib import greenleaf

SCORED_FIELDS = greenleaf.DECISION_FIELDS  # fields with one right answer; the reply is free text
_PLACEHOLDER = re.compile(r"<[A-Z_]{3,}>")  # redaction placeholders: <EMAIL>, <PHONE>, ...


# ------------------------------------------------------------------------------------------- task metrics


def _same(a, b) -> bool:
    """Equal and of the same type: ``1 == True`` in Python, but the answer ``1`` is not the boolean ``true``."""
    return type(a) is type(b) and a == b


def score_answer(prediction: str, reference: str) -> dict:
    """Score one answer against its target JSON: ``{"json_valid", "schema_valid", <field>..., "sign_off"}``,
    each ``True``/``False``. An answer that does not parse is wrong on every field."""
    target = greenleaf.parse_triage(reference)
    if target is None:
        raise ValueError(f"The reference {reference[:80]!r} is not triage JSON: references must be the target "
                         "answers from the data (the assistant message of each row).")
    answer = greenleaf.parse_triage(prediction or "")
    parsed = isinstance(answer, dict)
    answer = answer if parsed else {}
    scores = {"json_valid": parsed, "schema_valid": parsed and greenleaf.triage_validator().is_valid(answer)}
    for name in SCORED_FIELDS:
        scores[name] = parsed and name in answer and _same(answer[name], target.get(name))
    reply = answer.get("reply")
    scores["sign_off"] = isinstance(reply, str) and reply.strip().endswith(greenleaf.SIGN_OFF)
    return scores


def task_metrics(predictions: list[str], references: list[str]) -> dict:
    """Fractions over the answers: ``n``, ``json_valid`` (parses as a JSON object, surrounding text allowed),
    ``schema_valid`` (matches ``greenleaf.TRIAGE_SCHEMA``: right keys, known category/priority, boolean
    needs_human), ``field_accuracy`` (``{"category", "priority", "needs_human"}``), ``field_accuracy_mean``, and
    ``sign_off`` (the reply ends with ``greenleaf.SIGN_OFF``), and the positions of the answers that are
    ``empty_rows`` (the model wrote nothing) and ``not_json_rows`` (no JSON object in the answer). Both count as
    wrong on every field, and never silently: empty answers also raise a warning naming them, because they usually
    mean a generation setting (``max_new_tokens``, a stop rule) rather than the model."""
    if len(predictions) != len(references):
        raise ValueError(f"Got {len(predictions)} predictions for {len(references)} references: give one answer "
                         "per reference, in the same order.")
    if not predictions:
        raise ValueError("No predictions to score: pass at least one answer and its reference.")
    items = [score_answer(p, r) for p, r in zip(predictions, references)]
    n = len(items)
    empty = [i for i, p in enumerate(predictions) if not str(p).strip()]
    if empty:
        shown = ", ".join(map(str, empty[:10])) + (", ..." if len(empty) > 10 else "")
        warnings.warn(f"{len(empty)} of {n} answers are empty (rows {shown}): they count as wrong. The model wrote "
                      "nothing visible (only special tokens or spaces), or generation stopped at once: check "
                      "max_new_tokens and the stop rule before reading the scores.", stacklevel=2)

    def frac(key: str) -> float:
        return sum(item[key] for item in items) / n

    per_field = {name: frac(name) for name in SCORED_FIELDS}
    return {
        "n": n,
        "json_valid": frac("json_valid"),
        "schema_valid": frac("schema_valid"),
        "field_accuracy": per_field,
        "field_accuracy_mean": sum(per_field.values()) / len(per_field),
        "sign_off": frac("sign_off"),
        "empty_rows": empty,
        "not_json_rows": [i for i, item in enumerate(items) if not item["json_valid"] and i not in empty],
    }


# --------------------------------------------------------------------------------------- prompts, scoring


def _turn(row: dict, role: str) -> str:
    for message in row.get("messages", []):
        if message.get("role") == role:
            return message["content"]
    raise ValueError(f"Row {row.get('id', '?')!r} has no {role!r} message: chat rows need "
                     "messages [system, user, assistant].")


def few_shot_messages(ticket: str, examples: list[dict], k: int, system: str = greenleaf.SYSTEM_PROMPT) -> list[dict]:
    """The prompt for one ticket: the system prompt, then the first ``k`` of ``examples`` (chat rows) as
    user/assistant turns, then the ticket. ``k=0`` is the zero-shot prompt."""
    if k < 0:
        raise ValueError(f"k={k}: the number of examples cannot be negative.")
    if k > len(examples):
        raise ValueError(f"k={k} examples asked for, but only {len(examples)} given: pass more rows or a smaller k.")
    messages = [{"role": "system", "content": system}]
    for row in examples[:k]:
        messages += [{"role": "user", "content": _turn(row, "user")},
                     {"role": "assistant", "content": _turn(row, "assistant")}]
    messages.append({"role": "user", "content": ticket})
    return messages


def pick_examples(rows: list[dict], k: int, seed: int = 0) -> list[dict]:
    """``k`` rows for a few-shot prompt, drawn in a seeded random order, each from a different category while
    categories last (so the examples show the range of answers, not one kind). Rows whose ticket still holds
    redaction placeholders such as ``<EMAIL>`` are used only if nothing else is left: an example teaches the model
    what tickets look like."""
    import random

    if k > len(rows):
        raise ValueError(f"k={k} examples asked for, but only {len(rows)} rows given.")
    order = list(rows)
    random.Random(seed).shuffle(order)
    clean = [row for row in order if not _PLACEHOLDER.search(_turn(row, "user"))]
    redacted = [row for row in order if _PLACEHOLDER.search(_turn(row, "user"))]
    chosen: list[dict] = []
    seen: set = set()
    for row in clean:
        category = (greenleaf.parse_triage(_turn(row, "assistant")) or {}).get("category")
        if category not in seen and len(chosen) < k:
            seen.add(category)
            chosen.append(row)
    rest = [row for row in clean if not any(row is c for c in chosen)]
    return (chosen + rest + redacted)[:k]


@dataclass
class TaskScore:
    metrics: dict  # task_metrics over all rows
    predictions: list[str]  # the model's raw answers, in row order
    ids: list[str] = field(default_factory=list)  # row ids, in the same order


def score_task(
    model, tokenizer, rows: list[dict], examples: list[dict] | None = None, shots: int = 0,
    max_new_tokens: int | None = None, batch_size: int = 8, progress: bool = True, reuse: bool = False,
) -> TaskScore:
    """Generate an answer for every chat row (``{"id", "family", "messages": [system, user, assistant]}``) with a
    ``shots``-example prompt built from ``examples``, and score it against the row's assistant message.
    ``max_new_tokens`` defaults to the profile's. Generation stops for each answer once its JSON object closes.
    ``reuse=True``: if these exact weights already answered these exact prompts with these settings (e.g. the base
    model in notebook 01), take the stored answers instead of generating them again (``course_lib.runcache``)."""
    from course_lib import models, runcache
    from course_lib.profile import get_profile

    if shots and not examples:
        raise ValueError(f"shots={shots} needs example rows: pass examples=<training rows>.")
    if not rows:
        raise ValueError("No rows to score: pass at least one held-out row.")
    conversations = [
        few_shot_messages(_turn(row, "user"), examples or [], shots, system=_system(row)) for row in rows
    ]
    references = [_turn(row, "assistant") for row in rows]
    # Similar lengths in a batch waste less compute on padding; answers are put back in row order.
    order = sorted(range(len(rows)), key=lambda i: len(conversations[i][-1]["content"]))
    budget = max_new_tokens or get_profile().max_new_tokens

    def answer() -> list[str]:
        return models.generate(model, tokenizer, [conversations[i] for i in order], max_new_tokens=budget,
                               batch_size=batch_size, progress=progress, stop_after_json=True)

    if reuse:
        answers = runcache.model_answers("task-answers", model, [conversations[i] for i in order],
                                         {"max_new_tokens": budget, "batch_size": batch_size}, answer)
    else:
        answers = answer()
    predictions = [""] * len(rows)
    for i, answer in zip(order, answers):
        predictions[i] = answer
    ids = [str(row.get("id", i)) for i, row in enumerate(rows)]
    return TaskScore(task_metrics(predictions, references), predictions, ids)


def _system(row: dict) -> str:
    try:
        return _turn(row, "system")
    except ValueError:
        return greenleaf.SYSTEM_PROMPT
