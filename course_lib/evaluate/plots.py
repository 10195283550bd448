"""Figures of evaluation results: task scores per run, and regression accuracy per skill."""

from __future__ import annotations

# Bars of plot_task_scores, in order: (metric key, label).
PLOT_METRICS = (
    ("json_valid", "JSON parses"),
    ("schema_valid", "schema valid"),
    ("category", "category"),
    ("priority", "priority"),
    ("needs_human", "needs_human"),
    ("sign_off", "sign-off"),
)


def _flat(metrics: dict) -> dict[str, float]:
    flat = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
    flat.update(metrics.get("field_accuracy", {}))
    return flat


def plot_task_scores(named_metrics: dict[str, dict]):
    """Grouped bars, one group per metric (JSON parses, schema valid, each field's accuracy, sign-off) and one
    bar per named run (e.g. ``{"zero-shot": m0, "3-shot": m3}``, ``task_metrics`` dicts). Returns the Figure."""
    from course_lib.plots import grouped_bars

    if not named_metrics:
        raise ValueError("Nothing to plot: pass {run name: task_metrics(...)}.")
    series = {run: [_flat(m).get(key, 0.0) for key, _ in PLOT_METRICS] for run, m in named_metrics.items()}
    fig, ax = grouped_bars([label for _, label in PLOT_METRICS], series, value_labels=True)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("fraction of held-out tickets")
    ax.set_title("GreenLeaf task scores")
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    return fig


def plot_regression(named_results: dict[str, dict]):
    """Grouped horizontal bars: accuracy per skill of the regression set, one bar per named run (e.g.
    ``{"base": score_regression(...), "LoRA": score_regression(...)}``), overall accuracy in the legend."""
    from course_lib.plots import grouped_bars

    if not named_results:
        raise ValueError("Nothing to plot: pass {run name: score_regression(...)}.")
    skills = sorted({s for r in named_results.values() for s in r["per_skill"]})
    series = {f"{run} (overall {r['accuracy']:.2f})": [r["per_skill"].get(s, 0.0) for s in skills]
              for run, r in named_results.items()}
    fig, ax = grouped_bars(skills, series, horizontal=True)
    ax.set_xlim(0, 1.05)
    ax.set_xlabel("fraction answered correctly")
    ax.set_title("General skills (regression set): what tuning cost elsewhere")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def plot_drift(named_rows: dict[str, list[dict]]):
    """Change in accuracy per skill (tuned minus base, points) with its 95% interval as an error bar, one marker
    per named comparison (``{"course recipe": drift_by_skill(...), ...}``). Bars crossing 0 are noise."""
    from course_lib.plots import new_figure

    if not named_rows:
        raise ValueError("Nothing to plot: pass {name: drift_by_skill(...)}.")
    sizes: dict[str, int] = {}  # every skill any comparison has, in first-seen order, with its largest n
    for rows in named_rows.values():
        for r in rows:
            sizes[r["skill"]] = max(sizes.get(r["skill"], 0), r["n"])
    skills = list(sizes)
    fig, (ax,) = new_figure(width=7.0)
    step = 0.8 / len(named_rows)
    for j, (name, rows) in enumerate(named_rows.items()):
        by_skill = {r["skill"]: r for r in rows}
        have = [i for i, s in enumerate(skills) if s in by_skill]
        ys = [i + (j - (len(named_rows) - 1) / 2) * step for i in have]
        picked = [by_skill[skills[i]] for i in have]
        xs = [100 * r["change"] for r in picked]
        err = [[100 * (r["change"] - r["interval"][0]) for r in picked],
               [100 * (r["interval"][1] - r["change"]) for r in picked]]
        ax.errorbar(xs, ys, xerr=err, fmt="o", capsize=3, label=name)
    ax.axvline(0, color="grey", lw=1)
    ax.set_yticks(range(len(skills)), [f"{s} (n={n})" for s, n in sizes.items()], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("tuned minus base, points (95% paired interval)")
    ax.set_title("Behaviour drift on the regression set: an interval crossing 0 is noise")
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return fig


def plot_memorisation(runs: list[dict], steps: int = 200):
    """Two panels from ``benchmarks/memorisation.py`` records. Left: canaries whose secret a greedy probe gives
    back whole, against how often each canary ticket was in the data (``steps``-step runs), per data and loss.
    Right: training replies recited word for word vs held-out tickets answered with a training reply, against the
    number of training steps."""
    from course_lib.plots import new_figure

    fig, (left, right) = new_figure(ncols=2, width=9.0)
    series = {("unredacted", "all"): "unredacted, loss on every token",
              ("unredacted", "answer"): "unredacted, loss on the answer (course)",
              ("redacted", "all"): "redacted, loss on every token",
              ("redacted", "answer"): "redacted, loss on the answer (course)"}
    for (which, loss), label in series.items():
        for probe, style in (("ticket", "-o"), ("prefix", ":x")):
            pts = sorted((r["repeats"], r["canaries"][probe]["summary"]["greedy_exact"]) for r in runs
                         if r.get("data") == which and r.get("loss_on") == loss and r.get("steps") == steps)
            if pts and (probe == "ticket" or any(y for _, y in pts)):
                big = which == "redacted"  # drawn larger and on top: the contrast redaction makes
                left.plot([x for x, _ in pts], [y for _, y in pts], style, markersize=10 if big else 6,
                          zorder=3 if big else 2, label=label + ("" if probe == "ticket" else ", name only"))
    left.set_xscale("log", base=2)
    left.set_xlabel(f"copies of each canary ticket ({steps} steps)")
    left.set_ylabel("canaries given back whole (of 5)")
    left.set_ylim(-0.2, 5.4)
    left.set_title("Canary extraction (greedy)", fontsize=9)
    left.legend(fontsize=6, loc="upper left")
    for loss, colour in (("answer", "tab:blue"), ("all", "tab:orange")):
        pts = sorted((r["steps"], r["verbatim"]["train"]["rate"], r["verbatim"]["heldout"]["rate"]) for r in runs
                     if r.get("data") == "unredacted" and r.get("loss_on") == loss and r.get("repeats") == 1)
        if pts:
            right.plot([p[0] for p in pts], [p[1] for p in pts], "-o", color=colour, label=f"loss on {loss}: training tickets")
            right.plot([p[0] for p in pts], [p[2] for p in pts], "--o", color=colour, alpha=0.6,
                       label=f"loss on {loss}: held-out tickets")
    right.set_xlabel("training steps")
    right.set_ylabel("replies copied word for word")
    right.set_ylim(-0.03, 1.0)
    right.set_title("Verbatim training replies", fontsize=9)
    right.legend(fontsize=6, loc="upper left")
    fig.tight_layout()
    return fig
