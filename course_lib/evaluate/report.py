"""The side-by-side evaluation report, and the decision note's test filled in from it.

A ``Report`` puts the systems compared (base, tuned, adapters, the majority-class and TF-IDF baselines) in columns
and the metrics in rows, each score with its 95% interval, section by section, with figures. ``to_markdown`` and
``to_html`` render it (the HTML page is self-contained: figures embedded, no external resources); ``save_report``
writes ``evaluation_report.md``, ``evaluation_report.html`` and ``figures/*.png`` into one folder.

Where: next to the adapter, in the run folder that holds it (``report_folder(adapter_dir)``:
``runs/<run>/adapter`` → ``runs/<run>/``), never inside the adapter folder. peft would still load the adapter (it
reads only ``adapter_config.json`` and the weights file), but the adapter folder should hold the adapter alone: its
size on disk is a lesson's number, and it is the folder you copy or publish.

``fill_note_test`` writes what the test measured into the decision note's ``## The test`` section, between two
marker lines (replaced on every run, learner text untouched); ``decision_summary`` says the outcome in one sentence.
"""

from __future__ import annotations

import base64
import html
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from course_lib import decide, stats

Interval = Union[tuple[float, float], list[float], None]
Cell = Union[float, int, str, tuple[float, Interval], None]  # a score, (score, 95% interval), a text, or missing
Rows = dict[str, dict[str, Cell]]  # metric -> system -> cell

MARKDOWN_NAME, HTML_NAME, FIGURES_DIR = "evaluation_report.md", "evaluation_report.html", "figures"
MISSING = "—"
# Invisible markdown lines (link reference definitions). Not HTML comments: decide.validate_decision_note reads any
# "<...>" on one line as a template placeholder left in, so <!-- measured:start --> would fail a finished note.
MEASURED_START, MEASURED_END = "[//]: # (measured:start)", "[//]: # (measured:end)"
_HEADING = re.compile(r"^\s*##\s+(.+?)\s*#*\s*$")  # the same "## heading" rule as decide._sections
_CSS = ("body{font-family:system-ui,sans-serif;max-width:62rem;margin:2rem auto;padding:0 1rem;color:#222}"
        "table{border-collapse:collapse;margin:.6rem 0}th,td{border:1px solid #ccc;padding:.25rem .6rem;"
        "text-align:right}th:first-child,td:first-child{text-align:left}thead th{background:#eaf3e8}"
        "img{max-width:100%}.muted{color:#666}")


@dataclass
class Section:
    heading: str
    rows: Rows = field(default_factory=dict)  # empty for a figure-only section
    note: str = ""  # a sentence or two on what the section shows
    figures: list[Any] = field(default_factory=list)  # matplotlib Figures


@dataclass
class Report:
    title: str
    systems: list[str]  # the columns, in order: ["base", "tuned", "majority class", "TF-IDF + logistic regression"]
    sections: list[Section] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.systems or len(set(self.systems)) != len(self.systems):
            raise ValueError(f"systems={self.systems!r}: name each system compared once, e.g. ['base', 'tuned'].")


# --------------------------------------------------------------------------------------------- building


def add_table(report: Report, heading: str, rows: Rows, note: str = "") -> Section:
    """Add a section with a table: ``rows`` maps each metric to ``{system: cell}``; a cell is a score, a
    ``(score, interval)`` pair (interval ``(low, high)`` or None), a text, or None; systems left out show "—"."""
    if any(s.heading == heading for s in report.sections):
        raise ValueError(f"The report already has a section {heading!r}: give this table another heading.")
    if not rows:
        raise ValueError(f"Section {heading!r}: rows is empty; pass {{metric: {{system: value}}}}.")
    for metric, cells in rows.items():
        unknown = [s for s in cells if s not in report.systems]
        if unknown:
            raise ValueError(f"Section {heading!r}, row {metric!r}: unknown system(s) {unknown}; the report compares "
                             f"{report.systems} (add a system to Report(systems=...), or fix the name).")
        for system, cell in cells.items():
            _cell_text(cell, f"Section {heading!r}, row {metric!r}, system {system!r}")  # fail now, not at render
    section = Section(heading, {m: dict(c) for m, c in rows.items()}, note)
    report.sections.append(section)
    return section


