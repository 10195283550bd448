"""The test of a decision note, as data: thresholds written before training, run on the tuned model afterwards.

Notebook 01 sets the thresholds against the strongest baseline it measured and saves them (``save``); notebook 04
loads them (``load``) and runs them on the tuned model (``run``), line by line, each measured value printed with its
95% interval so a pass by a hair is visibly a pass inside the noise.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

from course_lib import greenleaf, stats

OPS = (">=", ">", "<=")
FIELDS = greenleaf.DECISION_FIELDS


@dataclass(frozen=True)
class Check:
    metric: str  # key into the measurements: json_valid, schema_valid, sign_off, category, ..., mean, regression_drop
    op: str  # ">=", ">" or "<="
    threshold: float
    why: str  # where the threshold comes from, in a few words

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ValueError(f"Check {self.metric!r}: op {self.op!r} is not one of {OPS}.")

    def line(self) -> str:
        return f"{self.metric} {self.op} {self.threshold:.3f} ({self.why})"


@dataclass
class AcceptanceTest:
    test_set: str  # what the checks are measured on, in words
    checks: list[Check] = field(default_factory=list)

    def to_markdown(self) -> str:
        """The "## The test" section's body: the test set, then one threshold per line."""
        return "\n".join([f"On {self.test_set}, every line must hold:"] + [f"- {c.line()}" for c in self.checks])


def greenleaf_test(strongest: dict[str, float], n_heldout: int, target_mean: float = 0.80,
                   max_regression_drop: float = 0.05) -> AcceptanceTest:
    """GreenLeaf's test: valid JSON and sign-off nearly always; each decision field strictly above the strongest
    baseline's accuracy on that field (``strongest``: field -> accuracy); mean field accuracy at least
    ``target_mean``; the regression set may drop by at most ``max_regression_drop``."""
    missing = [f for f in FIELDS if f not in strongest]
    if missing:
        raise ValueError(f"strongest lacks {missing}: pass the best baseline accuracy of every field.")
    checks = [Check("json_valid", ">=", 0.95, "answers a program can read"),
              Check("schema_valid", ">=", 0.95, "right keys and known labels"),
              Check("sign_off", ">=", 0.90, "brand voice")]
    checks += [Check(f, ">", round(strongest[f], 3), "strongest baseline on this field") for f in FIELDS]
    checks += [Check("mean", ">=", target_mean, "good enough to route tickets without a person reading each"),
               Check("regression_drop", "<=", max_regression_drop, "general skills kept")]
    return AcceptanceTest(f"the {n_heldout} held-out tickets and the regression set", checks)


def saved_test_path(profile: str) -> Path:
    """Where notebook 01 saves its test and notebook 04 reads it: one file per profile (``fast`` and ``full`` test
    different numbers of tickets against different baselines, so one must never stand in for the other)."""
    from course_lib.paths import cache_dir

    return cache_dir() / "notes" / f"01_test-{profile}.json"


def saved_note_path(profile: str) -> Path:
    """Where notebook 01 saves the decision note and notebook 06 fills in its test: one file per profile, like the
    saved test (a fast-profile note quotes the tiny model's baselines, which full-profile numbers must not fill)."""
    return saved_test_path(profile).with_name(f"01_decision_note-{profile}.md")


def lines_in_note(test: AcceptanceTest, note_text: str) -> list[str]:
    """The lines of ``test`` that the note's text does not contain ([] = the note states exactly this test): a note
    written for another test (another profile, an older run of notebook 01) must not be filled with this one's
    measurements."""
    return [line for line in test.to_markdown().splitlines() if line not in note_text]


def save(test: AcceptanceTest, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(test), indent=1) + "\n", encoding="utf-8")
    return path


def load(path: str | Path) -> AcceptanceTest:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No saved test at {path}: run notebook 01 to the end (it saves the decision note's "
                                "test there), or build one with acceptance.greenleaf_test(...).")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return AcceptanceTest(raw["test_set"], [Check(**c) for c in raw["checks"]])
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ValueError(f"{path} is not a saved acceptance test ({error}): save one with acceptance.save().") from error


def measure(task_metrics: dict, table: dict[str, dict], base_correct: Sequence[bool],
            tuned_correct: Sequence[bool]) -> dict[str, tuple[float, tuple[float, float] | None]]:
    """Measurements for ``run``: ``{metric: (value, 95% interval or None)}`` from ``evaluate.task_metrics``, a
    ``baselines.field_table`` of the tuned model, and the regression set's per-item right/wrong before and after
    (the drop, base minus tuned, with a paired bootstrap interval)."""
    if len(base_correct) != len(tuned_correct):
        raise ValueError("base_correct and tuned_correct must score the same regression items, in the same order.")
    out: dict[str, tuple[float, tuple[float, float] | None]] = {
        key: (float(task_metrics[key]), None) for key in ("json_valid", "schema_valid", "sign_off")}
    for f in (*FIELDS, "mean"):
        out[f] = (table[f]["accuracy"], tuple(table[f]["interval"]))
    drop, low, high = stats.paired_bootstrap_diff(base_correct, tuned_correct)
    out["regression_drop"] = (drop, (low, high))
    return out


def measure_recorded(trial: dict) -> dict[str, tuple[float, tuple[float, float] | None]]:
    """Measurements for ``run`` from a recorded run of ``benchmarks/recipe_trials.py`` (its JSON record): the same
    values ``measure`` computes live, read back with their intervals."""
    try:
        out: dict[str, tuple[float, tuple[float, float] | None]] = {
            key: (float(trial[key]), None) for key in ("json_valid", "schema_valid", "sign_off")}
        for f in (*FIELDS, "mean"):
            out[f] = (float(trial["field_accuracy"][f]), tuple(trial["field_interval"][f]))
        change, (low, high) = trial["regression"]["change"], trial["regression"]["change_interval"]
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"Not a recipe-trial record ({error!r} missing): pass one entry of "
                         "benchmarks/results/recipe_trials.json's 'trials'.") from error
    out["regression_drop"] = (-change, (-high, -low))  # a change of -0.03 is a drop of 0.03
    return out


def run(test: AcceptanceTest, measurements: dict) -> list[dict]:
    """One result per check: ``{"check", "value", "interval", "passed", "clear"}``; ``clear`` is False when the
    interval reaches across the threshold (the verdict could flip on another sample of tickets)."""
    results = []
    for check in test.checks:
        if check.metric not in measurements:
            raise KeyError(f"No measurement for {check.metric!r}: pass it in measurements (see acceptance.measure).")
        value, interval = measurements[check.metric]
        passed = {">=": value >= check.threshold, ">": value > check.threshold, "<=": value <= check.threshold}[check.op]
        clear = interval is None or not (interval[0] <= check.threshold <= interval[1])
        results.append({"check": check, "value": value, "interval": interval, "passed": passed, "clear": clear})
    return results


def format_results(results: list[dict]) -> str:
    """PASS/FAIL per line, the measured value with its interval, and a flag where the interval crosses the bar."""
    lines = []
    for r in results:
        verdict = "PASS" if r["passed"] else "FAIL"
        value = stats.format_score(r["value"], r["interval"])
        noise = "" if r["clear"] else "   (interval crosses the threshold: within noise)"
        lines.append(f"{verdict}  {r['check'].metric:<16} {value:<24} needs {r['check'].op} "
                     f"{r['check'].threshold:.3f}{noise}")
    passed = sum(r["passed"] for r in results)
    lines.append(f"{passed} of {len(results)} lines pass" + ("." if passed < len(results) else ": the test passes."))
    return "\n".join(lines)
