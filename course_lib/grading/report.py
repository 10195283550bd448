"""The batch's outputs: one JSON result per student (``results/``, what resuming reads), ``feedback/<student>.html``,
and, merged from all results, ``gradebook.csv``, ``summary.md`` and ``summary.png``.

``gradebook.csv``: student, lab, one column per graded cell (written answers marked ``(manual)``), total and max
over the autograded cells, status (graded / rejected / error) and reason. A rejected or errored row has empty
scores and total: it was not graded, which is not the same as zero.
"""

from __future__ import annotations

import csv
import html
import json
import os
import shutil
import statistics
import tempfile

from .collect import STUDENT_ID

STATUSES = ("graded", "rejected", "error")


def _atomic_write(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def result_path(out: str, student: str) -> str:
    return os.path.join(out, "results", student + ".json")


def write_result(path: str, result: dict) -> None:
    _atomic_write(path, json.dumps(result, indent=1, sort_keys=True))


def read_result(path: str) -> dict | None:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def feedback_path(out: str, student: str) -> str | None:
    return os.path.join(out, "feedback", student + ".html") if STUDENT_ID.match(student) else None


def write_feedback(out: str, result: dict) -> None:
    """nbgrader's feedback page when there is one; otherwise a short page with the status and the reason."""
    target = feedback_path(out, result["student"])
    if target is None:
        return
    files = result.pop("feedback_files", None) or {}
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if len(files) == 1:
        shutil.copyfile(next(iter(files.values())), target)
    else:
        links = ""
        if files:
            folder = os.path.join(os.path.dirname(target), result["student"])
            os.makedirs(folder, exist_ok=True)
            for name, path in sorted(files.items()):
                shutil.copyfile(path, os.path.join(folder, name[: -len(".ipynb")] + ".html"))
            links = "".join(f'<li><a href="{html.escape(result["student"])}/{html.escape(n[:-6])}.html">'
                            f"{html.escape(n)}</a></li>" for n in sorted(files))
        score = f"<p>Autograded score: {result['total']:g} / {result['max']:g}</p>" if result["total"] is not None \
            else "<p>No score: this submission was not graded.</p>"
        _atomic_write(target, f"<!doctype html><meta charset='utf-8'><title>{html.escape(result['lab'])} feedback"
                              f"</title><h1>{html.escape(result['lab'])}: {html.escape(result['student'])}</h1>"
                              f"<p>Status: <b>{html.escape(result['status'])}</b></p>{score}"
                              f"<p>{html.escape(result['reason'])}</p><ul>{links}</ul>\n")
    result["feedback"] = os.path.relpath(target, out)


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def write_csv(path: str, columns: list[tuple[str, str, str]], results: list[dict]) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    with os.fdopen(fd, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["student", "lab"] + [c for _, _, c in columns] + ["total", "max", "status", "reason"])
        for r in results:
            scores = [_fmt(r["scores"].get(nb, {}).get(gid)) if r["status"] == "graded" else ""
                      for nb, gid, _ in columns]
            writer.writerow([r["student"], r["lab"]] + scores + [_fmt(r["total"]), _fmt(r["max"]), r["status"],
                                                                 r["reason"]])
    os.replace(tmp, path)


def question_stats(columns: list[tuple[str, str, str]], results: list[dict]) -> list[dict]:
    """Per graded cell: how many graded submissions have a score, mean, min, max."""
    rows = []
    for nb, gid, label in columns:
        values = [r["scores"][nb][gid] for r in results
                  if r["status"] == "graded" and r["scores"].get(nb, {}).get(gid) is not None]
        rows.append({"question": label, "n": len(values), "mean": statistics.fmean(values) if values else None,
                     "min": min(values) if values else None, "max": max(values) if values else None})
    return rows


def plot_summary(columns, results: list[dict]):
    """Left: distribution of autograded totals; right: per-question mean with min-max range."""
    from course_lib.plots import new_figure

    fig, (left, right) = new_figure(ncols=2)
    totals = [r["total"] for r in results if r["status"] == "graded"]
    maximum = max((r["max"] or 0) for r in results) if results else 0
    left.hist(totals, bins=max(1, min(20, int(maximum) + 1 if maximum else 10)), range=(0, maximum or 1),
              color="tab:green", edgecolor="white")
    left.set(title=f"Autograded totals ({len(totals)} graded)", xlabel="points", ylabel="students")
    stats = [s for s in question_stats(columns, results) if s["n"]]
    if stats:
        means = [s["mean"] for s in stats]
        right.bar(range(len(stats)), means, color="tab:blue",
                  yerr=[[m - s["min"] for m, s in zip(means, stats)], [s["max"] - m for m, s in zip(means, stats)]],
                  capsize=3)
        right.set_xticks(range(len(stats)), [s["question"] for s in stats], rotation=30, ha="right", fontsize=7)
    right.set(title="Per question: mean (bars: min to max)", ylabel="points")
    fig.tight_layout()
    return fig


def write_summary(out: str, info: dict, columns, results: list[dict], isolation: str, run: dict,
                  skipped: list[str]) -> None:
    counts = {s: sum(r["status"] == s for r in results) for s in STATUSES}
    lines = [f"# Grading summary: {info['assignment']}", "",
             f"{len(results)} submissions: {counts['graded']} graded, {counts['rejected']} rejected, "
             f"{counts['error']} errors. Command: `{run['command']}`", "",
             f"Totals and max cover the autograded cells; written answers marked (manual) are graded by hand. "
             "A rejected or errored submission has no score (not zero).", "", "## Isolation", "", isolation, "",
             "## Per question", "", "| question | graded | mean | min | max |", "|---|---|---|---|---|"]
    for s in question_stats(columns, results):
        lines.append(f"| {s['question']} | {s['n']} | {_fmt(s['mean'] and round(s['mean'], 3))} | {_fmt(s['min'])} "
                     f"| {_fmt(s['max'])} |")
    totals = [r["total"] for r in results if r["status"] == "graded"]
    if totals:
        lines += ["", f"Autograded totals: mean {statistics.fmean(totals):.2f}, median "
                      f"{statistics.median(totals):g}, min {min(totals):g}, max {max(totals):g} "
                      f"(of {results[0]['max']:g}). Distribution: `summary.png`."]
    problems = [r for r in results if r["status"] != "graded"]
    if problems:
        lines += ["", "## Not graded", "", "| student | status | reason |", "|---|---|---|"]
        lines += [f"| {r['student']} | {r['status']} | {r['reason'].replace('|', '/')} |" for r in problems]
    if skipped:
        lines += ["", "## Entries that are not submissions", ""] + [f"- {s}" for s in skipped]
    lines += ["", "## Run", "", f"- graded now: {run['graded_now']}, reused from an earlier run: {run['reused']}",
              f"- wall time: {run['seconds']:.1f} s with {run['jobs']} parallel jobs", ""]
    _atomic_write(os.path.join(out, "summary.md"), "\n".join(lines))


def write_reports(out: str, info: dict, columns, results: list[dict], isolation: str, run: dict,
                  skipped: list[str]) -> None:
    results = sorted(results, key=lambda r: r["student"])
    write_csv(os.path.join(out, "gradebook.csv"), columns, results)
    write_summary(out, info, columns, results, isolation, run, skipped)
    plot_summary(columns, results).savefig(os.path.join(out, "summary.png"), dpi=110)
    _atomic_write(os.path.join(out, "run.json"), json.dumps({**run, "isolation": isolation}, indent=1))