def add_figure(report: Report, heading: str, fig: Any, note: str = "") -> Section:
    """Add a matplotlib figure under ``heading``: to that section if the report has one (after its table),
    otherwise to a new section."""
    if not hasattr(fig, "savefig"):
        hint = " (an Axes: pass ax.figure)" if hasattr(fig, "figure") else ""
        raise TypeError(f"add_figure needs a matplotlib Figure, got {type(fig).__name__}{hint}.")
    section = next((s for s in report.sections if s.heading == heading), None)
    if section is None:
        section = Section(heading, note=note)
        report.sections.append(section)
    elif note:
        section.note = f"{section.note}\n\n{note}" if section.note else note
    section.figures.append(fig)
    return section


def table_rows(tables: dict[str, dict]) -> Rows:
    """Rows for ``add_table`` from ``baselines.compare`` (``{system: field_table}``): per field and the mean,
    ``(accuracy, interval)`` of each system."""
    metrics = list(dict.fromkeys(m for table in tables.values() for m in table))
    return {m: {s: (t[m]["accuracy"], t[m].get("interval")) for s, t in tables.items() if m in t} for m in metrics}


def metric_rows(named_metrics: dict[str, dict]) -> Rows:
    """Rows for ``add_table`` from ``{system: evaluate.task_metrics(...)}``: n, JSON and schema validity, each
    field's accuracy, the mean and sign-off (no intervals: task_metrics has none)."""
    rows: Rows = {}
    for system, m in named_metrics.items():
        flat = {"n": m.get("n"), "json_valid": m.get("json_valid"), "schema_valid": m.get("schema_valid"),
                **m.get("field_accuracy", {}), "mean": m.get("field_accuracy_mean"), "sign_off": m.get("sign_off")}
        for metric, value in flat.items():
            if value is not None:
                rows.setdefault(metric, {})[system] = value
    return rows


# -------------------------------------------------------------------------------------------- rendering


def _cell_text(cell: Cell, where: str = "cell") -> str:
    if cell is None:
        return MISSING
    if isinstance(cell, str):
        return cell
    if isinstance(cell, bool):
        raise TypeError(f"{where}: {cell!r} is a boolean; pass the score (a fraction) or a text.")
    if isinstance(cell, int):
        return str(cell)  # counts, such as n
    if isinstance(cell, float):
        return stats.format_score(cell)
    if isinstance(cell, (tuple, list)) and len(cell) == 2 and isinstance(cell[0], (int, float)):
        interval = cell[1]
        if interval is not None and (not isinstance(interval, (tuple, list)) or len(interval) != 2):
            raise TypeError(f"{where}: the interval {interval!r} must be (low, high) or None.")
        return stats.format_score(float(cell[0]), None if interval is None else (interval[0], interval[1]))
    raise TypeError(f"{where}: {cell!r} is not a score, (score, interval), text or None.")


def _columns(report: Report, section: Section) -> list[str]:  # the systems in this table, in the report's order
    return [s for s in report.systems if any(s in cells for cells in section.rows.values())]


def _figure_names(report: Report) -> list[list[str]]:
    """Figure file names, section by section: ``figures/02-held-out-decisions.png``, a letter added past one."""
    names = []
    for i, section in enumerate(report.sections, start=1):
        slug = re.sub(r"[^a-z0-9]+", "-", section.heading.lower()).strip("-")[:40].strip("-") or "figure"
        suffixes = [""] if len(section.figures) == 1 else [f"-{chr(97 + k)}" for k in range(len(section.figures))]
        names.append([f"{FIGURES_DIR}/{i:02d}-{slug}{suffix}.png" for suffix in suffixes[:len(section.figures)]])
    return names


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def _preamble(report: Report) -> str:
    return (f"Compared: {', '.join(report.systems)}. Numbers in brackets are 95% bootstrap intervals; "
            f"{MISSING} marks a value not measured.")


def to_markdown(report: Report) -> str:
    """The report as markdown: one table per section (scores as ``0.551 [0.471, 0.632]``, "—" where a system has
    no value), figures as links to the PNG files ``save_report`` writes beside it."""
    def md(text: str) -> str:
        return text.replace("\n", " ").replace("|", "\\|")

    lines = [f"# {report.title}", "", _preamble(report)]
    for section, names in zip(report.sections, _figure_names(report)):
        lines += ["", f"## {section.heading}"]
        if section.note:
            lines += ["", section.note]
        if section.rows:
            columns = _columns(report, section)
            lines += ["", "| " + " | ".join(md(c) for c in ["metric", *columns]) + " |",
                      "|" + "---|" * (len(columns) + 1)]
            for metric, cells in section.rows.items():
                lines.append("| " + " | ".join([md(metric)] + [md(_cell_text(cells.get(s))) for s in columns]) + " |")
        lines += [line for name in names for line in ("", f"![{md(section.heading)}]({name})")]
    return "\n".join(lines) + "\n"


