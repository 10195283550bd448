"""course_lib.evaluate.report: the side-by-side report (markdown, HTML, saved files) and the filled decision note."""

from __future__ import annotations

import base64
import re

import matplotlib
import pytest

matplotlib.use("Agg")

from matplotlib.figure import Figure  # noqa: E402

from course_lib import decide, evaluate  # noqa: E402
from course_lib.acceptance import AcceptanceTest, Check, run  # noqa: E402
from course_lib.evaluate import report as rp  # noqa: E402


def tiny_figure() -> Figure:
    fig = Figure(figsize=(1.5, 1.0))
    fig.add_subplot().bar([0, 1], [0.4, 0.8])
    return fig


def small_report(with_figure: bool = True) -> rp.Report:
    report = rp.Report("GreenLeaf: base vs tuned", ["base", "tuned", "majority class"])
    rp.add_table(report, "Held-out decisions", {
        "category": {"base": (0.551, (0.471, 0.632)), "tuned": (0.8, [0.7, 0.9]), "majority class": 0.25},
        "n": {"base": 136, "tuned": 136},
        "json_valid": {"tuned": (0.98, None), "base": None},
    }, note="Accuracy per field.")
    rp.add_table(report, "General skills", {"a <b> & c|d": {"tuned": "n/a", "base": 0.5}})
    if with_figure:
        rp.add_figure(report, "General skills", tiny_figure())
    return report


EXPECTED_MARKDOWN = """\
# GreenLeaf: base vs tuned

Compared: base, tuned, majority class. Numbers in brackets are 95% bootstrap intervals; — marks a value not measured.

## Held-out decisions

Accuracy per field.

| metric | base | tuned | majority class |
|---|---|---|---|
| category | 0.551 [0.471, 0.632] | 0.800 [0.700, 0.900] | 0.250 |
| n | 136 | 136 | — |
| json_valid | — | 0.980 | — |

## General skills

| metric | base | tuned |
|---|---|---|
| a <b> & c\\|d | 0.500 | n/a |

![General skills](figures/02-general-skills.png)
"""


def test_to_markdown_exactly():
    assert rp.to_markdown(small_report()) == EXPECTED_MARKDOWN


def test_two_figures_in_a_figure_only_section():
    report = rp.Report("R", ["base"])
    rp.add_figure(report, "Loss curves", tiny_figure(), note="Training loss.")
    rp.add_figure(report, "Loss curves", tiny_figure())
    assert rp.to_markdown(report).endswith("## Loss curves\n\nTraining loss.\n\n"
                                           "![Loss curves](figures/01-loss-curves-a.png)\n\n"
                                           "![Loss curves](figures/01-loss-curves-b.png)\n")


def test_rows_from_baselines_and_task_metrics():
    tables = {"tuned": {"category": {"accuracy": 0.8, "interval": [0.7, 0.9], "correct": []}},
              "TF-IDF + logistic regression": {"category": {"accuracy": 0.6, "interval": [0.5, 0.7], "correct": []}}}
    assert rp.table_rows(tables) == {"category": {"tuned": (0.8, [0.7, 0.9]),
                                                  "TF-IDF + logistic regression": (0.6, [0.5, 0.7])}}
    ref = '{"category": "billing", "priority": "low", "needs_human": false, "reply": "Hi. — GreenLeaf Support"}'
    rows = rp.metric_rows({"base": evaluate.task_metrics(["not json", ref], [ref, ref])})
    assert list(rows) == ["n", "json_valid", "schema_valid", "category", "priority", "needs_human", "mean", "sign_off"]
    assert rows["n"] == {"base": 2} and rows["json_valid"] == {"base": 0.5} and rows["category"] == {"base": 0.5}


def test_bad_input_is_refused_clearly():
    report = rp.Report("R", ["base", "tuned"])
    with pytest.raises(ValueError, match=r"unknown system\(s\) \['tunned'\]"):
        rp.add_table(report, "T", {"category": {"tunned": 0.5}})
    with pytest.raises(TypeError, match=r"row 'category', system 'base': True is a boolean"):
        rp.add_table(report, "T", {"category": {"base": True}})
    with pytest.raises(TypeError, match=r"interval 0.4 must be \(low, high\) or None"):
        rp.add_table(report, "T", {"category": {"base": (0.5, 0.4)}})
    rp.add_table(report, "T", {"category": {"base": 0.5}})
    with pytest.raises(ValueError, match="already has a section 'T'"):
        rp.add_table(report, "T", {"category": {"base": 0.5}})
    with pytest.raises(TypeError, match=r"an Axes: pass ax.figure"):
        rp.add_figure(report, "F", tiny_figure().add_subplot())
    with pytest.raises(ValueError, match="name each system compared once"):
        rp.Report("R", ["base", "base"])


