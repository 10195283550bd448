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


# ------------------------------------------------------------------------------- can it be passed without reading?
# A test-wise learner picks the longest option, or the one that says the most. These checks keep the right
# answer from standing out by length: each bank may have it strictly longest, or more than 1.5x the mean length of
# the other options, in at most a third of its questions.

MAX_SHARE = 1 / 3
MAX_RATIO = 1.5


def _all_banks() -> dict[str, list[quiz.Question]]:
    banks = {p.stem: quiz.load_bank(p.stem) for p in sorted(quiz.BANK_DIR.glob("*.json"))}
    assert banks, "no quiz banks shipped"
    return banks


def _describe(name: str, i: int, q: quiz.Question) -> str:
    lengths = [len(o) for o in q.options]
    return f"{name} question {i} ({q.prompt[:60]!r}...): option lengths {lengths}, right = {q.answer}"


def test_length_helpers_on_known_questions():
    long_right = quiz.Question("q", ("a" * 30, "b" * 10, "c" * 10, "d" * 10), 0, "w")
    tie = quiz.Question("q", ("a" * 10, "b" * 10, "c" * 5, "d" * 5), 1, "w")
    short_right = quiz.Question("q", ("a" * 10, "b" * 20, "c" * 20, "d" * 20), 0, "w")
    assert quiz.answer_is_longest(long_right) is True
    assert quiz.answer_is_longest(tie) is False  # tied for longest does not single the answer out
    assert quiz.answer_is_longest(short_right) is False
    assert quiz.answer_length_ratio(long_right) == 3.0
    assert quiz.answer_length_ratio(tie) == pytest.approx(10 / (20 / 3))
    assert quiz.answer_length_ratio(short_right) == 0.5


def test_every_bank_has_six_questions_of_four_options():
    for name, questions in _all_banks().items():
        assert len(questions) >= 6, f"{name} has {len(questions)} questions; rebuilt banks have at least 6"
        for i, q in enumerate(questions):
            assert len(q.options) == 4, f"{name} question {i} has {len(q.options)} options, expected 4"


def test_right_answer_is_rarely_the_longest():
    failures = []
    for name, questions in _all_banks().items():
        longest = [i for i, q in enumerate(questions) if quiz.answer_is_longest(q)]
        print(f"{name}: right option strictly longest in {len(longest)} of {len(questions)} questions {longest}")
        if len(longest) > MAX_SHARE * len(questions):
            failures.append(f"{name}: right option is the strictly longest in {len(longest)} of {len(questions)} "
                            f"questions (at most a third allowed):\n  "
                            + "\n  ".join(_describe(name, i, questions[i]) for i in longest))
    assert failures == [], "\n".join(failures)


def test_right_answer_is_not_much_longer_than_the_others():
    failures = []
    for name, questions in _all_banks().items():
        ratios = [quiz.answer_length_ratio(q) for q in questions]
        long = [i for i, r in enumerate(ratios) if r > MAX_RATIO]
        print(f"{name}: max ratio {max(ratios):.2f}; right option > {MAX_RATIO}x the others' mean in {long}")
        if len(long) > MAX_SHARE * len(questions):
            failures.append(f"{name}: right option is more than {MAX_RATIO}x the mean length of the others in "
                            f"{len(long)} of {len(questions)} questions (at most a third allowed):\n  "
                            + "\n  ".join(f"{_describe(name, i, questions[i])}, ratio {ratios[i]:.2f}" for i in long))
    assert failures == [], "\n".join(failures)


def test_length_checks_catch_the_old_pattern(tmp_path, monkeypatch):
    """A bank built like the old ones (long right answer, short distractors) must fail both checks."""
    options = ["short", "brief", "a full, careful and much longer right answer", "tiny"]
    old_style = [{"prompt": f"q{i}", "options": options, "answer": 2, "why": "w"} for i in range(6)]
    monkeypatch.setattr(quiz, "BANK_DIR", tmp_path)
    (tmp_path / "old_style.json").write_text(json.dumps(old_style))
    with pytest.raises(AssertionError, match=r"old_style: right option is the strictly longest in 6 of 6 questions"):
        test_right_answer_is_rarely_the_longest()
    with pytest.raises(AssertionError, match=r"old_style: right option is more than 1.5x the mean length of the "
                                             r"others in 6 of 6 questions"):
        test_right_answer_is_not_much_longer_than_the_others()


def test_text_shows_up_in_the_widget():
    """show_quiz renders prompts and feedback as HTML: a placeholder such as <EMAIL> would vanish as an unknown tag."""
    import re

    tag = re.compile(r"</?[A-Za-z][^>]*>")
    for name, questions in _all_banks().items():
        for i, q in enumerate(questions):
            for field, text in [("prompt", q.prompt), ("why", q.why), *((f"option {j}", o) for j, o in
                                                                         enumerate(q.options))]:
                assert not tag.search(text), f"{name} question {i}, {field}: {tag.search(text).group()!r} reads as HTML"
