from __future__ import annotations

import json

import pytest

from course_lib import quiz


def test_every_bank_loads_and_has_enough_questions():
    banks = sorted(p.stem for p in quiz.BANK_DIR.glob("*.json"))
    assert banks, "no quiz banks shipped"
    for name in banks:
        questions = quiz.load_bank(name)
        assert len(questions) >= 4, f"{name} has {len(questions)} questions; notebooks end with at least 4"
        for q in questions:
            assert q.why.strip() and len(set(q.options)) == len(q.options)


def test_grade_and_feedback():
    qs = [quiz.Question("2+2?", ("3", "4"), 1, "Arithmetic."), quiz.Question("Sky?", ("blue", "green"), 0, "Air.")]
    assert quiz.grade(qs, [1, 0]) == 1.0
    assert quiz.grade(qs, [0, None]) == 0.0
    assert quiz.feedback(qs[0], 1).startswith("Right.")
    assert "“4”" in quiz.feedback(qs[0], 0)
    assert quiz.feedback(qs[0], None) == "Pick an answer first."
    with pytest.raises(ValueError, match="one per question"):
        quiz.grade(qs, [1])


def test_bad_questions_say_what_is_wrong(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="not an index"):
        quiz.Question("q", ("a", "b"), 2, "w")
    with pytest.raises(ValueError, match="at least two options"):
        quiz.Question("q", ("a",), 0, "w")
    monkeypatch.setattr(quiz, "BANK_DIR", tmp_path)
    (tmp_path / "broken.json").write_text(json.dumps([{"prompt": "q", "options": ["a", "b"]}]))
    with pytest.raises(ValueError, match=r"question 0: missing field\(s\) \['answer', 'why'\]"):
        quiz.load_bank("broken")
    with pytest.raises(FileNotFoundError, match="Known banks: \\['broken'\\]"):
        quiz.load_bank("nope")


def test_show_quiz_builds_widgets_that_give_feedback():
    qs = [quiz.Question("2+2?", ("3", "4"), 1, "Arithmetic.")]
    box = quiz.show_quiz(qs)
    row = box.children[0]
    _, buttons, check, out = row.children
    buttons.value = "4"
    check.click()
    assert out.value.startswith("<p>Right.")


def test_answers_are_not_all_in_one_position():
    """A bank whose right answer always sits in the same slot can be passed without reading it."""
    banks = sorted(quiz.BANK_DIR.glob("*.json"))
    assert banks
    for path in banks:
        positions = [q.answer for q in quiz.load_bank(path.stem)]
        assert max(positions.count(p) for p in set(positions)) <= len(positions) / 2, (path.name, positions)