def test_html_is_self_contained_and_escaped():
    page = rp.to_html(small_report())
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</body></html>")
    assert "<tr><td>a &lt;b&gt; &amp; c|d</td><td>0.500</td><td>n/a</td></tr>" in page
    assert ("<tr><td>category</td><td>0.551 [0.471, 0.632]</td><td>0.800 [0.700, 0.900]</td><td>0.250</td></tr>"
            in page)
    assert "<tr><td>n</td><td>136</td><td>136</td><td>—</td></tr>" in page
    (image,) = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert base64.b64decode(image).startswith(b"\x89PNG")
    assert not re.search(r"(src|href)=\"(https?:|//)|<link|<script", page)


def test_save_report_writes_refuses_overwrite_and_replaces(tmp_path):
    paths = rp.save_report(small_report(), tmp_path / "run")
    assert paths == {"markdown": tmp_path / "run" / "evaluation_report.md",
                     "html": tmp_path / "run" / "evaluation_report.html",
                     "figures/02-general-skills.png": tmp_path / "run" / "figures" / "02-general-skills.png"}
    assert paths["markdown"].read_text(encoding="utf-8") == EXPECTED_MARKDOWN
    assert paths["figures/02-general-skills.png"].read_bytes().startswith(b"\x89PNG")
    assert 'src="data:image/png;base64,' in paths["html"].read_text(encoding="utf-8")
    with pytest.raises(FileExistsError, match="evaluation_report.md already exists: pass overwrite=True"):
        rp.save_report(small_report(), tmp_path / "run")
    (tmp_path / "run" / "figures" / "mine.png").write_bytes(b"a learner's own file")
    again = rp.save_report(small_report(with_figure=False), tmp_path / "run", overwrite=True)
    assert set(again) == {"markdown", "html"}
    assert sorted(p.name for p in (tmp_path / "run" / "figures").iterdir()) == ["mine.png"]  # old figure gone


def test_report_goes_beside_the_adapter_not_inside(tmp_path):
    adapter = tmp_path / "runs" / "lora-1" / "adapter"
    with pytest.raises(FileNotFoundError, match="holds no adapter"):
        rp.report_folder(adapter)
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text("{}")
    assert rp.report_folder(adapter) == (tmp_path / "runs" / "lora-1").resolve()
    with pytest.raises(ValueError, match="is an adapter folder"):
        rp.save_report(small_report(), adapter)


# ------------------------------------------------------------------------------------ the decision note

NOTE = """\
# Decision note: GreenLeaf triage

## The win
Field accuracy on the 136 held-out tickets rises from 0.55 (best few-shot prompt) to at least 0.80, so tickets
can be routed without a person reading each one.

## The risk we accept
The tuned model may forget some general skills; we accept a drop of at most 5 points on the regression set,
and we retrain when categories change.

## The test
On the 136 held-out tickets and the regression set, every line must hold:
- category > 0.600 (strongest baseline)
- regression_drop <= 0.050 (general skills kept)

We run it on the saved adapter before anyone depends on it.

## Baseline
Few-shot SmolLM2 scores 0.55 mean field accuracy; TF-IDF + logistic regression 0.60 (measured in notebook 01).

## Decision
Fine-tune with LoRA: the gap is behaviour and format, we have 1,000 labelled tickets, and volume is high.

## Notes to self
Ask the support team to review twenty answers by hand.
"""


def results(category: float = 0.7, interval: tuple = (0.62, 0.78), drop: float = 0.03,
            drop_interval: tuple = (0.01, 0.07)) -> list[dict]:
    test = AcceptanceTest("tickets", [Check("category", ">", 0.6, "strongest baseline"),
                                      Check("regression_drop", "<=", 0.05, "general skills kept")])
    return run(test, {"category": (category, interval), "regression_drop": (drop, drop_interval)})


BLOCK = """\
[//]: # (measured:start)

Measured on 2025-03-14 (report: runs/lora-1/evaluation_report.md):

- PASS category: 0.700 [0.620, 0.780] (needs > 0.600)
- PASS regression_drop: 0.030 [0.010, 0.070] (needs <= 0.050) (within noise)

2 of 2 lines pass: the test passes.

[//]: # (measured:end)"""


