"""Self-check quizzes: multiple-choice questions shown as ipywidgets, and the same questions graded in labs.

Question banks live in ``course_lib/quizzes/<name>.json`` as a list of
``{"prompt": str, "options": [str, ...], "answer": int, "why": str}`` (``answer`` indexes ``options``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

BANK_DIR = Path(__file__).with_name("quizzes")


@dataclass(frozen=True)
class Question:
    prompt: str  # the question, one or two sentences
    options: tuple[str, ...]  # at least two answers to choose from
    answer: int  # index of the right option
    why: str  # shown after answering: why the right option is right

    def __post_init__(self) -> None:
        if len(self.options) < 2:
            raise ValueError(f"Question {self.prompt!r} needs at least two options, got {len(self.options)}.")
        if not 0 <= self.answer < len(self.options):
            raise ValueError(
                f"Question {self.prompt!r}: answer={self.answer} is not an index into its "
                f"{len(self.options)} options (use 0..{len(self.options) - 1})."
            )


def answer_is_longest(question: Question) -> bool:
    """True when the right option is strictly longer than every other: a test-wise learner's first guess (a tie
    for longest does not single it out). Banks and labs keep this to at most a third of their questions."""
    right = len(question.options[question.answer])
    return all(right > len(o) for i, o in enumerate(question.options) if i != question.answer)


def answer_length_ratio(question: Question) -> float:
    """The right option's length over the mean length of the other options (characters)."""
    others = [len(o) for i, o in enumerate(question.options) if i != question.answer]
    return len(question.options[question.answer]) / (sum(others) / len(others))


def load_bank(name: str) -> list[Question]:
    """Load the question bank ``course_lib/quizzes/<name>.json``."""
    path = BANK_DIR / f"{name}.json"
    if not path.is_file():
        known = sorted(p.stem for p in BANK_DIR.glob("*.json"))
        raise FileNotFoundError(f"No quiz bank {name!r} in {BANK_DIR}. Known banks: {known}")
    raw = json.loads(path.read_text(encoding="utf-8"))
    questions = []
    for i, item in enumerate(raw):
        missing = {"prompt", "options", "answer", "why"} - set(item)
        if missing:
            raise ValueError(f"{path.name}, question {i}: missing field(s) {sorted(missing)}")
        questions.append(Question(item["prompt"], tuple(item["options"]), int(item["answer"]), item["why"]))
    return questions


def grade(questions: list[Question], answers: list[int | None]) -> float:
    """Fraction of questions answered right (``None`` = unanswered). Labs use this for autograded quizzes."""
    if len(answers) != len(questions):
        raise ValueError(f"Got {len(answers)} answers for {len(questions)} questions: give one per question "
                         "(None for a question you skip).")
    right = sum(1 for q, a in zip(questions, answers) if a == q.answer)
    return right / len(questions) if questions else 0.0


def feedback(question: Question, choice: int | None) -> str:
    """The text shown after a learner picks ``choice``."""
    if choice is None:
        return "Pick an answer first."
    verdict = "Right." if choice == question.answer else f"Not quite: the answer is “{question.options[question.answer]}”."
    return f"{verdict} {question.why}"


def show_quiz(questions: list[Question]):
    """Render the questions as radio buttons with a "Check" button each; returns the widget box."""
    import ipywidgets as w
    from IPython.display import display

    rows = []
    for i, q in enumerate(questions, 1):
        buttons = w.RadioButtons(options=list(q.options), value=None, layout=w.Layout(width="auto"))
        check = w.Button(description="Check", button_style="info")
        out = w.HTML()

        def on_click(_, q=q, buttons=buttons, out=out):
            choice = None if buttons.value is None else q.options.index(buttons.value)
            out.value = f"<p>{feedback(q, choice)}</p>"

        check.on_click(on_click)
        rows.append(w.VBox([w.HTML(f"<b>{i}. {q.prompt}</b>"), buttons, check, out]))
    box = w.VBox(rows)
    display(box)
    return box
