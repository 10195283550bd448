"""The general-skills regression set: did a fine-tune make the model worse at everything else?
``score_regression`` answers each prompt and scores it with the one rule in ``course_lib.regression_rules``.
"""

from __future__ import annotations

from typing import Sequence

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


MIN_DRIFT_ITEMS = 5  # below this many items a bootstrap interval means nothing (one item: always width 0)


def drift_by_skill(skills: Sequence[str], base_correct: Sequence[bool], tuned_correct: Sequence[bool]) -> list[dict]:
    """Behaviour drift: for each skill, then ``"all"``, the tuned model's accuracy minus the base model's on the
    SAME items, with a paired 95% bootstrap interval and a verdict: ``{"skill", "n", "base", "tuned", "change",
    "interval", "real", "too_few"}`` (``real``: the interval excludes 0 on at least ``MIN_DRIFT_ITEMS`` items;
    otherwise the change is noise at this size; ``too_few``: fewer items than that, so no verdict). The lists
    are per item, in the same order (e.g. ``[i["correct"] for i in score_regression(...)["items"]]``)."""
    from course_lib import stats

    if not (len(skills) == len(base_correct) == len(tuned_correct)):
        raise ValueError(f"Got {len(skills)} skills, {len(base_correct)} base and {len(tuned_correct)} tuned results: "
                         "give one of each per regression item, in the same order.")
    if not skills:
        raise ValueError("No regression items to compare.")
    groups: dict[str, list[int]] = {}
    for i, skill in enumerate(skills):
        groups.setdefault(skill, []).append(i)
    groups["all"] = list(range(len(skills)))
    rows = []
    for skill, idx in groups.items():
        base = [bool(base_correct[i]) for i in idx]
        tuned = [bool(tuned_correct[i]) for i in idx]
        change, low, high = stats.paired_bootstrap_diff(tuned, base)
        rows.append({"skill": skill, "n": len(idx), "base": sum(base) / len(idx), "tuned": sum(tuned) / len(idx),
                     "change": change, "interval": [low, high], "too_few": len(idx) < MIN_DRIFT_ITEMS,
                     "real": len(idx) >= MIN_DRIFT_ITEMS and (low > 0 or high < 0)})
    return rows


def format_drift(rows: Sequence[dict]) -> str:
    """``drift_by_skill``'s rows as an aligned table, one line per skill, the verdict in words."""
    lines = [f"{'skill':<14}{'n':>4}{'base':>7}{'tuned':>7}   change [95% interval]   verdict"]
    for r in rows:
        low, high = r["interval"]
        verdict = ("REAL: forgotten" if r["change"] < 0 else "REAL: gained") if r["real"] else \
            f"too few items (< {MIN_DRIFT_ITEMS}) to tell" if r["too_few"] else "noise"
        lines.append(f"{r['skill']:<14}{r['n']:>4}{r['base']:>7.2f}{r['tuned']:>7.2f}   "
                     f"{100 * r['change']:+6.1f} [{100 * low:+6.1f}, {100 * high:+6.1f}] pts   {verdict}")
    return "\n".join(lines)
