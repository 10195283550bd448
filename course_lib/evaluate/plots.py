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