def to_html(report: Report) -> str:
    """The report as one self-contained HTML page: a little CSS, escaped tables, figures embedded as base64 PNG."""
    return _html(report, [[_png(fig) for fig in s.figures] for s in report.sections])


def _html(report: Report, pngs: list[list[bytes]]) -> str:
    e = html.escape
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{e(report.title)}</title>",
             f"<style>{_CSS}</style></head><body>", f"<h1>{e(report.title)}</h1>",
             f'<p class="muted">{e(_preamble(report))}</p>']
    for section, images in zip(report.sections, pngs):
        parts += ["<section>", f"<h2>{e(section.heading)}</h2>"]
        parts += [f"<p>{e(p.strip())}</p>" for p in section.note.split("\n\n") if p.strip()]
        if section.rows:
            columns = _columns(report, section)
            parts.append("<table><thead><tr>" + "".join(f"<th>{e(c)}</th>" for c in ["metric", *columns])
                         + "</tr></thead><tbody>")
            for metric, cells in section.rows.items():
                parts.append(f"<tr><td>{e(metric)}</td>"
                             + "".join(f"<td>{e(_cell_text(cells.get(s)))}</td>" for s in columns) + "</tr>")
            parts.append("</tbody></table>")
        parts += [f'<figure><img src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}" '
                  f'alt="{e(section.heading)}"></figure>' for png in images]
        parts.append("</section>")
    return "\n".join(parts + ["</body></html>"]) + "\n"


# ----------------------------------------------------------------------------------------------- saving


def report_folder(adapter_dir: str | Path) -> Path:
    """Where the report of an adapter goes: the folder holding the adapter folder (``runs/<run>/adapter`` →
    ``runs/<run>``), so the adapter folder keeps only what peft saved."""
    adapter_dir = Path(adapter_dir)
    if not (adapter_dir / "adapter_config.json").is_file():
        raise FileNotFoundError(f"{adapter_dir} holds no adapter (no adapter_config.json): pass the folder "
                                "train.save_adapter() wrote.")
    return adapter_dir.resolve().parent


def save_report(report: Report, folder: str | Path, overwrite: bool = False) -> dict[str, Path]:
    """Write ``evaluation_report.md``, ``evaluation_report.html`` and ``figures/*.png`` into ``folder`` (for a
    tuned adapter: ``report_folder(adapter_dir)``). Refuses to replace an earlier report unless ``overwrite=True``
    (its figures that the new report does not use are then removed). Returns ``{"markdown", "html", <figure>}``
    paths, a figure keyed by its path relative to ``folder``."""
    folder = Path(folder)
    if (folder / "adapter_config.json").is_file():
        raise ValueError(f"{folder} is an adapter folder: keep it for the adapter alone and save the report beside "
                         "it, in save_report(report, report_folder(adapter_dir)).")
    markdown_path, html_path = folder / MARKDOWN_NAME, folder / HTML_NAME
    existing = [p for p in (markdown_path, html_path) if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{existing[0]} already exists: pass overwrite=True to replace that report, or save "
                              "into another folder.")
    names = _figure_names(report)
    pngs = [[_png(fig) for fig in s.figures] for s in report.sections]
    markdown = to_markdown(report)
    stale = set()
    if markdown_path.is_file():  # figures the previous report linked to, found in its markdown
        stale = set(re.findall(rf"\]\(({FIGURES_DIR}/[\w.-]+\.png)\)", markdown_path.read_text(encoding="utf-8")))
    folder.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name, png in zip(sum(names, []), sum(pngs, [])):
        (folder / name).parent.mkdir(exist_ok=True)
        (folder / name).write_bytes(png)
        paths[name] = folder / name
    for name in stale - set(paths):
        (folder / name).unlink(missing_ok=True)
    markdown_path.write_text(markdown, encoding="utf-8")
    html_path.write_text(_html(report, pngs), encoding="utf-8")
    return {"markdown": markdown_path, "html": html_path, **paths}


# ------------------------------------------------------------------------------------ the decision note


def _check_results(results: list[dict]) -> None:
    keys = {"check", "value", "interval", "passed", "clear"}
    if not results or not all(isinstance(r, dict) and keys <= set(r) for r in results):
        raise ValueError("results: pass the list acceptance.run(test, measurements) returns (one dict per check "
                         f"with {sorted(keys)}).")


