"""Quality report: token lengths per role, empty or cut-off answers, role order, label balance, and its plot."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass

from course_lib import greenleaf
from course_lib.data.formats import ROLES, Row, _answer, _row_name, render_chat
from course_lib.data.loading import check_role_order


@dataclass
class QualityReport:
    n_rows: int
    token_lengths: dict[str, list[int]]  # role -> tokens of that role's content, per row (summed over turns)
    total_lengths: list[int]  # whole rendered conversation, template tokens included, per row
    max_length: int  # the sequence budget the report was made for
    role_problems: list[tuple[str, str]]  # (row id, problem)
    empty_answers: list[str]  # row ids whose assistant answer is empty
    truncated_answers: list[str]  # row ids whose answer looks cut off (unclosed JSON, no closing punctuation)
    too_long: list[str]  # row ids longer than max_length tokens
    categories: dict[str, int]  # triage label counts (GreenLeaf rows)
    priorities: dict[str, int]
    needs_human: dict[str, int]

    def lengths_frame(self):
        """Token-length statistics per role as a pandas DataFrame."""
        import pandas as pd

        data = {**self.token_lengths, "whole row (template included)": self.total_lengths}
        return pd.DataFrame(data).describe(percentiles=[0.5, 0.95]).T[["min", "50%", "95%", "max", "mean"]].round(1)

    def checks_frame(self):
        """Counts of each problem found, with example row ids."""
        import pandas as pd

        checks = {"role-order problems": [r for r, _ in self.role_problems], "empty answers": self.empty_answers,
                  "truncated answers": self.truncated_answers, f"longer than {self.max_length} tokens": self.too_long}
        return pd.DataFrame([{"check": k, "rows": len(v), "examples": ", ".join(v[:3])} for k, v in checks.items()])

    def balance_frame(self):
        import pandas as pd

        rows = [{"label": "category", "value": k, "rows": v} for k, v in self.categories.items()]
        rows += [{"label": "priority", "value": k, "rows": v} for k, v in self.priorities.items()]
        rows += [{"label": "needs_human", "value": k, "rows": v} for k, v in self.needs_human.items()]
        return pd.DataFrame(rows)


def _looks_truncated(answer: str) -> bool:
    text = answer.rstrip()
    if not text:
        return False
    if text.startswith("{"):
        try:
            json.loads(text)
            return False
        except json.JSONDecodeError:
            return True
    return text[-1] not in ".!?)]}\"'*`"


def quality_report(rows: list[Row], tokenizer, max_length: int = 512) -> QualityReport:
    """Length, structure and balance statistics of chat rows, measured in the model's tokens."""
    lengths: dict[str, list[int]] = {r: [] for r in ROLES}
    total, role_problems, empty, truncated, too_long = [], [], [], [], []
    cats, prios, human = Counter(), Counter(), Counter()
    for i, row in enumerate(rows):
        name = _row_name(row, i)
        messages = row["messages"]
        for role in ROLES:
            lengths[role].append(sum(len(tokenizer(m["content"], add_special_tokens=False)["input_ids"])
                                     for m in messages if m.get("role") == role))
        n = len(tokenizer(render_chat(tokenizer, messages), add_special_tokens=False)["input_ids"])
        total.append(n)
        if n > max_length:
            too_long.append(name)
        role_problems += [(name, f"{f}: {r}") for f, r in check_role_order(messages)]
        answer = _answer(row)
        if not answer.strip():
            empty.append(name)
        elif _looks_truncated(answer):
            truncated.append(name)
        triage = greenleaf.parse_triage(answer) or {}
        if triage:
            cats[str(triage.get("category"))] += 1
            prios[str(triage.get("priority"))] += 1
            human[str(triage.get("needs_human"))] += 1
    order = {c: i for i, c in enumerate(greenleaf.CATEGORIES + greenleaf.PRIORITIES)}
    return QualityReport(
        n_rows=len(rows), token_lengths=lengths, total_lengths=total, max_length=max_length,
        role_problems=role_problems, empty_answers=empty, truncated_answers=truncated, too_long=too_long,
        categories=dict(sorted(cats.items(), key=lambda kv: order.get(kv[0], 99))),
        priorities=dict(sorted(prios.items(), key=lambda kv: order.get(kv[0], 99))), needs_human=dict(human),
    )


def plot_quality(report: QualityReport):
    """Left: histogram of whole-row token lengths with the sequence budget; right: rows per category."""
    from course_lib.plots import new_figure

    fig, (ax1, ax2) = new_figure(ncols=2)
    ax1.hist(report.total_lengths, bins=30, color="#4c8c4a")
    ax1.axvline(report.max_length, color="#b03a2e", linestyle="--", label=f"max_length = {report.max_length}")
    ax1.set(xlabel="tokens per row (chat template included)", ylabel="rows", title="Row length")
    ax1.legend(fontsize=8)
    names = list(report.categories)
    ax2.barh(names, [report.categories[n] for n in names], color="#4c8c4a")
    ax2.invert_yaxis()
    ax2.set(xlabel="rows", title="Rows per category")
    fig.tight_layout()
    return fig
