"""The general-skills regression set: did a fine-tune make the model worse at everything else?
``score_regression`` answers each prompt and scores it with the one rule in ``course_lib.regression_rules``.
"""

from __future__ import annotations

from course_lib.regression_rules import REGRESSION_CHECKS, check_regression_answer  # re-exported: the one rule

# check_regression_answer(output, answer, check): the scoring rule, from course_lib.regression_rules (stdlib only,
# so data/generate_greenleaf.py uses the very same rule); its docstring states the rule.


def score_regression(model, tokenizer, rows: list[dict], max_new_tokens: int = 32, batch_size: int = 8,
                     progress: bool = False, reuse: bool = False) -> dict:
    """Run the general-skills regression set (rows ``{"id", "skill", "prompt", "answer", "check"}``): each prompt
    goes alone as a user message (no system prompt), each answer is scored by ``check_regression_answer``. Returns
    ``{"accuracy", "interval": [low, high], "per_skill": {skill: accuracy}, "items": [{"id", "skill", "prompt",
    "answer", "output", "correct"}]}``. ``interval`` is the 95% bootstrap interval of the accuracy
    (``stats.bootstrap_ci`` over the items' right/wrong, 1000 resamples, seed 0): on the 85-item set one item is
    1.2 points, so compare two runs with their intervals (or ``stats.paired_bootstrap_diff`` on their items), not
    by their accuracies alone. ``reuse=True``: take stored answers of these exact weights to these prompts if there
    are any (``course_lib.runcache``; e.g. the base model, scored once)."""
    from course_lib import models, runcache, stats

    if not rows:
        raise ValueError("No regression rows to score.")
    for i, row in enumerate(rows):
        missing = {"id", "skill", "prompt", "answer", "check"} - set(row)
        if missing:
            raise ValueError(f"Regression row {i} ({row.get('id', '?')!r}) lacks field(s) {sorted(missing)}.")
        if row["check"] not in REGRESSION_CHECKS:
            raise ValueError(f"Regression row {row['id']!r}: check {row['check']!r} is not one of {REGRESSION_CHECKS}.")
        try:  # before generating: a 'number' answer must be one number
            check_regression_answer("", row["answer"], row["check"])
        except ValueError as err:
            raise ValueError(f"Regression row {row['id']!r}: {err}") from err
    prompts = [[{"role": "user", "content": r["prompt"]}] for r in rows]

    def answer() -> list[str]:
        return models.generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size,
                               progress=progress)

    if reuse:
        outputs = runcache.model_answers("regression-answers", model, prompts,
                                         {"max_new_tokens": max_new_tokens, "batch_size": batch_size}, answer)
    else:
        outputs = answer()
    items = []
    for row, output in zip(rows, outputs):
        correct = check_regression_answer(output, row["answer"], row["check"])
        items.append({"id": row["id"], "skill": row["skill"], "prompt": row["prompt"], "answer": row["answer"],
                      "output": output, "correct": correct})
    per_skill: dict[str, list[bool]] = {}
    for item in items:
        per_skill.setdefault(item["skill"], []).append(item["correct"])
    low, high = stats.bootstrap_ci([item["correct"] for item in items])
    return {
        "accuracy": sum(i["correct"] for i in items) / len(items),
        "interval": [low, high],
        "per_skill": {skill: sum(v) / len(v) for skill, v in sorted(per_skill.items())},
        "items": items,
    }
