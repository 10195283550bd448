"""Recorded recipe trials (``benchmarks/results/*.json``): read them, pick the runs of one recipe, average a recipe
over its seeds, print each run with what it got right per label, and plot every run against the classic baseline.

A trial is the JSON record a benchmark writes for one training run: ``tag``, ``seed``, ``field_accuracy`` (per field
and ``mean``), optionally ``regression`` (``change`` and ``change_interval`` from the base model) and
``field_correct`` (per field, one right/wrong per held-out row, in row order).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Callable, Sequence

from course_lib import greenleaf
from course_lib.paths import REPO_ROOT

RESULTS = REPO_ROOT / "benchmarks" / "results"
FIELDS = greenleaf.DECISION_FIELDS

Trial = dict


def load(name: str, folder: Path = RESULTS) -> list[Trial]:
    """The trials of ``benchmarks/results/<name>.json`` (its ``"trials"`` list), with a clear error if absent."""
    path = Path(folder) / (name if name.endswith(".json") else f"{name}.json")
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: it ships with the repository (git checkout it), or re-run "
                                "the benchmark that writes it (its docstring has the command).")
    record = json.loads(path.read_text())
    if not isinstance(record, dict) or not isinstance(record.get("trials"), list):
        raise ValueError(f"{path} has no 'trials' list: not a recipe-trials file.")
    return record["trials"]


def recipe_name(trial: Trial) -> str:
    """The trial's tag without its seed: runs that differ only in the seed share it."""
    return re.sub(r",? seed \d+$", "", trial["tag"])


def select(trials: Sequence[Trial], where: Callable[[Trial], bool]) -> list[Trial]:
    """The trials for which ``where(trial)`` is true, in file order."""
    return [t for t in trials if where(t)]


def seed_means(trials: Sequence[Trial]) -> dict[str, dict]:
    """Per recipe (``recipe_name``): ``{"seeds": [...], "field_accuracy": {field: mean}, "regression_change": mean
    or None}``, in order of first appearance. A recipe with one seed is its own mean: read it as one sample."""
    groups: dict[str, list[Trial]] = {}
    for t in trials:
        groups.setdefault(recipe_name(t), []).append(t)
    out = {}
    for name, runs in groups.items():
        changes = [t["regression"]["change"] for t in runs if "regression" in t]
        out[name] = {
            "seeds": [t.get("seed") for t in runs],
            "field_accuracy": {f: sum(t["field_accuracy"][f] for t in runs) / len(runs) for f in (*FIELDS, "mean")},
            "regression_change": sum(changes) / len(changes) if changes else None,
        }
    return out


def paired_against(trial: Trial, baseline: dict[str, dict]) -> dict[str, tuple[float, float, float]]:
    """Per field: ``(trial accuracy - baseline accuracy, low, high)`` with a paired bootstrap 95% interval over the
    same held-out rows (``baseline``: a ``baselines.field_table`` of those rows, in the same order). An interval
    that excludes 0 is a real difference; one that contains 0 is noise at this test-set size."""
    from course_lib import stats

    correct = trial.get("field_correct")
    if correct is None:
        raise ValueError(f"Trial {trial['tag']!r} has no per-row results (a summary-only record): it cannot be paired.")
    out = {}
    for field in FIELDS:
        if len(correct[field]) != len(baseline[field]["correct"]):
            raise ValueError(f"Trial {trial['tag']!r} was scored on {len(correct[field])} rows, the baseline on "
                             f"{len(baseline[field]['correct'])}: pair them on the same rows.")
        out[field] = stats.paired_bootstrap_diff(correct[field], baseline[field]["correct"])
    return out


def per_label(trial: Trial, truth: Sequence[dict], field: str) -> dict:
    """``{label: (right, of)}`` for ``field``, from the trial's ``field_correct`` and the held-out ``truth``
    (``baselines.targets`` of the rows the trial was scored on, in the same order)."""
    correct = trial.get("field_correct", {}).get(field)
    if correct is None:
        raise ValueError(f"Trial {trial['tag']!r} has no per-row results for {field!r} (a summary-only record).")
    if len(correct) != len(truth):
        raise ValueError(f"Trial {trial['tag']!r} was scored on {len(correct)} rows, not these {len(truth)}.")
    labels = sorted({y[field] for y in truth}, key=str)
    return {label: (sum(ok for ok, y in zip(correct, truth) if y[field] == label),
                    sum(y[field] == label for y in truth)) for label in labels}


def format_trials(trials: Sequence[Trial], truth: Sequence[dict] | None = None, width: int = 64) -> str:
    """One line per trial (field accuracies, mean, regression change in points) and, given ``truth``, how many of
    each priority and needs_human label it got right."""
    lines = [f"{'run':<{width}} {'category':>8} {'priority':>8} {'needs_h.':>8} {'mean':>6} {'regression':>10}"]
    for t in trials:
        fa = t["field_accuracy"]
        change = f"{100 * t['regression']['change']:+.1f} pt" if "regression" in t else "-"
        lines.append(f"{t['tag'][:width]:<{width}} {fa['category']:>8.3f} {fa['priority']:>8.3f} "
                     f"{fa['needs_human']:>8.3f} {fa['mean']:>6.3f} {change:>10}")
        if truth is not None and "field_correct" in t:
            for field in ("priority", "needs_human"):
                counts = per_label(t, truth, field)
                lines.append(f"    {field} right per true label: "
                             + ", ".join(f"{label} {right}/{of}" for label, (right, of) in counts.items()))
    return "\n".join(lines)


def plot_against_baseline(trials: Sequence[Trial], baseline: dict[str, dict], baseline_name: str = "TF-IDF",
                          title: str = "Each run: field accuracy against what it cost on the regression set"):
    """One panel per field: each trial a point (x: regression change in points, y: held-out accuracy), the baseline's
    accuracy a line with its 95% interval shaded (``baseline[field] = {"accuracy", "interval"}``). A run that beats
    the baseline and keeps its general skills sits above the band and near x = 0. Returns the Figure."""
    from course_lib.plots import new_figure

    runs = [t for t in trials if "regression" in t]
    if not runs:
        raise ValueError("No trial has a regression score to plot against.")
    fig, axes = new_figure(ncols=3, width=11)
    for ax, field in zip(axes, FIELDS):
        low, high = baseline[field]["interval"]
        ax.axhspan(low, high, color="tab:orange", alpha=0.15)
        ax.axhline(baseline[field]["accuracy"], color="tab:orange", label=f"{baseline_name} (95% interval)")
        ax.axvline(-5, color="grey", linestyle=":", label="5-point regression limit")
        ax.scatter([100 * t["regression"]["change"] for t in runs], [t["field_accuracy"][field] for t in runs],
                   s=18, color="tab:blue", label="one tuned run")
        ax.set_title(field, fontsize=9)
        ax.set_xlabel("regression change (points)", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel("held-out accuracy", fontsize=8)
    axes[0].legend(fontsize=7, loc="best")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