def test_fill_note_test_adds_the_block_and_keeps_every_word():
    assert decide.validate_decision_note(NOTE) == []
    filled = rp.fill_note_test(NOTE, results(), "runs/lora-1/evaluation_report.md", "2025-03-14")
    assert filled == NOTE.replace("before anyone depends on it.\n\n",
                                  "before anyone depends on it.\n\n" + BLOCK + "\n\n")
    assert decide.validate_decision_note(filled) == []
    assert decide._sections(filled)["the test"].endswith("[//]: # (measured:end)")  # inside the test section


def test_fill_note_test_edges_of_the_section():
    last = "## The test\nat least 0.8 accuracy"  # the last section, no final newline
    assert rp.fill_note_test(last, results(), "r.md", "today") == last + "\n\n" + BLOCK.replace(
        "2025-03-14 (report: runs/lora-1/evaluation_report.md)", "today (report: r.md)") + "\n"
    tight = "## The test\nat least 0.8\r\n## Decision\r\nprompt\r\n"  # no blank line before the next heading, CRLF
    filled = rp.fill_note_test(tight, results(), "r.md", "today")
    assert filled.startswith("## The test\nat least 0.8\r\n\r\n[//]: # (measured:start)\r\n")
    assert filled.endswith("[//]: # (measured:end)\r\n\r\n## Decision\r\nprompt\r\n")


def test_fill_note_test_replaces_an_earlier_block_only():
    first = rp.fill_note_test(NOTE, results(), "runs/lora-1/evaluation_report.md", "2025-03-14")
    edited = first.replace("[//]: # (measured:end)\n", "[//]: # (measured:end)\nThe learner's comment on it.\n")
    second = rp.fill_note_test(edited, results(0.58, (0.50, 0.66)), "runs/lora-2/evaluation_report.md", "2025-04-01")
    assert second.count("measured:start") == 1 and second.count("measured:end") == 1
    assert "2025-03-14" not in second and "Measured on 2025-04-01 (report: runs/lora-2/evaluation_report.md):" in second
    assert "- FAIL category: 0.580 [0.500, 0.660] (needs > 0.600) (within noise)\n" in second
    assert "\n\n1 of 2 lines pass.\n\n" in second
    start, end = second.index("[//]: # (measured:start)"), second.index("[//]: # (measured:end)") + 22
    assert second[:start] + second[end:] == edited[:edited.index("[//]: # (measured:start)")] + edited[
        edited.index("[//]: # (measured:end)") + 22:]  # everything outside the block is the learner's, unchanged
    assert "The learner's comment on it." in second and decide.validate_decision_note(second) == []


def test_fill_note_test_refuses_clearly():
    no_test = NOTE.replace("## The test\n", "## Thresholds\n")
    with pytest.raises(ValueError, match=r"no '## The test' section: run notebook 01 .* or add a '## The test'"):
        rp.fill_note_test(no_test, results(), "r.md", "today")
    broken = NOTE.replace("## Baseline", "[//]: # (measured:start)\n\n## Baseline")
    with pytest.raises(ValueError, match=r"broken measured block \(1 start and 0 end line\)"):
        rp.fill_note_test(broken, results(), "r.md", "today")
    with pytest.raises(ValueError, match=r"pass the list acceptance.run\(test, measurements\) returns"):
        rp.fill_note_test(NOTE, [], "r.md", "today")
    with pytest.raises(ValueError, match="would make the note fail validation"):
        rp.fill_note_test(NOTE, results(), "r.md", "<date>")


def test_html_comment_markers_would_fail_validation():
    """Why the markers are not <!-- ... -->: the note check reads one-line <...> as a template placeholder."""
    commented = NOTE.replace("We run it", "<!-- measured:start -->\nWe run it")
    assert any("placeholder" in p for p in decide.validate_decision_note(commented))


def test_decision_summary():
    assert rp.decision_summary(results(interval=(0.65, 0.75), drop_interval=(0.01, 0.04))) == (
        "All 2 lines pass and every verdict is clear of the noise: the test passes.")
    assert rp.decision_summary(results()) == (
        "All 2 lines pass, but the verdict on regression_drop (PASS) is inside the noise (the interval crosses the "
        "threshold): another test sample could flip it.")
    assert rp.decision_summary(results(0.58, (0.50, 0.66), drop=0.08)) == (
        "2 of 2 lines fail (category, regression_drop); the verdicts on category (FAIL) and regression_drop (FAIL) "
        "are inside the noise (the interval crosses the threshold): another test sample could flip them.")
    assert rp.decision_summary(results(0.5, (0.45, 0.55), drop_interval=(0.0, 0.04))) == (
        "1 of 2 lines fail (category) and every verdict is clear of the noise.")
    with pytest.raises(ValueError, match="pass the list acceptance.run"):
        rp.decision_summary([{"value": 0.5}])
