"""What a learner sees: the learner's lab (``make lab``) in headless chromium, every notebook run with Run → Run All
Cells in the fast profile. Each must end with no error output, every figure decoded by the browser, every quiz
widget answerable (a right and a wrong answer give the right feedback), and the interactive forms working.

Run with ``make test-browser`` (``make test`` calls it); screenshots of each notebook's end state are written to
``test-output/browser/``.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request

import nbformat
import pytest

from course_lib import decide, quiz

from .conftest import OUTPUT, TIMINGS
from .jupyterlab import ROOT, TOKEN, images, open_notebook, run_all, save, start_lab

NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
RUN_TIMEOUT_S = 900  # notebook 06 is the longest; fast profile, 2 shared cores


def _bank(nb_name: str) -> str:
    source = nbformat.read(ROOT / "notebooks" / nb_name, as_version=4).cells[-1].source
    match = re.search(r'load_bank\("([^"]+)"\)', source)
    assert match, f"{nb_name}: the last cell does not show a quiz bank"
    return match.group(1)


def _answer(page, index: int, question: quiz.Question, choice: int) -> str:
    """Pick option ``choice`` of quiz question ``index`` (0-based), press its Check button, return the feedback."""
    radio_box = page.locator(".widget-radio-box").nth(index)
    radio_box.scroll_into_view_if_needed()
    radio_box.locator("label", has_text=question.options[choice]).first.click()
    box = radio_box.locator("xpath=../..")  # .widget-radio-box < .widget-radio < the question's VBox
    box.locator("button", has_text="Check").click()
    feedback = box.locator(".widget-html").last
    for _ in range(40):
        text = feedback.inner_text().strip()
        if text:
            return text
        time.sleep(0.25)
    return ""


def _check_quiz(page, bank: str) -> None:
    questions = quiz.load_bank(bank)
    assert page.locator(".widget-radio-box").count() == len(questions), "the quiz did not render all its questions"
    right = _answer(page, 0, questions[0], questions[0].answer)
    assert right.startswith("Right."), f"right answer to question 1 got {right!r}"
    wrong_choice = (questions[1].answer + 1) % len(questions[1].options)
    wrong = _answer(page, 1, questions[1], wrong_choice)
    assert wrong.startswith("Not quite: the answer is"), f"wrong answer to question 2 got {wrong!r}"
    assert questions[1].options[questions[1].answer] in wrong


def _check_decision_form(page) -> None:
    button = page.locator("button", has_text="Recommend")
    assert button.count() == 1, "notebook 01's decision form did not render"
    button.scroll_into_view_if_needed()
    button.click()
    shown = page.locator(".widget-html", has_text="Recommendation:")
    shown.wait_for(timeout=10_000)
    choice = re.search(r"Recommendation: (\S+)", shown.inner_text()).group(1)
    assert choice in decide.CHOICES, f"the form recommended {choice!r}, not one of {decide.CHOICES}"
    # the form starts from the problem the cell above printed a recommendation for: the two must agree
    outputs = "\n".join(page.locator(".jp-OutputArea-output").all_inner_texts())
    printed = re.search(r"\*\*Recommendation: (\S+)\*\*", outputs)
    assert printed and printed.group(1) == choice, f"form says {choice!r}, the printed recommendation {printed}"
    shown.scroll_into_view_if_needed()
    page.screenshot(path=str(OUTPUT / "01_decision_form.png"))


def _check_rating_widget(page) -> None:
    label = page.locator(".widget-label", has_text=re.compile(r"^0 of \d+ rated$"))
    assert label.count() == 1, "notebook 06's rating widget did not render"
    label.scroll_into_view_if_needed()
    total = int(label.text_content().split()[2])
    first = page.locator(".widget-toggle-buttons").first
    first.scroll_into_view_if_needed()
    first.locator("button", has_text="4").click()
    page.locator(".widget-label", has_text=f"1 of {total} rated").wait_for(timeout=10_000)


def _saved_outputs(path) -> tuple[int, list[str]]:
    """(figures, error names) in the notebook as JupyterLab saved it: what the kernel sent."""
    nb = nbformat.read(path, as_version=4)
    figures, errors = 0, []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                errors.append(f"{out.get('ename')}: {out.get('evalue')}")
            elif "image/png" in out.get("data", {}) or "image/svg+xml" in out.get("data", {}):
                figures += 1
    return figures, errors


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_in_the_learners_lab(learner_lab, page, name):
    try:
        _run_and_check(learner_lab, page, name)
    except BaseException:
        page.screenshot(path=str(OUTPUT / f"{name.removesuffix('.ipynb')}-FAILED.png"))
        raise


def _run_and_check(learner_lab, page, name):
    open_notebook(page, learner_lab, name)
    result = run_all(page, RUN_TIMEOUT_S)
    assert not result.errors, f"{name}: error output in the browser: {result.errors}"
    assert result.executed == result.code_cells, f"{name}: {result.executed} of {result.code_cells} cells ran"
    assert page.get_by_text("Error displaying widget").count() == 0, f"{name}: a widget failed to render"
    shown = images(page)
    assert all(i["complete"] and i["w"] > 0 for i in shown), f"{name}: a figure did not decode: {shown}"
    save(page)
    figures, errors = _saved_outputs(learner_lab.root_dir / name)
    assert not errors, f"{name}: the kernel sent errors: {errors}"
    assert len(shown) == figures, f"{name}: {figures} figures sent, {len(shown)} shown"
    _check_quiz(page, _bank(name))
    if name.startswith("01_"):
        _check_decision_form(page)
    if name.startswith("06_"):
        _check_rating_widget(page)
    page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell").last.scroll_into_view_if_needed()
    page.screenshot(path=str(OUTPUT / f"{name.removesuffix('.ipynb')}.png"))
    TIMINGS[name] = {"run all (s)": round(result.seconds, 1), "cells": result.code_cells, "figures": figures}


def test_the_learners_lab_has_no_instructor_tools_and_no_news_prompt(learner_lab, page):
    open_notebook(page, learner_lab, NOTEBOOKS[0])
    menus = page.locator(".lm-MenuBar-itemLabel").all_inner_texts()
    assert "Nbgrader" not in menus, f"the nbgrader menu is in the learner's lab: {menus}"
    assert page.get_by_text("Create Assignment").count() == 0
    assert page.get_by_text("get notified about official Jupyter news").count() == 0
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"http://127.0.0.1:{learner_lab.port}/formgrader?token={TOKEN}", timeout=10)
    assert err.value.code == 404
    # the learner keeps nbgrader's Validate button (labs use it)
    assert page.locator(".jp-Toolbar-item", has_text="Validate").count() == 1


def test_make_instructor_has_nbgraders_tools(browser, tmp_path):
    """The instructor's lab (``make instructor``, serving labs/) keeps what the learner's hides."""
    lab = start_lab(ROOT / "labs", OUTPUT / "jupyterlab-instructor.log", target="instructor")
    try:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.goto(lab.url())
        page.wait_for_selector(".lm-MenuBar-itemLabel", timeout=90_000)
        page.locator(".lm-MenuBar-itemLabel", has_text="Nbgrader").wait_for(timeout=30_000)
        with urllib.request.urlopen(f"http://127.0.0.1:{lab.port}/formgrader?token={TOKEN}", timeout=60) as answer:
            assert answer.status == 200
        assert page.get_by_text("get notified about official Jupyter news").count() == 0
        assert page.get_by_text("Create Assignment").count() == 1  # nbgrader's sidebar tab
        page.wait_for_selector(".jp-DirListing-item", timeout=30_000)  # labs/ listed
        page.screenshot(path=str(OUTPUT / "instructor-lab.png"))
        context.close()
    finally:
        lab.stop()