def _measured_block(results: list[dict], report_path: str | Path, when: str, nl: str) -> str:
    lines = [MEASURED_START, "", f"Measured on {when} (report: {report_path}):", ""]
    for r in results:
        check = r["check"]
        lines.append(f"- {'PASS' if r['passed'] else 'FAIL'} {check.metric}: "
                     f"{stats.format_score(r['value'], r['interval'])} (needs {check.op} {check.threshold:.3f})"
                     + ("" if r["clear"] else " (within noise)"))
    passed = sum(bool(r["passed"]) for r in results)
    lines += ["", f"{passed} of {len(results)} lines pass" + (": the test passes." if passed == len(results) else "."),
              "", MEASURED_END]
    return nl.join(lines)


def fill_note_test(note_text: str, results: list[dict], report_path: str | Path, when: str) -> str:
    """The decision note with what the test measured (``acceptance.run``'s ``results``) at the end of its
    ``## The test`` section: the date and report, one PASS/FAIL line per check with its interval and threshold
    ("(within noise)" where the interval crosses it), and how many lines pass. Every word of the note is kept; a
    measured block from an earlier run (between the ``measured:start``/``measured:end`` lines) is replaced."""
    _check_results(results)
    if not str(when).strip():
        raise ValueError("when: say when the test was measured, e.g. '2025-03-14, fast profile'.")
    lines = note_text.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if _HEADING.match(line)]
    test_at = next((i for i in starts if re.search(r"\btest\b", _HEADING.match(lines[i]).group(1).lower())), None)
    if test_at is None:
        raise ValueError("The note has no '## The test' section: run notebook 01 to write the note from "
                         "decide.DECISION_NOTE_TEMPLATE, or add a '## The test' heading with your thresholds.")
    nl = "\r\n" if "\r\n" in note_text else "\n"
    block = _measured_block(results, report_path, when, nl)
    marks = [i for i, line in enumerate(lines) if line.strip() in (MEASURED_START, MEASURED_END)]
    found = [lines[i].strip() for i in marks]
    if found == [MEASURED_START, MEASURED_END]:  # an earlier run's block: replace it, and only it
        before, after = "".join(lines[:marks[0]]), "".join(lines[marks[1] + 1:])
        ending = lines[marks[1]][len(lines[marks[1]].rstrip("\r\n")):]
        filled = before + block + ending + after
    elif found:
        raise ValueError(f"The note has a broken measured block ({found.count(MEASURED_START)} start and "
                         f"{found.count(MEASURED_END)} end line): delete everything from {MEASURED_START!r} to "
                         f"{MEASURED_END!r} (the lines too) and run again.")
    else:  # after the last non-blank line of the section, keeping the blank lines before the next heading
        end = next((i for i in starts if i > test_at), len(lines))
        last = max([i for i in range(test_at, end) if lines[i].strip()])
        before, after = "".join(lines[:last + 1]), "".join(lines[last + 1:])
        gap = nl if end < len(lines) and last + 1 == end else ""  # a blank line before the next heading
        filled = before + ("" if before.endswith("\n") else nl) + nl + block + nl + gap + after
    if not decide.validate_decision_note(note_text) and (problems := decide.validate_decision_note(filled)):
        raise ValueError(f"The measured block would make the note fail validation ({problems[0]}): check that "
                         f"when={when!r} and report_path={str(report_path)!r} hold no '<...>' text.")
    return filled


def decision_summary(results: list[dict]) -> str:
    """One sentence on ``acceptance.run``'s results: which lines fail, and which verdicts sit inside the noise."""
    _check_results(results)
    failed = [r["check"].metric for r in results if not r["passed"]]
    noisy = [f"{r['check'].metric} ({'PASS' if r['passed'] else 'FAIL'})" for r in results if not r["clear"]]
    head = (f"All {len(results)} lines pass" if not failed
            else f"{len(failed)} of {len(results)} lines fail ({', '.join(failed)})")
    if not noisy:
        return head + " and every verdict is clear of the noise" + (": the test passes." if not failed else ".")
    its, verdicts = ("it", f"the verdict on {noisy[0]} is") if len(noisy) == 1 else (
        "them", f"the verdicts on {', '.join(noisy[:-1])} and {noisy[-1]} are")
    return (f"{head}{', but' if not failed else ';'} {verdicts} inside the noise (the interval crosses the "
            f"threshold): another test sample could flip {its}.")
